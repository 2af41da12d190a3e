"""The HTTP API against one running `qledger serve`: reference shapes, error bodies,
idempotency over HTTP, read-your-writes and lineage."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import ADMIN_PASSWORD, QLEDGER, Serve, running

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("serve")))


@pytest.fixture(scope="module")
def api(served: Serve) -> Iterator[httpx.Client]:
    client = served.client()
    assert client.post("/api/chips", json={"chip_id": "c9", "size": 9}).status_code == 200
    r = client.post(
        "/api/executions", json={"chip_id": "c9", "execution_id": "e1", "tags": ["daily"]}
    )
    assert r.status_code == 200, r.text
    yield client


def task(task_id: str, minute: int, **extra) -> dict:
    return {
        "task_id": task_id,
        "task_name": "CheckQubitFrequency",
        "qid": "4",
        "output_parameters": {"qubit_frequency": {"value": 7.9 + minute / 1000, "unit": "GHz"}},
        "start_at": f"2026-05-01T10:{minute:02d}:00Z",
        "end_at": f"2026-05-01T10:{minute:02d}:30Z",
        **extra,
    }


def test_chip_endpoints_have_the_reference_shapes(api: httpx.Client):
    chips = api.get("/api/chips").json()
    assert chips["total"] == 1
    assert set(chips["chips"][0]) == {
        "chip_id", "size", "topology_id", "qubit_count", "coupling_count", "installed_at",
        "backend_id",  # qledger's: the twin backend a chip is bound to ("" for none)
    }  # fmt: skip
    qubits = api.get("/api/chips/c9/qubits", params={"limit": 4, "offset": 2}).json()
    assert (qubits["total"], qubits["limit"], qubits["offset"]) == (9, 4, 2)
    assert [q["qid"] for q in qubits["qubits"]] == ["2", "3", "4", "5"]
    assert set(qubits["qubits"][0]) == {"qid", "chip_id", "status", "data"}
    picked = api.get("/api/chips/c9/qubits", params=[("qids", "8"), ("qids", "0")]).json()
    assert [q["qid"] for q in picked["qubits"]] == ["0", "8"]
    couplings = api.get("/api/chips/c9/couplings").json()
    assert couplings["total"] == 12 and couplings["couplings"][0]["qid"] == "0-1"
    assert api.get("/api/chips/c9/couplings/4-7").status_code == 200
    for path in ("/api/chips/nope", "/api/chips/c9/qubits/99", "/api/chips/c9/couplings/0-4"):
        r = api.get(path)
        assert r.status_code == 404 and r.json()["code"] == "not_found", path


def test_bad_input_gets_a_coded_4xx_and_changes_nothing(api: httpx.Client):
    before = api.get("/api/health").json()["store_position"]
    cases = [
        ("/api/chips", {"chip_id": "x", "size": 0}, 422, "invalid_request"),
        ("/api/chips", {"chip_id": "bad id!", "size": 4}, 422, "invalid_request"),
        (
            "/api/chips",
            {"chip_id": "x", "size": 4, "topology_id": "heavy-hex"},
            422,
            "unknown_topology",
        ),
        ("/api/chips", {"chip_id": "c9", "size": 9}, 409, "chip_exists"),
        ("/api/executions", {"chip_id": "nope"}, 404, "chip_not_found"),
        ("/api/executions/e1/tasks", task("t", 1, status="bogus"), 422, "invalid_request"),
        ("/api/executions/e1/tasks", task("t", 1, qid="42"), 422, "unknown_qid"),
        ("/api/executions/e1/tasks", task("t", 1, start_at="yesterday"), 422, "invalid_request"),
        (
            "/api/executions/e1/tasks",
            task("t", 1, start_at="2026-05-01T10:00:00"),
            422,
            "invalid_request",
        ),
        ("/api/executions/e1/tasks", {**task("t", 1), "extra": 1}, 422, "invalid_request"),
        ("/api/executions/nope/tasks", task("t", 1), 404, "execution_not_found"),
        ("/api/executions/bad%20id/tasks", task("t", 1), 422, "invalid_request"),
    ]
    for path, body, status, code in cases:
        r = api.post(path, json=body)
        assert (r.status_code, r.json()["code"]) == (status, code), (path, body, r.text)
        assert r.json()["message"]
    r = api.post("/api/chips", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert api.get("/api/health").json()["store_position"] == before


def test_idempotency_key_over_http_returns_the_first_reply(api: httpx.Client):
    headers = {"Idempotency-Key": "http-key-1"}
    first = api.post("/api/executions/e1/tasks", json=task("tk", 5), headers=headers)
    again = api.post("/api/executions/e1/tasks", json=task("tk", 5), headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    other = api.post("/api/executions/e1/tasks", json=task("tk2", 6), headers=headers)
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    # Without a task_id the server makes one; a retry must still be the same command.
    body = {k: v for k, v in task("unused", 7).items() if k != "task_id"}
    made = api.post("/api/executions/e1/tasks", json=body, headers={"Idempotency-Key": "k-gen"})
    retried = api.post("/api/executions/e1/tasks", json=body, headers={"Idempotency-Key": "k-gen"})
    assert made.status_code == retried.status_code == 200
    assert made.json() == retried.json()


def test_an_oversized_command_is_refused_with_413(api: httpx.Client):
    body = task("big", 8, run_parameters={"blob": "x" * 300_000})
    r = api.post("/api/executions/e1/tasks", json=body)
    assert (r.status_code, r.json()["code"]) == (413, "command_too_large")


def test_versions_lineage_and_read_your_writes(api: httpx.Client):
    r1 = api.post("/api/executions/e1/tasks", json=task("f1", 10)).json()
    r2 = api.post("/api/executions/e1/tasks", json=task("f2", 20)).json()
    reads = {"qubit_frequency": {"value": 7.91}}
    t1 = task(
        "t1", 30, input_parameters=reads, output_parameters={"t1": {"value": 50.0, "unit": "us"}}
    )
    t1["start_at"] = "2026-05-01T10:15:00Z"  # read the frequency while f1's was valid
    r3 = api.post("/api/executions/e1/tasks", json=t1).json()
    assert r1["position"] < r2["position"] < r3["position"]

    entity = api.get(
        "/api/provenance/entities/t1:4:e1:t1", params={"min_position": r3["position"]}
    ).json()
    assert entity["value"] == 50.0 and entity["version"] == 1 and entity["valid_until"] is None
    history = api.get(
        "/api/provenance/history", params={"parameter_name": "qubit_frequency", "qid": "4"}
    ).json()
    versions = history["versions"]
    assert [v["task_id"] for v in versions][:2] == ["f2", "f1"]
    assert versions[1]["valid_until"] == versions[0]["valid_from"]
    qubit = api.get("/api/chips/c9/qubits/4").json()
    assert qubit["data"]["qubit_frequency"]["entity_id"] == "qubit_frequency:4:e1:f2"
    assert qubit["data"]["t1"]["value"] == 50.0
    result = api.get("/api/tasks/t1/result").json()
    assert result["execution_id"] == "e1" and result["tags"] == ["daily"]
    assert result["input_parameters"]["qubit_frequency"]["value"] == 7.91

    execution = api.get("/api/executions/e1").json()
    assert execution["chip_id"] == "c9" and execution["status"] == "running"
    listing = api.get("/api/executions", params={"chip_id": "c9"}).json()
    assert listing["total"] == 1 and listing["executions"][0]["execution_id"] == "e1"
    # A position the store never gave out is refused at once, not waited for.
    too_far = api.get("/api/chips/c9", params={"min_position": 10**9}, timeout=30)
    assert too_far.status_code == 422 and too_far.json()["code"] == "position_not_in_store"
    by_header = api.get("/api/chips/c9", headers={"X-Min-Position": str(10**9)}, timeout=30)
    assert by_header.status_code == 422
    assert (
        api.get("/api/chips/c9", headers={"X-Min-Position": str(r3["position"])}).status_code == 200
    )


def test_a_finished_execution_takes_no_more_results(api: httpx.Client):
    assert (
        api.post("/api/executions", json={"chip_id": "c9", "execution_id": "e2"}).status_code == 200
    )
    cancel = api.post("/api/executions/e2/cancel", json={"message": "operator"})
    assert cancel.status_code == 200
    r = api.post("/api/executions/e2/tasks", json=task("late", 40))
    assert (r.status_code, r.json()["code"]) == (409, "execution_finished")
    done = api.get("/api/executions/e2", params={"min_position": cancel.json()["position"]}).json()
    assert done["status"] == "cancelled" and done["end_at"] is not None


def test_an_excluded_result_leaves_best_and_average_but_not_the_record(api: httpx.Client):
    assert (
        api.post("/api/executions", json={"chip_id": "c9", "execution_id": "x"}).status_code == 200
    )
    for tid, minute, value in (("a", 11, 50.0), ("outlier", 12, 95.0), ("b", 13, 60.0)):
        body = task(tid, minute, qid="2", output_parameters={"t1": {"value": value}})
        r = api.post("/api/executions/x/tasks", json=body)
        assert r.status_code == 200, r.text
    api.headers["X-Min-Position"] = str(r.json()["position"])

    def t1(mode: str, **params) -> dict:
        path = "/api/metrics/chips/c9/metrics"
        got = api.get(path, params={"selection_mode": mode, **params})
        assert got.status_code == 200, got.text
        return got.json()["qubit_metrics"]["t1"]["2"]

    assert t1("best")["value"] == 95.0
    assert (t1("average")["value"], t1("average")["count"]) == (pytest.approx(205 / 3), 3)
    before = datetime.now(UTC).isoformat()

    mark = api.put(
        "/api/executions/x/tasks/outlier/exclusion",
        json={"reason": "TLS defect crossed the qubit during the fit"},
    )
    assert mark.status_code == 200, mark.text
    api.headers["X-Min-Position"] = str(mark.json()["position"])
    assert t1("best")["value"] == 60.0
    assert (t1("average")["value"], t1("average")["count"]) == (55.0, 2)
    assert t1("latest")["value"] == 60.0  # the record itself is unchanged
    assert t1("best", as_of=before)["value"] == 95.0  # the past as it was then

    back = api.put("/api/executions/x/tasks/outlier/exclusion", json={"excluded": False})
    api.headers["X-Min-Position"] = str(back.json()["position"])
    assert t1("best")["value"] == 95.0
    del api.headers["X-Min-Position"]

    for path, code in (
        ("/api/executions/x/tasks/nope/exclusion", "task_not_found"),
        ("/api/executions/nope/tasks/a/exclusion", "execution_not_found"),
    ):
        r = api.put(path, json={})
        assert (r.status_code, r.json()["code"]) == (404, code)


def test_events_tail_prints_the_stream_as_json_lines(api: httpx.Client, served: Serve):
    env = {**os.environ, "QLEDGER_DATA_DIR": str(served.data_dir)}
    env.pop("QLEDGER_NATS_URL", None)
    with pytest.raises(subprocess.TimeoutExpired) as tail:
        subprocess.run(
            [QLEDGER, "events", "tail", "--from-start"], env=env, capture_output=True, timeout=4
        )
    lines = [json.loads(line) for line in tail.value.stdout.decode().splitlines()]
    # The first admin is created before anything else; no password appears, only its hash.
    assert lines[0]["type"] == "identity.UserRegistered" and lines[0]["position"] == 1
    assert lines[0]["payload"]["password_hash"].startswith("$argon2id$")
    assert ADMIN_PASSWORD not in tail.value.stdout.decode()
    assert "chip.ChipRegistered" in {e["type"] for e in lines}
    assert [e["position"] for e in lines] == list(range(1, len(lines) + 1))


def test_schema_lists_every_command_and_event():
    out = subprocess.run(
        [QLEDGER, "schema"], capture_output=True, text=True, timeout=60, check=True
    )
    doc = json.loads(out.stdout)
    assert "qledger.cmd.calibration.record_task_result" in doc["commands"]
    size = doc["commands"]["qledger.cmd.chip.register"]["properties"]["size"]["anyOf"]
    assert {"type": "null"} in size and any(s.get("maximum") == 1024 for s in size)
    assert {"chip.ChipRegistered", "calibration.ParameterVersionRecorded"} <= set(doc["events"])
    assert doc["events"]["calibration.TaskResultRecorded"]["schema_version"] == 2  # + figures


def test_api_docs_are_served_and_list_the_reference_paths(api: httpx.Client):
    assert api.get("/docs").status_code == 200
    spec = api.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in (
        "/api/chips/{chip_id}/qubits/{qid}",
        "/api/executions/{flow_run_id}/cancel",
        "/api/tasks/{task_id}/result",
        "/api/provenance/history",
    ):
        assert path in paths, path


def test_rebuild_refuses_while_the_server_holds_the_read_models(served: Serve):
    env = {**os.environ, "QLEDGER_DATA_DIR": str(served.data_dir)}
    out = subprocess.run(
        [QLEDGER, "projections", "rebuild"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and "in use by a running qledger" in out.stderr


def test_a_copy_of_the_read_models_as_of_a_position_or_moment(
    api: httpx.Client, served: Serve, tmp_path
):
    import duckdb

    env = {**os.environ, "QLEDGER_DATA_DIR": str(served.data_dir)}
    first = api.post("/api/executions/e1/tasks", json=task("asof1", 50)).json()["position"]
    api.post("/api/executions/e1/tasks", json=task("asof2", 51))
    copy = tmp_path / "asof.duckdb"
    out = subprocess.run(
        [QLEDGER, "projections", "rebuild", "--output", str(copy), "--to-position", str(first)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    with duckdb.connect(str(copy), read_only=True) as db:
        tasks = {r[0] for r in db.execute("SELECT task_id FROM task_result").fetchall()}
        assert "asof1" in tasks and "asof2" not in tasks
        (pos,) = db.execute("SELECT min(position) FROM projector_position").fetchone()
        assert pos == first
    before_anything = subprocess.run(
        [QLEDGER, "projections", "rebuild", "--output", str(copy), "--as-of", "2000-01-01T00:00:00+00:00"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert before_anything.returncode == 0 and "from 0 events" in before_anything.stdout


def test_swagger_signs_in_and_needs_no_internet(served: Serve):
    spec = httpx.get(served.base + "/openapi.json", timeout=30).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": schemes["bearer"]["description"],
    }  # fmt: skip
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
    # A route that needs a credential says so, with either scheme; open ones say nothing.
    assert spec["paths"]["/api/chips"]["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "security" not in spec["paths"]["/api/health"]["get"]
    assert "security" not in spec["paths"]["/api/auth/login"]["post"]
    page = httpx.get(served.base + "/docs", timeout=30)
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "/docs-assets/swagger-ui-bundle.js" in page.text
    bundle = httpx.get(served.base + "/docs-assets/swagger-ui-bundle.js", timeout=30)
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
