"""A full one-qubit calibration of a 64-qubit backend through the API (not a test).

Starts a fresh `qledger serve` (temp data dir, embedded NATS, SQLite), registers a chip
bound to the backend, and runs every one-qubit task on all its qubits as one calibration
run (POST /api/calibrations/run), timing it from the request to the execution's end.
Then it scores each fitted value against the twin's ground truth at that time
(/telemetry/qubits) as bench/calibrate.py does in process, and prints:

* the run's time and its split per stage, as the runner reports it in the execution's
  message (build the circuits, the twin's jobs, fit, figures, record);
* the twin's own simulation time (the jobs' run_ms, summed);
* the raw baseline, in the same run: the same tasks' circuits compiled and simulated in
  this process with no server (bench/calibrate.py's loop).

    cd /work/main && .venv/bin/python bench/calibrate_api.py [--backend square_64]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ first on sys.path would let bench/twin.py shadow the twin package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.append(str(Path(__file__).parent.parent))

import argparse
import hashlib
import signal
import tempfile
import time

import httpx
import numpy as np

from bench.calibrate import UNIT, relative_error
from bench.harness import start
from calibration.tasks import TASKS

TWIN = "/api/v1/digital-twin"


def truth_of(row: dict) -> dict[str, float]:
    p10, p01 = row["readout_p1_given_0"], row["readout_p0_given_1"]
    return {
        "t1": row["t1_us"], "t2_star": row["t2_us"], "t2_echo": row["t2_us"],
        # A fresh twin: the drive was uncorrected when Ramsey and Rabi measured it (the run
        # then corrects it, and telemetry's effective values fall to the residual).
        "detuning": row["uncorrected_detuning_mhz"],
        "pi_amplitude": 1 / (1 + row["uncorrected_amplitude_error"]),
        "p10": p10, "p01": p01, "average_readout_fidelity": 1 - (p10 + p01) / 2,
        "x90_gate_fidelity": 1 - row["gate_error"],
    }  # fmt: skip


def bell(execution: dict, edges: dict[str, float]) -> None:
    """Couplings have no single true fidelity to score against: F is printed next to
    what a depolarising cx of the twin's effective error r alone would give (1 - 5r/4);
    the h pulse and the qubits' decay during the gate take the rest."""
    rows = [t for t in execution["task"] if t["name"] == "BellStateFidelity"]
    done = [t for t in rows if t["status"] == "completed"]
    f = np.array([t["output_parameters"]["bell_state_fidelity"]["value"] for t in done])
    ideal = np.array([1 - 1.25 * edges[t["qid"]] for t in done])
    print(f"BellStateFidelity        bell_state_fidelity {len(done)}/{len(rows)}:"
          f" F median {np.median(f):.4f}, min {f.min():.4f};"
          f" 1 - 5r/4 median {np.median(ideal):.4f}, median gap {np.median(ideal - f):.4f}")  # fmt: skip


def score(execution: dict, truth: dict[str, dict[str, float]]) -> None:
    print(f"{'task':24} {'output':18} {'ok':>5} {'within 3σ':>9} {'err p50':>9} {'err max':>9}")
    for name, task in TASKS.items():
        if task.task_type != "qubit" or not any(t["name"] == name for t in execution["task"]):
            continue
        results = [t for t in execution["task"] if t["name"] == name]
        for out in task.outputs:
            if out.name == "error_per_clifford":
                continue
            pulls, errs = [], []
            for t in results:
                if t["status"] != "completed":
                    continue
                got = t["output_parameters"][out.name]
                true = truth[t["qid"]][out.name]
                diff = got["value"] - true
                pulls.append(abs(diff) / got["error"] if got["error"] else np.inf)
                errs.append(relative_error(out.name, diff, true))
            ok = f"{len(pulls)}/{len(results)}"
            within = np.mean(np.array(pulls) <= 3) if pulls else float("nan")
            print(f"{name:24} {out.name:18} {ok:>5} {within:9.0%} {np.median(errs):9.4f}"
                  f" {np.max(errs):9.4f}  {UNIT.get(out.name, 'abs')}")  # fmt: skip


def job_ms(api: httpx.Client, execution_id: str, tasks: int) -> float:
    """The twin's simulation time of the run's jobs (their ids follow from the run's)."""
    short = hashlib.sha256(f"default/{execution_id}".encode()).hexdigest()[:12]
    total = 0.0
    for t in range(tasks):
        j = 0
        while (r := api.get(f"{TWIN}/jobs/cal-{short}-{t}-{j}")).status_code == 200:
            total += r.json().get("run_ms") or 0.0
            j += 1
    return total


def calibrate(api: httpx.Client, tasks: list[str], qids: list[str], seed: int):
    r = api.post("/api/calibrations/run",
                 json={"chip_id": "bench", "tasks": tasks, "qids": qids, "seed": seed})  # fmt: skip
    r.raise_for_status()
    execution_id = r.json()["execution_id"]
    while (e := api.get(f"/api/executions/{execution_id}")).status_code != 200 or e.json()[
        "status"
    ] == "running":
        time.sleep(0.5)
    return execution_id, e.json()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="square_64")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, base, token = start(Path(tmp), "bench-password-1")
        try:
            api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                               timeout=60)  # fmt: skip
            chip = api.post("/api/chips", json={"chip_id": "bench", "backend_id": args.backend})
            chip.raise_for_status()
            qids = [str(q) for q in range(chip.json()["size"])]
            couplings = api.get("/api/chips/bench/couplings", params={"limit": 512}).json()
            qids += [c["qid"] for c in couplings["couplings"]]
            t0 = time.perf_counter()
            execution_id, execution = calibrate(api, list(TASKS), qids, seed=1)
            wall = time.perf_counter() - t0
            # Again, the coherence tasks only: each qubit's delays now follow its value.
            _, second = calibrate(api, ["CheckT1", "CheckRamsey", "CheckT2Echo"], qids, seed=2)
            rows = api.get(f"{TWIN}/telemetry/qubits", params={"backend_id": args.backend}).json()
            truth = {str(row["qubit"]): truth_of(row) for row in rows["qubits"]}
            edges = {
                "-".join(map(str, sorted(e["qubits"]))): e["gate_error"] for e in rows["edges"]
            }
            twin_ms = job_ms(api, execution_id, len(TASKS))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    n_couplings = sum("-" in q for q in qids)
    print(f"{args.backend}: {len(qids) - n_couplings} qubits, {n_couplings} couplings,"
          f" all {len(TASKS)} tasks, one run "
          f"through the API: {execution['status']}\n")  # fmt: skip
    score(execution, truth)
    bell(execution, edges)
    print(
        "\nthe coherence tasks again, each qubit's sweep laid around its value from the first run:"
    )
    score(second, truth)
    print(f"\nrequest -> execution ended: {wall:.1f} s")
    print(f"runner's split: {execution['message'].rsplit('(', 1)[-1].rstrip(')')}")
    print(f"twin simulation (jobs' run_ms, summed): {twin_ms / 1000:.1f} s")
    if not args.no_baseline:
        import subprocess

        print("\nraw baseline, the same tasks in this process (bench/calibrate.py):")
        subprocess.run([sys.executable, str(Path(__file__).parent / "calibrate.py"),
                        "--backend", args.backend], check=True)  # fmt: skip


if __name__ == "__main__":
    main()
