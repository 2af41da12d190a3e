"""Seed imports against a running `qledger serve`: manual seeds become parameter
versions whose lineage leads to the import, a backend import seeds every qubit of a chip
bound to square_64 from its configuration (and seed-compare then finds no difference),
the calibration note, and bad imports, which are refused and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import Serve, running

pytestmark = pytest.mark.e2e

SEEDS = "/api/calibrations"
SEED_PARAMETERS = [
    "qubit_frequency",
    "t1",
    "t2_star",
    "t2_echo",
    "average_readout_fidelity",
    "p10",
    "p01",
    "x90_gate_fidelity",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("seeds")))


@pytest.fixture(scope="module")
def api(served: Serve) -> httpx.Client:
    client = served.client()
    client.timeout = 60
    for chip in ({"chip_id": "twin64", "backend_id": "square_64"},
                 {"chip_id": "plain", "size": 4}, {"chip_id": "big", "size": 1024}):  # fmt: skip
        r = client.post("/api/chips", json=chip)
        assert r.status_code == 200, r.text
    return client


def test_a_manual_import_records_versions_that_lead_back_to_it(api):
    body = {
        "chip_id": "plain",
        "source": "manual",
        "manual_data": {
            "qubit_frequency": {"Q00": 7.9, "Q01": {"value": 8.6, "unit": "GHz"}},
            "t1": {"Q00": 55.5, "Q01": None},
        },
    }
    r = api.post(f"{SEEDS}/seed-import", json=body, headers={"Idempotency-Key": "manual-1"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["source"], answer["imported_count"], answer["skipped_count"]) == (
        "manual",
        3,
        1,
    )
    assert answer["error_count"] == 0
    by_key = {(x["parameter_name"], x["qid"]): x for x in answer["results"]}
    assert by_key[("t1", "0")]["value"] == 55.5 and by_key[("t1", "0")]["unit"] == "us"
    assert by_key[("qubit_frequency", "1")]["status"] == "imported"
    execution_id = answer["execution_id"]
    assert answer["provenance_activity_id"] == execution_id

    entity = by_key[("t1", "0")]["entity_id"]
    lineage = api.get(f"/api/provenance/lineage/{entity}")
    assert lineage.status_code == 200, lineage.text
    activity = f"{execution_id}:{by_key[('t1', '0')]['task_id']}"
    assert activity in {n["node_id"] for n in lineage.json()["nodes"]}
    history = api.get(
        "/api/provenance/history",
        params={"parameter_name": "qubit_frequency", "qid": "1", "chip_id": "plain"},
    ).json()
    assert [v["value"] for v in history["versions"]] == [8.6]
    assert history["versions"][0]["task_name"] == "SeedImport"
    execution = api.get(f"/api/executions/{execution_id}").json()
    assert (execution["status"], execution["flow_name"]) == ("completed", "qledger.seed_import")
    assert {t["qid"] for t in execution["task"]} == {"0", "1"}

    again = api.post(f"{SEEDS}/seed-import", json=body, headers={"Idempotency-Key": "manual-1"})
    assert again.json()["position"] == answer["position"]  # the first reply, nothing new


def test_a_backend_import_seeds_every_qubit_and_compares_equal(api):
    available = api.get(f"{SEEDS}/seed-parameters/twin64")
    assert available.status_code == 200 and available.json() == SEED_PARAMETERS
    before = api.get(f"{SEEDS}/seed-compare/twin64").json()
    assert before["backend_id"] == "square_64"
    assert {q["status"] for p in before["parameters"].values() for q in p["qubits"].values()} == {
        "new"
    }

    r = api.post(f"{SEEDS}/seed-import", json={"chip_id": "twin64", "source": "qubex_params"})
    assert r.status_code == 200, r.text
    assert r.json()["imported_count"] == 64 * len(SEED_PARAMETERS)
    assert r.json()["source"] == "backend"

    after = api.get(f"{SEEDS}/seed-compare/twin64").json()
    assert list(after["parameters"]) == SEED_PARAMETERS
    assert after["parameters"]["t1"]["unit"] == "us"
    for name, compared in after["parameters"].items():
        assert len(compared["qubits"]) == 64, name
        for qid, q in compared["qubits"].items():
            assert (q["status"], q["difference"]) == ("same", 0.0), (name, qid, q)
            assert q["qdash_value"] == q["yaml_value"]
    one = api.get(f"{SEEDS}/seed-compare/twin64", params={"parameters": "t1,p01"}).json()
    assert list(one["parameters"]) == ["t1", "p01"]


def test_seeds_of_a_chip_bound_to_no_backend(api):
    assert api.get(f"{SEEDS}/seed-parameters/plain").json() == []
    compared = api.get(f"{SEEDS}/seed-compare/plain").json()
    assert compared == {"chip_id": "plain", "backend_id": "", "parameters": {}}


def test_the_calibration_note_is_the_newest_executions_note(api):
    r = api.get(f"{SEEDS}/note", params={"chip_id": "twin64"})
    assert r.status_code == 404 and r.json()["code"] == "calibration_note_not_found"
    note = {"cooldown": "2026-12-01", "operator": "night shift"}
    started = api.post("/api/executions", json={"chip_id": "twin64", "note": note})
    assert started.status_code == 200, started.text
    found = api.get(f"{SEEDS}/note", params={"min_position": started.json()["position"]})
    assert found.status_code == 200, found.text
    assert found.json()["note"] == note
    assert found.json()["execution_id"] == started.json()["execution_id"]


def raw(body: str) -> dict:
    return {"content": body.encode(), "headers": {"content-type": "application/json"}}


MANUAL = {"chip_id": "plain", "source": "manual"}


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({"json": {**MANUAL, "chip_id": "nochip", "manual_data": {"t1": {"0": 50}}}}, 404,
         "chip_not_found"),
        ({"json": {**MANUAL, "manual_data": {"t1": {"9": 50}}}}, 422, "unknown_qid"),
        ({"json": {**MANUAL, "manual_data": {"t1": {"0": 50}}, "qids": ["Q99"]}}, 422,
         "unknown_qid"),
        (raw('{"chip_id": "plain", "source": "manual", "manual_data": {"t1": {"0": NaN}}}'),
         422, "invalid_request"),
        ({"json": {**MANUAL, "manual_data": {"t1": {"0": 1e300}}}}, 422, "invalid_request"),
        ({"json": {**MANUAL, "manual_data": {"t1": {"0": {"value": 50, "unit": "s"}}}}}, 422,
         "seed_unit_mismatch"),
        ({"json": {"chip_id": "plain", "source": "backend"}}, 422, "chip_not_on_twin"),
        ({"json": {"chip_id": "twin64", "parameters": ["readout_amplitude"]}}, 422,
         "unknown_seed_parameter"),
        ({"json": {"chip_id": "big", "source": "manual", "manual_data": {
            f"p{i}": {str(q): 1.0 for q in range(1024)} for i in range(9)}}}, 422,
         "seed_import_too_large"),
        ({"json": {"chip_id": "big", "source": "manual", "manual_data": {
            f"p{i}": {str(q): 1.25 for q in range(1024)} for i in range(64)}}}, 413,
         "command_too_large"),
        (raw('{"chip_id": "big", "source": "manual", "manual_data": {"t1": {'
             + ", ".join(f'"{q}": {q}.5' for q in range(100_000)) + "}}}"), 413,
         "body_too_large"),
    ],
)  # fmt: skip
def test_bad_imports_are_refused_and_change_nothing(served, api, request_kwargs, status, code):
    before = served.health()["store_position"]
    r = api.post(f"{SEEDS}/seed-import", **request_kwargs)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text[:300]
    assert served.health()["store_position"] == before


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/seed-parameters/nochip", {}, 404, "chip_not_found"),
        ("/seed-compare/nochip", {}, 404, "chip_not_found"),
        ("/seed-compare/twin64", {"parameters": "t1,../../etc"}, 422, "unknown_seed_parameter"),
    ],
)
def test_bad_seed_reads_are_refused(api, path, params, status, code):
    r = api.get(SEEDS + path, params=params)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
