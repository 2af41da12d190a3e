"""Task files against a running `qledger serve`: the reference's seven task-file routes
(and qledger's history), a valid write read back, a written backend config's defaults,
Python that is recorded but never run, and every bad input refused with a stable code
and nothing recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import Serve, running

pytestmark = pytest.mark.e2e

FILES = "/api/task-files"
MARKER = Path("/tmp/qledger-task-file-was-run")
NEW_TASK = "from calibration.tasks import Task\n\n\nclass CheckX(Task):\n    name = 'CheckX'\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("task-files")))


@pytest.fixture(scope="module")
def api(served: Serve) -> httpx.Client:
    client = served.client()
    client.timeout = 30
    return client


def content(api: httpx.Client, path: str, **params) -> dict:
    r = api.get(f"{FILES}/content", params={"path": path, **params})
    assert r.status_code == 200, r.text
    return r.json()


def put(api: httpx.Client, path: str, text: str) -> httpx.Response:
    return api.put(f"{FILES}/content", json={"path": path, "content": text})


def test_the_reads_answer_in_the_references_shapes(api):
    assert api.get(f"{FILES}/settings").json() == {
        "default_backend": "twin", "default_view_mode": "tasks", "sort_order": "type_then_name",
    }  # fmt: skip
    assert api.get(f"{FILES}/backends").json() == {"backends": [{"name": "twin", "path": "twin"}]}
    tree = api.get(f"{FILES}/tree", params={"backend": "twin"}).json()
    files = {n["path"]: n for n in tree}
    assert {"tasks.py", "fits.py", "backend.yaml"} <= set(files)
    assert files["tasks.py"] == {"name": "tasks.py", "path": "tasks.py", "type": "file",
                                 "children": None}  # fmt: skip
    shipped = content(api, "twin/tasks.py")
    assert "class CheckT1(Task):" in shipped["content"]
    assert (shipped["name"], shipped["source"], shipped["modified"]) == (
        "tasks.py",
        "shipped",
        None,
    )
    assert shipped["size"] == len(shipped["content"].encode()) and shipped["executable"] is False
    config = api.get(f"{FILES}/backend-config").json()
    assert config["default_backend"] == "twin"
    twin = config["backends"]["twin"]
    assert "CheckT1" in twin["tasks"] and twin["defaults"]["CheckT1"]["shots"] == 2000
    assert "CheckT1" in config["categories"]["Coherence"]
    tasks = {
        t["name"]: t for t in api.get(f"{FILES}/tasks", params={"backend": "twin"}).json()["tasks"]
    }
    assert tasks["CheckT1"] == {
        "name": "CheckT1", "class_name": "CheckT1", "task_type": "qubit",
        "description": tasks["CheckT1"]["description"], "file_path": "tasks.py",
        "category": "Coherence", "enabled": True,
    }  # fmt: skip


def test_a_write_is_recorded_read_back_and_never_run(served, api):
    """A tasks.py that would run a command if it were imported: recorded, versioned,
    listed by reading it, and the command never runs."""
    original = content(api, "twin/tasks.py")["content"]
    edited = f"import os\nos.system('touch {MARKER}')\n" + original.replace(
        'description = "Energy relaxation:', 'description = "Reviewed. Energy relaxation:'
    )
    r = put(api, "twin/tasks.py", edited)
    assert r.status_code == 200, r.text
    saved = r.json()
    assert saved["path"] == "twin/tasks.py" and saved["applied_to_runs"] is False
    assert "never imported or run" in saved["message"] and saved["status"] == "accepted"
    back = content(api, "twin/tasks.py", min_position=saved["position"])
    assert back["content"] == edited and back["source"] == "written"
    assert back["position"] == saved["position"] and back["modified"]
    listed = api.get(f"{FILES}/tasks", params={"backend": "twin", "sort_order": "name_only"})
    described = {t["name"]: t["description"] for t in listed.json()["tasks"]}
    assert described["CheckT1"].startswith("Reviewed.")
    history = api.get(f"{FILES}/history", params={"path": "twin/tasks.py"}).json()
    assert [v["version"] for v in history["versions"]] == [saved["position"]]
    assert len(history["shipped"]["sha256"]) == 64  # the shipped file stays readable too
    old = content(api, "twin/tasks.py", version=saved["position"])
    assert old["content"] == edited
    put(api, "twin/tasks.py", original).raise_for_status()
    assert not MARKER.exists(), "a task file was executed"


def test_a_written_backend_config_changes_the_defaults_and_the_offered_tasks(api):
    config = "tasks: [CheckT1]\ndefaults:\n  CheckT1: {shots: 500}\n"
    r = put(api, "twin/backend.yaml", config)
    assert r.status_code == 200, r.text
    assert r.json()["applied_to_runs"] is True
    position = r.json()["position"]
    got = api.get(f"{FILES}/backend-config", params={"min_position": position}).json()
    assert got["backends"]["twin"]["tasks"] == ["CheckT1"]
    assert got["backends"]["twin"]["defaults"]["CheckT1"]["shots"] == 500
    assert got["backends"]["twin"]["source"] == "written"
    enabled = api.get(f"{FILES}/tasks", params={"backend": "twin", "enabled_only": True}).json()
    assert [t["name"] for t in enabled["tasks"]] == ["CheckT1"]


def test_a_new_file_joins_the_tree_and_other_projects_do_not_see_it(served, api):
    r = put(api, "twin/experimental/check_x.py", NEW_TASK)
    assert r.status_code == 200, r.text
    tree = api.get(f"{FILES}/tree", params={"backend": "twin"}).json()
    assert tree[0] == {"name": "experimental", "path": "experimental", "type": "directory",
                       "children": [{"name": "check_x.py", "path": "experimental/check_x.py",
                                     "type": "file", "children": None}]}  # fmt: skip
    listed = api.get(f"{FILES}/tasks", params={"backend": "twin"}).json()["tasks"]
    check_x = next(t for t in listed if t["name"] == "CheckX")
    # listed, but not enabled: qledger runs only its built-in tasks
    assert (check_x["file_path"], check_x["enabled"]) == ("experimental/check_x.py", False)
    other = api.post("/api/projects", json={"name": "other lab"}).json()["project_id"]
    theirs = api.get(f"{FILES}/content", params={"path": "twin/experimental/check_x.py"},
                     headers={"X-Project-Id": other})  # fmt: skip
    assert (theirs.status_code, theirs.json()["code"]) == (404, "task_file_not_found")


def yaml_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    return "\n".join(lines) + "\n"


BAD_WRITES = [
    ("../../etc/passwd", "x", 400, "invalid_task_file_path"),
    ("twin/../../jwt.secret", "x", 400, "invalid_task_file_path"),
    ("twin/%2e%2e/%2e%2e/jwt.secret.py", "x", 400, "invalid_task_file_path"),
    ("twin\\..\\..\\tasks.py", "x", 400, "invalid_task_file_path"),
    ("/etc/passwd", "x", 400, "invalid_task_file_path"),
    ("twin/tasks.py\x00.yaml", "x", 400, "invalid_task_file_path"),
    ("twin//tasks.py", "x", 400, "invalid_task_file_path"),
    ("qubex/tasks.py", "x", 400, "unknown_task_backend"),
    ("twin/payload.so", "x", 400, "task_file_type_not_allowed"),
    ("twin/tasks.py", "class CheckT1(Task:\n    pass\n", 422, "python_syntax_error"),
    ("twin/tasks.py", "from calibration.tasks import Task\n\n\nclass CheckT1(Task):\n    pass\n",
     422, "task_class_removed"),
    ("twin/backend.yaml", yaml_bomb(), 422, "task_file_too_complex"),
    ("twin/backend.yaml", "a: " + "[" * 40 + "]" * 40 + "\n", 422, "task_file_too_complex"),
    ("twin/backend.yaml", "defaults: !!python/object/apply:os.system ['id']\n", 422,
     "invalid_task_file_yaml"),
    ("twin/backend.yaml", "defaults:\n  CheckT1: {points: 100000}\n", 422, "invalid_backend_config"),
    ("twin/fits.py", "#" * (200 * 1024), 413, "task_file_too_large"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_WRITES, ids=[f"{c[3]}:{c[0][:30]}" for c in BAD_WRITES])
def test_a_bad_write_is_refused_and_changes_nothing(served, api, case):
    path, text, status, code = case
    before = served.health()["store_position"]
    fits = content(api, "twin/fits.py")
    r = put(api, path, text)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text[:500]
    assert r.json()["message"] and len(r.text) < 2_000
    assert served.health()["store_position"] == before
    assert content(api, "twin/fits.py") == fits


def test_a_syntax_error_names_its_line_and_column(api):
    r = put(api, "twin/tasks.py", "import numpy\n\nclass CheckT1(Task:\n    pass\n")
    assert r.status_code == 422
    assert "twin/tasks.py: line 3, column " in r.json()["message"]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"path": "../../jwt.secret"}, 400, "invalid_task_file_path"),
        ({"path": "/etc/passwd"}, 400, "invalid_task_file_path"),
        ({"path": "twin/tasks.py\x00"}, 400, "invalid_task_file_path"),
        ({"path": "nosuch/tasks.py"}, 400, "unknown_task_backend"),
        ({"path": "twin/knowledge/CheckT1.md"}, 400, "task_file_type_not_allowed"),
        ({"path": "twin/nothing_here.py"}, 404, "task_file_not_found"),
        ({"path": "twin/tasks.py", "version": 1}, 404, "task_file_not_found"),
        ({"path": "x" * 201}, 422, "invalid_request"),
    ],
)
def test_a_bad_read_is_refused_before_anything_is_read(api, params, status, code):
    r = api.get(f"{FILES}/content", params=params)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text[:300]
    assert "root:x:" not in r.text and "BEGIN" not in r.text


def test_an_unknown_backend_is_refused_on_every_route_that_takes_one(api):
    for route in ("tree", "tasks", "backend-config"):
        r = api.get(f"{FILES}/{route}", params={"backend": "../twin"})
        assert (r.status_code, r.json()["code"]) == (400, "unknown_task_backend"), route
