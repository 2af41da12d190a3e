"""The hostile-input suite: what an attacker with an ordinary account sends, against a
running `qledger serve`. Every input gets a 4xx with a stable code, writes nothing,
leaks nothing of the server's files, and other clients are served meanwhile at their
usual latency. docs/limits.md lists the limits these inputs meet."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import ADMIN, Serve, running

pytestmark = pytest.mark.e2e

TWIN = "/api/v1/digital-twin"
HEAD = 'OPENQASM 2.0; include "qelib1.inc";'
BELL = f"{HEAD} qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;"
BIG = 2**63
# A job that runs for seconds (14 non-Clifford qubits: trajectories) yet is estimated
# within the default budget: the time limit stops it.
SLOW = f"{HEAD} qreg q[14]; creg c[14];" + "".join(
    f" rx(0.{i + 1}) q[{i}]; cx q[{i}],q[{(i + 1) % 14}];" for i in range(14) for _ in range(3)
) + " measure q -> c;"  # fmt: skip
TIME_LIMIT = 4.0


def entangle(n: int) -> str:
    """A CX chain: joins n qubits into one part (qubits that never interact run apart)."""
    return "".join(f" cx q[{i}],q[{i + 1}];" for i in range(n - 1))


def nested_gates(levels: int = 13) -> str:
    lines = [HEAD, "gate g0 a { x a; x a; x a; x a; x a; x a; x a; x a; }"]
    lines += [f"gate g{i} a {{ " + f"g{i - 1} a; " * 8 + "}" for i in range(1, levels)]
    return "\n".join([*lines, "qreg q[1];", f"g{levels - 1} q[0];"])


def nested(depth: int) -> str:
    """JSON objects `depth` deep, as text (a client's encoder would refuse 5,000)."""
    return '{"n": ' * (depth - 1) + '{"leaf": 1}' + "}" * (depth - 1)


def raw(body: str) -> dict:
    return {"content": body.encode(), "headers": {"content-type": "application/json"}}


def job(circuit, shots=100, backend="square_100", **extra) -> dict:
    return {"backend_id": backend, "circuits": [circuit], "shots": shots, **extra}


def yaml_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    return "\n".join(lines) + "\n"


# (what, method, path, request keyword arguments, status, code)
CASES: list[tuple[str, str, str, dict, int, str]] = [
    # -- QASM includes: only the built-in qelib1.inc ------------------------------------
    *[
        (f"include {name}", "POST", f"{TWIN}/jobs",
         {"json": job(f'OPENQASM 2.0; include "{name}"; qreg q[1];')}, 422,
         "include_not_allowed")
        for name in ("/etc/passwd", "jwt.secret", "../jwt.secret", "data/jwt.secret",
                     "/proc/self/environ", "./qelib1.inc")
    ],
    ("an include with a NUL byte", "POST", f"{TWIN}/jobs",
     {"json": job('OPENQASM 2.0; include "qelib1.inc\0/etc/passwd"; qreg q[1];')}, 422,
     "invalid_qasm"),
    # -- sizes before parsing --------------------------------------------------------
    ("qreg of 2^31", "POST", f"{TWIN}/jobs", {"json": job(f"{HEAD} qreg q[2147483648];")},
     422, "too_many_qubits"),
    ("qreg of 5,000,000", "POST", f"{TWIN}/jobs", {"json": job(f"{HEAD} qreg q[5000000];")},
     422, "too_many_qubits"),
    ("qreg wider than the backend", "POST", f"{TWIN}/jobs",
     {"json": job(f"{HEAD} qreg q[101]; h q[0];")}, 422, "too_many_qubits"),
    ("creg of 10^9", "POST", f"{TWIN}/jobs", {"json": job(f"{HEAD} creg c[1000000000];")},
     422, "too_many_clbits"),
    ("QASM of 100 kB", "POST", f"{TWIN}/jobs",
     {"json": job(f"{HEAD} qreg q[1];" + " x q[0];" * 12_500)}, 422, "qasm_too_large"),
    ("gate definitions expanding to 2^39", "POST", f"{TWIN}/jobs",
     {"json": job(nested_gates())}, 422, "too_many_gates"),
    ("circuit dict of 10^9 qubits", "POST", f"{TWIN}/jobs",
     {"json": job({"num_qubits": 1_000_000_000})}, 422, "invalid_circuit"),
    ("circuit dict calling add_register", "POST", f"{TWIN}/jobs",
     {"json": job({"num_qubits": 2, "gates": [{"name": "add_register", "qubits": [1]}]})},
     422, "unsupported_instruction"),
    ("circuit dict with a non-finite angle", "POST", f"{TWIN}/jobs",
     {"json": job({"num_qubits": 1, "gates": [{"name": "rz", "qubits": [0],
                                              "params": ["nan"]}]})}, 422, "invalid_circuit"),
    ("classically controlled QASM", "POST", f"{TWIN}/jobs",
     {"json": job(f"{HEAD} qreg q[1]; creg c[1]; measure q -> c; if(c==1) x q[0];")}, 422,
     "unsupported_instruction"),
    ("opaque gate", "POST", f"{TWIN}/jobs",
     {"json": job(f"{HEAD} opaque o a; qreg q[1]; o q[0];")}, 422, "unsupported_instruction"),
    # -- work budgets ----------------------------------------------------------------
    ("20 entangled non-Clifford qubits x 100,000 shots", "POST", f"{TWIN}/jobs",
     {"json": job(f"{HEAD} qreg q[20];" + "".join(f" t q[{i}]; h q[{i}];" for i in range(20))
                  * 5 + entangle(20), shots=100_000)}, 422, "job_too_expensive"),
    ("an entangled non-Clifford circuit too wide for any engine", "POST", f"{TWIN}/jobs",
     {"json": job(f"{HEAD} qreg q[30];" + "".join(f" t q[{i}];" for i in range(30))
                  + entangle(30))}, 422, "circuit_too_wide"),
    ("optimization level 7", "POST", f"{TWIN}/jobs",
     {"json": {**job(BELL), "metadata": {"optimization_level": 7}}}, 422,
     "invalid_optimization_level"),
    ("a detuning of 60 MHz", "POST", f"{TWIN}/controller/line_5/commands",
     {"json": {"command_type": "set_qubit_noise", "payload": {"qubit": 0, "detuning_mhz": 60}}},
     422, "invalid_payload"),
    ("optimization level 1.5", "POST", f"{TWIN}/jobs",
     {"json": job(BELL, metadata={"optimization_level": 1.5})}, 422,
     "invalid_optimization_level"),
    ("a delay that overflows a double", "POST", f"{TWIN}/jobs",
     {"json": job(f"{HEAD} qreg q[1]; creg c[1]; delay(1e308us) q[0];")}, 422,
     "invalid_circuit"),
    ("a negative delay", "POST", f"{TWIN}/jobs",
     {"json": job(f"{HEAD} qreg q[1]; creg c[1]; delay(-5) q[0];")}, 422, "invalid_qasm"),
    ("a delay of a year", "POST", f"{TWIN}/jobs",
     {"json": job(f"{HEAD} qreg q[1]; creg c[1]; delay(3e7s) q[0];")}, 422,
     "invalid_circuit"),
    ("a delay with a unit nobody uses", "POST", f"{TWIN}/jobs",
     {"json": job({"num_qubits": 1, "gates": [{"name": "delay", "qubits": [0], "params": [1],
                                               "unit": "fortnight"}]})}, 422,
     "invalid_circuit"),
    ("shots 2^63", "POST", f"{TWIN}/jobs", {"json": job(BELL, shots=BIG)}, 422,
     "number_out_of_range"),
    ("shots 2^62", "POST", f"{TWIN}/jobs", {"json": job(BELL, shots=2**62)}, 422,
     "invalid_shots"),
    ("shots -1", "POST", f"{TWIN}/jobs", {"json": job(BELL, shots=-1)}, 422, "invalid_shots"),
    # -- nesting and numbers in bodies -----------------------------------------------
    *[
        (f"job metadata nested {d} deep", "POST", f"{TWIN}/jobs",
         raw(f'{{"backend_id": "square_100", "circuits": ["x"], "metadata": {nested(d)}}}'),
         422, "nesting_too_deep")
        for d in (40, 300, 5000)
    ],
    ("task run_parameters nested 300 deep", "POST", "/api/executions/hx/tasks",
     raw(f'{{"task_id": "t1", "task_name": "CheckT1", "qid": "0", "run_parameters":'
         f' {nested(300)}}}'), 422, "nesting_too_deep"),
    ("a number overflowing a double", "POST", "/api/chips",
     {"content": b'{"chip_id": "z", "size": 1e400}',
      "headers": {"content-type": "application/json"}}, 422, "number_out_of_range"),
    ("an overflowing number after another number", "POST", "/api/chips",
     {"content": b'{"chip_id": "z", "size": 16, "x": [1, 2e400]}',
      "headers": {"content-type": "application/json"}}, 422, "number_out_of_range"),
    ("invalid UTF-8 in a JSON body", "POST", "/api/chips",
     {"content": b'{"chip_id": "\xff\xfe", "size": 16}',
      "headers": {"content-type": "application/json"}}, 422, "invalid_utf8"),
    ("invalid UTF-8 in a form", "POST", "/api/auth/login",
     {"content": b"username=\xff&password=x",
      "headers": {"content-type": "application/x-www-form-urlencoded"}}, 422, "invalid_utf8"),
    ("a body of 2 MB", "POST", "/api/chips",
     {"content": b'{"chip_id": "' + b"x" * 2_000_000 + b'"}',
      "headers": {"content-type": "application/json"}}, 413, "body_too_large"),
    ("a chunked body of 2 MB", "POST", "/api/chips",
     {"chunks": [b'{"chip_id": "', b"x" * 2_000_000, b'"}'],
      "headers": {"content-type": "application/json"}}, 413, "body_too_large"),
    # -- integers in queries, headers and paths ----------------------------------------
    *[
        (f"{name} {value} on {path}", "GET", path, {"params": {name: value}}, 422,
         "invalid_request")
        for path, name in (("/api/admin/projects", "skip"), ("/api/admin/users", "skip"),
                           ("/api/executions", "skip"), ("/api/chips/h1/qubits", "offset"),
                           ("/api/chips/h1/couplings", "offset"),
                           ("/api/chips/h1", "min_position"))
        for value in (BIG, -1)
    ],
    ("X-Min-Position 2^63", "GET", "/api/chips/h1", {"headers": {"X-Min-Position": str(BIG)}},
     422, "invalid_request"),
    ("a QEC round of 2^63", "GET", f"{TWIN}/qec_session/v1/s1/round/{BIG}/syndrome", {}, 422,
     "invalid_request"),
    ("QEC rounds from 2^63", "GET", f"{TWIN}/qec_session/v1/s1/rounds",
     {"params": {"from": BIG}}, 422, "invalid_request"),
    ("job result min_position 2^63", "GET", f"{TWIN}/jobs/j1/result",
     {"params": {"min_position": BIG}}, 422, "invalid_request"),
    # -- YAML and config paths ---------------------------------------------------------
    ("a YAML python tag", "PUT", f"{TWIN}/config/content",
     {"json": {"path": "scheduler/default.yaml",
               "content": "max_shots: !!python/object/apply:os.system ['touch /tmp/pwned']\n"}},
     422, "invalid_config"),
    ("a YAML alias bomb", "PUT", f"{TWIN}/config/content",
     {"json": {"path": "scheduler/default.yaml", "content": yaml_bomb()}}, 422,
     "invalid_config"),
    ("a config path out of the directory", "PUT", f"{TWIN}/config/content",
     {"json": {"path": "../../etc/passwd", "content": "x: 1\n"}}, 404, "config_file_not_found"),
    ("reading a config path out of the directory", "GET", f"{TWIN}/config/content",
     {"params": {"path": "/etc/passwd"}}, 404, "config_file_not_found"),
    ("a figure name with a traversal", "GET", "/api/figures/..%2F..%2Fjwt.secret", {}, 404,
     "not_found"),
    ("a figure name that is a file of the data dir", "GET", "/api/figures/jwt.secret", {}, 422,
     "invalid_figure_path"),
    ("a figure path with a traversal", "GET", "/api/executions/figure",
     {"params": {"path": "../../jwt.secret"}}, 422, "invalid_figure_path"),
    ("an absolute figure path", "GET", "/api/executions/figure",
     {"params": {"path": "/etc/passwd"}}, 422, "invalid_figure_path"),
    ("figure downloads with traversals", "POST", "/api/task-results/figures/download",
     {"json": {"paths": ["../../jwt.secret", "/etc/passwd"]}}, 422, "invalid_figure_path"),
    ("min_position beyond the store", "GET", "/api/chips/h1",
     {"params": {"min_position": 10**12}}, 422, "position_not_in_store"),
    # -- headers ---------------------------------------------------------------------
    ("an Idempotency-Key of 1,000 characters", "POST", "/api/chips",
     {"json": {"chip_id": "k1", "size": 16}, "headers": {"Idempotency-Key": "k" * 1000}},
     422, "invalid_request"),
    ("a project id with a path in it", "GET", "/api/chips",
     {"headers": {"X-Project-Id": "../default"}}, 400, "invalid_project"),
    # -- job result formats and drive corrections ------------------------------------
    ("a result format nobody knows", "POST", f"{TWIN}/jobs",
     {"json": job(BELL, metadata={"result_format": "../../etc/passwd"})}, 422,
     "invalid_result_format"),
    ("a result format that is an object", "POST", f"{TWIN}/jobs",
     {"json": job(BELL, metadata={"result_format": {"counts": 1}})}, 422,
     "invalid_result_format"),
    ("a drive correction scaling the pulses 10^6 times", "POST",
     f"{TWIN}/controller/line_5/commands",
     {"json": {"command_type": "set_drive_correction",
               "payload": {"qubit": 0, "amplitude_scale": 1e6}}}, 422, "invalid_payload"),
    # -- calibration runs ------------------------------------------------------------
    *[
        (f"a calibration run with {what}", "POST", "/api/calibrations/run",
         {"json": {"chip_id": "ht", "tasks": ["CheckT1"], "qids": ["0"], **body}}, status, code)
        for what, body, status, code in (
            ("a task named like a path", {"tasks": ["../../etc/passwd"]}, 422, "unknown_task"),
            ("10^9 sweep points", {"run_parameters": {"CheckT1": {"points": 10**9}}}, 422,
             "invalid_run_parameter"),
            ("a delay guess of 10^300 µs", {"run_parameters": {"CheckT1": {"t1_guess_us": 1e300}}},
             422, "invalid_run_parameter"),
            ("10^5 sequence lengths", {"tasks": ["RandomizedBenchmarking"],
             "run_parameters": {"RandomizedBenchmarking": {"lengths": [1] * 10**5}}}, 422,
             "invalid_run_parameter"),
            ("a run parameter that is an object", {"run_parameters": {"CheckT1": {"shots": {}}}},
             422, "invalid_run_parameter"),
            ("2,000 qubits", {"qids": [str(q) for q in range(2000)]}, 422, "invalid_request"),
            ("a negative seed", {"seed": -1}, 422, "invalid_request"),
            ("a qubit the chip lacks", {"qids": ["7"]}, 422, "unknown_qid"),
            ("a chip not bound to the twin", {"chip_id": "h1"}, 422, "chip_not_on_twin"),
        )
    ],
    ("a chip bound to a backend that does not exist", "POST", "/api/chips",
     {"json": {"chip_id": "hb", "backend_id": "../../etc"}}, 422, "invalid_request"),
    ("a chip bound to an unknown backend", "POST", "/api/chips",
     {"json": {"chip_id": "hb", "backend_id": "nosuch"}}, 422, "invalid_backend"),
    # -- seed imports and reads --------------------------------------------------------
    *[
        (f"a seed import with {what}", "POST", "/api/calibrations/seed-import", kwargs, status,
         code)
        for what, kwargs, status, code in (
            ("a NaN value", raw('{"chip_id": "ht", "source": "manual",'
             ' "manual_data": {"t1": {"0": NaN}}}'), 422, "invalid_request"),
            ("a value of 10^300", {"json": {"chip_id": "ht", "source": "manual",
             "manual_data": {"t1": {"0": 1e300}}}}, 422, "invalid_request"),
            ("a qubit named like a path", {"json": {"chip_id": "ht", "source": "manual",
             "manual_data": {"t1": {"../../etc/passwd": 50}}}}, 422, "invalid_request"),
            ("a parameter named like a path", {"json": {"chip_id": "ht", "source": "manual",
             "manual_data": {"../jwt.secret": {"0": 50}}}}, 422, "invalid_request"),
            ("a qubit the chip lacks", {"json": {"chip_id": "ht", "source": "manual",
             "manual_data": {"t1": {"Q07": 50}}}}, 422, "unknown_qid"),
            ("2,000 qubits", {"json": {"chip_id": "ht", "qids": [str(q) for q in range(2000)]}},
             422, "invalid_request"),
            ("100 parameters", {"json": {"chip_id": "ht",
             "parameters": [f"p{i}" for i in range(100)]}}, 422, "invalid_request"),
            ("a parameter the backend has no seed for", {"json": {"chip_id": "ht",
             "parameters": ["readout_amplitude"]}}, 422, "unknown_seed_parameter"),
            ("a chip not bound to the twin", {"json": {"chip_id": "h1"}}, 422,
             "chip_not_on_twin"),
            ("a chip that does not exist", {"json": {"chip_id": "nochip"}}, 404,
             "chip_not_found"),
        )
    ],
    ("seed comparison of a parameter named like a path", "GET",
     "/api/calibrations/seed-compare/ht", {"params": {"parameters": "t1,../../jwt.secret"}},
     422, "unknown_seed_parameter"),
    ("seed comparison of 10,000 characters of names", "GET",
     "/api/calibrations/seed-compare/ht", {"params": {"parameters": "t1," * 3_400}}, 422,
     "invalid_request"),
    ("the calibration note of a chip named like a path", "GET", "/api/calibrations/note",
     {"params": {"chip_id": "../../etc"}}, 422, "invalid_request"),
    # -- task files: paths are names checked on their text, content parsed, never run --
    *[
        (f"a task file path {what}", "PUT", "/api/task-files/content",
         {"json": {"path": path, "content": "x = 1\n"}}, 400, code)
        for what, path, code in (
            ("out of the directory", "../../jwt.secret", "invalid_task_file_path"),
            ("with a traversal inside", "twin/../../etc/passwd", "invalid_task_file_path"),
            ("that is absolute", "/etc/passwd", "invalid_task_file_path"),
            ("with backslashes", "twin\\..\\..\\jwt.secret", "invalid_task_file_path"),
            ("with a NUL byte", "twin/tasks.py\0.yaml", "invalid_task_file_path"),
            ("with an empty segment", "twin//tasks.py", "invalid_task_file_path"),
            ("of an unknown backend", "qubex/tasks.py", "unknown_task_backend"),
            ("with an unknown extension", "twin/payload.so", "task_file_type_not_allowed"),
        )
    ],
    ("reading a task file out of the directory", "GET", "/api/task-files/content",
     {"params": {"path": "../../jwt.secret"}}, 400, "invalid_task_file_path"),
    ("reading an absolute task file path", "GET", "/api/task-files/content",
     {"params": {"path": "/etc/passwd"}}, 400, "invalid_task_file_path"),
    ("a task file tree of a traversal", "GET", "/api/task-files/tree",
     {"params": {"backend": "../.."}}, 400, "unknown_task_backend"),
    ("a task file with a syntax error", "PUT", "/api/task-files/content",
     {"json": {"path": "twin/tasks.py", "content": "class CheckT1(Task:\n    pass\n"}}, 422,
     "python_syntax_error"),
    ("a tasks.py that drops its task classes", "PUT", "/api/task-files/content",
     {"json": {"path": "twin/tasks.py", "content": "import os\nos.system('touch /tmp/pwned')\n"}},
     422, "task_class_removed"),
    ("a task file nested past the parser", "PUT", "/api/task-files/content",
     {"json": {"path": "twin/x/deep.py", "content": "x = " + "-" * 50_000 + "1"}}, 422,
     "task_file_too_complex"),
    ("a task backend config that is a YAML alias bomb", "PUT", "/api/task-files/content",
     {"json": {"path": "twin/backend.yaml", "content": yaml_bomb()}}, 422,
     "task_file_too_complex"),
    ("a task backend config nested 40 deep", "PUT", "/api/task-files/content",
     {"json": {"path": "twin/backend.yaml", "content": "a: " + "[" * 40 + "]" * 40}}, 422,
     "task_file_too_complex"),
    ("a task backend config with a python tag", "PUT", "/api/task-files/content",
     {"json": {"path": "twin/backend.yaml",
               "content": "defaults: !!python/object/apply:os.system ['touch /tmp/pwned']\n"}},
     422, "invalid_task_file_yaml"),
    ("a task backend config asking 10^9 sweep points", "PUT", "/api/task-files/content",
     {"json": {"path": "twin/backend.yaml",
               "content": "defaults:\n  CheckT1: {points: 1000000000}\n"}}, 422,
     "invalid_backend_config"),
    ("a task file of 200 KiB", "PUT", "/api/task-files/content",
     {"json": {"path": "twin/fits.py", "content": "#" * 200 * 1024}}, 413,
     "task_file_too_large"),
    ("a job id in the calibration runner's namespace", "POST", f"{TWIN}/jobs",
     {"json": job(BELL, job_id="cal-0123456789ab-0-0")}, 422, "reserved_job_id"),
    ("a task file of 201 chained classes", "PUT", "/api/task-files/content",
     {"json": {"path": "twin/extra.py",
               "content": "".join(f"class C{i}(C{i + 1}):\n    pass\n" for i in range(200))
               + "class C200(Task):\n    pass\n"}}, 422, "too_many_classes"),
    ("a Rabi train of 401 pulses", "POST", "/api/calibrations/run",
     {"json": {"chip_id": "ht", "tasks": ["CheckRabi"], "qids": ["0"],
               "run_parameters": {"CheckRabi": {"max_pulses": 401}}}}, 422,
     "invalid_run_parameter"),
]  # fmt: skip

# Bytes of the server's own files that must never come back in an answer.
LEAKS = ("root:x:", "PATH=", "HOME=", "BEGIN", "Traceback")


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    env = {"QLEDGER_TWIN_JOB_TIME_LIMIT_SECONDS": str(TIME_LIMIT)}
    yield from running(Path(tmp_path_factory.mktemp("hostile")), env)


@pytest.fixture(scope="module")
def api(served: Serve) -> httpx.Client:
    client = served.client()
    client.timeout = 60
    assert client.post("/api/chips", json={"chip_id": "h1", "size": 16}).status_code == 200
    bound = client.post("/api/chips", json={"chip_id": "ht", "backend_id": "line_5"})
    assert bound.status_code == 200, bound.text
    client.post("/api/executions", json={"execution_id": "hx", "chip_id": "h1"}).raise_for_status()
    return client


def send(api: httpx.Client, case) -> httpx.Response:
    _, method, path, kwargs, _, _ = case
    if "chunks" in kwargs:  # no Content-Length: the server counts what it reads
        kwargs = {**kwargs, "content": iter(kwargs["chunks"])}
        del kwargs["chunks"]
    return api.request(method, path, **kwargs)


def test_the_table_is_long_enough_to_mean_something():
    assert len(CASES) >= 40


def test_every_integer_parameter_of_the_api_is_bounded(served, api):
    """Every integer in a query, header or path of the OpenAPI document, sent 2^63 and
    -1: a 422, never a 500 from a database that cannot hold the number."""
    spec = api.get("/openapi.json").json()
    tried = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                schema = param.get("schema", {})
                kinds = [schema.get("type"), *(a.get("type") for a in schema.get("anyOf", []))]
                if "integer" not in kinds:
                    continue
                for value in (str(BIG), "-1"):
                    url = path
                    for other in operation.get("parameters", []):
                        if other["in"] == "path":
                            filler = value if other is param else "x"
                            url = url.replace("{" + other["name"] + "}", filler)
                    where = {"query": "params", "header": "headers"}.get(param["in"])
                    kwargs = {where: {param["name"]: value}} if where else {}
                    r = api.request(method.upper(), url, **kwargs)
                    said = f"{method.upper()} {url} {param['name']}={value}: {r.text[:200]}"
                    assert r.status_code == 422 and r.json()["code"] == "invalid_request", said
                    tried += 1
    assert tried >= 100


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_hostile_input_gets_a_coded_4xx_writes_nothing_and_leaks_nothing(served, api, case):
    before = served.health()["store_position"]
    r = send(api, case)
    status, code = case[4], case[5]
    assert (r.status_code, r.json().get("code")) == (status, code), r.text[:500]
    assert r.json().get("message"), "every refusal says why"
    assert not any(leak in r.text for leak in LEAKS), r.text[:500]
    secret = (served.data_dir / "jwt.secret").read_text().strip()
    assert secret[:16] not in r.text
    assert served.health()["store_position"] == before
    assert not Path("/tmp/pwned").exists()


def _chip_write_ms(api: httpx.Client, name: str) -> float:
    started = time.perf_counter()
    r = api.post("/api/chips", json={"chip_id": name, "size": 4})
    assert r.status_code == 200, r.text
    return 1000 * (time.perf_counter() - started)


def test_other_clients_keep_their_latency_while_the_hostile_inputs_run(served, api):
    baseline = [_chip_write_ms(api, f"base{i}") for i in range(30)]
    stop = threading.Event()
    sent = [0]

    def attack() -> None:
        with served.client() as attacker:
            attacker.timeout = 60
            while not stop.is_set():
                for case in CASES:
                    if stop.is_set():
                        return
                    assert send(attacker, case).status_code == case[4]
                    sent[0] += 1

    threads = [threading.Thread(target=attack) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        during = [_chip_write_ms(api, f"during{i}") for i in range(60)]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    after = [_chip_write_ms(api, f"after{i}") for i in range(30)]
    runs = {"base": baseline, "during": during, "after": after}
    p50 = {k: statistics.median(v) for k, v in runs.items()}
    p90 = {k: statistics.quantiles(v, n=10)[-1] for k, v in runs.items()}
    print(f"chip write ms: p50 {p50}, p90 {p90}; worst during {max(during):.0f};"
          f" {sent[0]} bad inputs")  # fmt: skip
    # Two attackers share two cores with the server: some slowdown is the machine's; a
    # parse or a store stall (seconds on every write, before these limits) is not. Each
    # bound is relative to the baseline of the same run, so a loaded machine moves both;
    # a single worst write is the scheduler's to decide and is only printed.
    assert p50["during"] < 4 * p50["base"] + 150
    assert p90["during"] < 5 * p90["base"] + 250
    assert p50["after"] < 2 * p50["base"] + 50
    assert sent[0] >= len(CASES)


def test_x_forwarded_for_does_not_reset_the_login_throttle(served):
    codes = []
    for i in range(12):
        r = httpx.post(
            served.base + "/api/auth/login",
            data={"username": ADMIN, "password": "wrong"},
            headers={"X-Forwarded-For": f"10.0.0.{i}"},
            timeout=30,
        )
        codes.append(r.status_code)
    assert set(codes[:3]) == {401} and codes[-1] == 429, codes
    assert codes.count(401) <= 4, codes


def _submit(client: httpx.Client, circuit: str, shots: int = 100) -> str:
    r = client.post(TWIN + "/jobs", json=job(circuit, shots=shots, backend="square_100"))
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


def _result(client: httpx.Client, job_id: str) -> httpx.Response:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = client.get(f"{TWIN}/jobs/{job_id}/result", params={"wait": 20})
        if r.status_code != 202:
            return r
    raise AssertionError(f"job {job_id} did not end")


def test_a_job_past_the_time_limit_fails_and_the_next_one_runs(api):
    slow = _submit(api, SLOW)
    r = _result(api, slow)
    assert r.json()["status"] == "FAILED"
    assert r.json()["error"]["code"] == "job_time_limit"
    assert f"{TIME_LIMIT:g} s" in r.json()["error"]["message"]
    bell = _result(api, _submit(api, BELL))
    assert bell.json()["status"] == "COMPLETED"


def test_a_running_job_can_be_cancelled_and_the_worker_goes_on(api):
    slow = _submit(api, SLOW)
    deadline = time.monotonic() + 60
    while api.get(f"{TWIN}/jobs/{slow}").json()["status"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.delete(f"{TWIN}/jobs/{slow}").status_code == 200
    assert _result(api, slow).status_code == 410  # cancelled: no result, not FAILED
    bell = _result(api, _submit(api, BELL))
    assert bell.json()["status"] == "COMPLETED"


def test_one_project_cannot_starve_another(served, api):
    other = api.post("/api/projects", json={"name": "second lab"}).json()["project_id"]
    theirs = served.client()
    theirs.timeout = 60
    theirs.headers["X-Project-Id"] = other
    flood = [_submit(api, SLOW) for _ in range(3)]
    bell = _submit(theirs, BELL)
    answer = _result(theirs, bell).json()
    assert answer["status"] == "COMPLETED", answer.get("error")
    # The flood's first job ran (to its limit) before; its second had not ended yet
    # (it needs the whole limit once it starts, after the other project's job).
    assert _result(api, flood[0]).json()["status"] == "FAILED"
    assert api.get(f"{TWIN}/jobs/{flood[1]}").json()["status"] in ("QUEUED", "RUNNING")
    for j in flood:
        api.delete(f"{TWIN}/jobs/{j}")


# -- task names in paths (adapters/http/tasks.py): a page is found by a key of TASKS only
KNOWLEDGE = "/api/tasks/{}/knowledge"
TASK_NAME_CASES: list[tuple[str, str, str, dict, int, str]] = [
    ("a task name with an encoded traversal", "GET", KNOWLEDGE.format("..%2F..%2Fjwt.secret"),
     {}, 404, "not_found"),
    ("a task name with a traversal to the markdown", "GET",
     KNOWLEDGE.format("..%2Fcalibration%2Ftasks.py") + "/markdown", {}, 404, "not_found"),
    ("a task name that is ..", "GET", KNOWLEDGE.format("%2E%2E") + "/markdown", {}, 404,
     "task_not_found"),
    ("a task name with backslashes", "GET", KNOWLEDGE.format("..%5C..%5Cjwt.secret") + "/markdown",
     {}, 404, "task_not_found"),
    ("a task name with a NUL", "GET", KNOWLEDGE.format("CheckT1%00"), {}, 404, "task_not_found"),
    ("a task name with a NUL and the page's suffix", "GET",
     KNOWLEDGE.format("CheckT1%00.md") + "/markdown", {}, 404, "task_not_found"),
    ("a task name that is the page's file name", "GET", KNOWLEDGE.format("CheckT1.md") + "/markdown",
     {}, 404, "task_not_found"),
    ("a task name that is a module of the package", "GET",
     KNOWLEDGE.format("__init__") + "/markdown", {}, 404, "task_not_found"),
    ("a task name of 10,000 characters", "GET", KNOWLEDGE.format("A" * 10_000), {}, 422,
     "invalid_request"),
    ("a task name of 129 characters", "GET", KNOWLEDGE.format("C" * 129) + "/markdown", {}, 422,
     "invalid_request"),
    ("a task backend filter of 10,000 characters", "GET", "/api/tasks",
     {"params": {"backend": "x" * 10_000}}, 422, "invalid_request"),
]  # fmt: skip


@pytest.mark.parametrize("case", TASK_NAME_CASES, ids=[c[0] for c in TASK_NAME_CASES])
def test_a_hostile_task_name_gets_a_coded_4xx_and_no_file(served, api, case):
    before = served.health()["store_position"]
    r = send(api, case)
    assert (r.status_code, r.json().get("code")) == (case[4], case[5]), r.text[:500]
    assert r.json().get("message"), "every refusal says why"
    assert len(r.text) < 2_000, "the name is not echoed in full"
    assert not any(leak in r.text for leak in (*LEAKS, "import ", "OPENQASM", "## "))
    secret = (served.data_dir / "jwt.secret").read_text().strip()
    assert secret[:16] not in r.text
    assert served.health()["store_position"] == before
