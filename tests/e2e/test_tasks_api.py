"""The task group against a running `qledger serve`: the task list, the knowledge
entries and their markdown, and the project's backends, in the reference's shapes;
who may read them, and what an unknown or hostile task name gets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from calibration.tasks import TASKS
from tests.e2e.serving import ADMIN, Serve, running

pytestmark = pytest.mark.e2e

ROUTES = (
    "/api/tasks",
    "/api/task-knowledge",
    "/api/tasks/CheckT1/knowledge",
    "/api/tasks/CheckT1/knowledge/markdown",
    "/api/backends",
)
KNOWLEDGE_FIELDS = {
    "name", "category", "summary", "what_it_measures", "physical_principle",
    "expected_result", "evaluation_criteria", "check_questions", "failure_modes", "tips",
    "output_parameters_info", "analysis_guide", "prerequisites", "images", "cases",
    "prompt_text",
}  # fmt: skip
TWIN = "/api/v1/digital-twin"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("tasks")))


@pytest.fixture(scope="module")
def api(served: Serve) -> httpx.Client:
    return served.client()


def test_tasks_are_listed_in_the_reference_shape(api: httpx.Client):
    tasks = api.get("/api/tasks").json()["tasks"]
    assert [t["name"] for t in tasks] == list(TASKS)
    for t in tasks:
        assert set(t) == {"name", "description", "backend", "task_type", "input_parameters",
                          "output_parameters"}  # fmt: skip
        assert (t["backend"], t["task_type"]) == ("twin", "qubit")
        for p in [*t["input_parameters"].values(), *t["output_parameters"].values()]:
            assert {"unit", "value_type", "value", "description"} <= set(p)
    t1 = tasks[0]["input_parameters"]
    assert t1["t1_guess_us"] == {**t1["t1_guess_us"], "value": 100.0, "unit": "us", "kind": "run"}
    assert t1["t1"] == {**t1["t1"], "value": None, "unit": "us", "kind": "read"}
    assert tasks[0]["output_parameters"]["t1"]["unit"] == "us"
    rb = next(t for t in tasks if t["name"] == "RandomizedBenchmarking")
    assert rb["input_parameters"]["lengths"]["value"] == [1, 16, 64, 128, 256]


def test_the_backend_filter_is_a_filter(api: httpx.Client):
    assert len(api.get("/api/tasks", params={"backend": "twin"}).json()["tasks"]) == len(TASKS)
    # The reference filters its stored definitions: a backend that runs none, none.
    for other in ("qubex", "square_64", "twin\x00", "TWIN"):
        r = api.get("/api/tasks", params={"backend": other})
        assert (r.status_code, r.json()) == (200, {"tasks": []}), other
    assert len(api.get("/api/tasks", params={"backend": ""}).json()["tasks"]) == len(TASKS)
    r = api.get("/api/tasks", params={"backend": "x" * 201})
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")


def test_knowledge_is_listed_and_served_per_task(api: httpx.Client):
    listed = api.get("/api/task-knowledge").json()
    assert [i["name"] for i in listed["items"]] == list(TASKS)
    assert set(listed["categories"]) >= {i["category"] for i in listed["items"]}
    for name in TASKS:
        entry = api.get(f"/api/tasks/{name}/knowledge").json()
        assert set(entry) == KNOWLEDGE_FIELDS
        assert entry["name"] == name and entry["cases"] == []
        assert entry["failure_modes"] and entry["tips"] and entry["expected_result"]["fit_model"]
        md = api.get(f"/api/tasks/{name}/knowledge/markdown")
        assert md.headers["content-type"].startswith("text/markdown")
        assert md.text.startswith(f"# {name}\n") and "## Evaluation criteria" in md.text
    # The reference's clients send ?backend=qubex; the knowledge is the same.
    assert api.get("/api/tasks/CheckT1/knowledge", params={"backend": "qubex"}).status_code == 200


def test_an_unknown_task_is_404_naming_the_known_ones(api: httpx.Client):
    for path in ("/api/tasks/CheckT3/knowledge", "/api/tasks/checkt1/knowledge/markdown"):
        r = api.get(path)
        assert (r.status_code, r.json()["code"]) == (404, "task_not_found")
        assert "CheckT1" in r.json()["message"] and "RandomizedBenchmarking" in r.json()["message"]


def test_every_route_needs_a_credential(served: Serve):
    for path in ROUTES:
        r = httpx.get(served.base + path, timeout=10)
        assert (r.status_code, r.json()["code"]) == (401, "unauthenticated"), path
        bad = httpx.get(served.base + path, headers={"Authorization": "Bearer x.y.z"}, timeout=10)
        assert bad.status_code == 401, path


def test_an_api_key_reads_them_and_another_project_is_not_there(served: Serve, api):
    created = api.post("/api/api-keys", json={"name": "reader", "scopes": ["read"]})
    assert created.status_code == 201, created.text
    key = httpx.Client(
        base_url=served.base, headers={"X-API-Key": created.json()["api_key"]}, timeout=10
    )
    for path in ROUTES:
        assert key.get(path).status_code == 200, path
    r = api.post("/api/auth/register", json={"username": "outsider", "password": "pw-outsider-1"})
    assert r.status_code == 200, r.text
    outsider = served.client(served.login("outsider", "pw-outsider-1"))
    for path in ("/api/tasks", "/api/backends"):  # project routes: the admin's is not theirs
        r = outsider.get(path, headers={"X-Project-Id": "default"})
        assert (r.status_code, r.json()["code"]) == (404, "project_not_found"), path
    # Knowledge is not project data: any signed-in caller reads it.
    assert outsider.get("/api/tasks/CheckRabi/knowledge").status_code == 200


def test_backends_are_the_projects_twin_backends_with_its_owner(served: Serve, api):
    twin = [b["backend_id"] for b in api.get(TWIN + "/backends").json()["backends"]]
    assert "line_5" in twin
    listed = api.get("/api/backends").json()["backends"]
    assert listed == [{"name": b, "username": ADMIN} for b in twin]

    r = api.post("/api/auth/register", json={"username": "lab-owner", "password": "pw-lab-1"})
    assert r.status_code == 200, r.text
    lab = served.client(served.login("lab-owner", "pw-lab-1"))
    config = TWIN + "/config/content"
    original = lab.get(config, params={"path": "backends.yaml"}).json()["content"]
    extra = (
        "  lab_line:\n    description: the lab's own line\n    device: line_5\n"
        "    noise: line_5\n    scheduler: default\n"
    )
    w = lab.put(config, json={"path": "backends.yaml", "content": original + extra})
    assert w.status_code == 200, w.text
    mine = lab.get("/api/backends", params={"min_position": w.json()["position"]}).json()
    assert mine["backends"][-1] == {"name": "lab_line", "username": "lab-owner"}
    assert {b["username"] for b in mine["backends"]} == {"lab-owner"}
    # The override is the lab's project's alone.
    assert "lab_line" not in {b["name"] for b in api.get("/api/backends").json()["backends"]}
