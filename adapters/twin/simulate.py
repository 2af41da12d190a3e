"""One job's simulation, run in a worker process (numpy and the transpiler hold the GIL
for long stretches; the command writer must not wait on them)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson

from twin import engine
from twin.circuit_input import (
    CircuitLimits,
    CircuitSize,
    check_circuit,
    check_circuits,
    read_circuit,
)
from twin.circuits import DEFAULT_OPTIMIZATION_LEVEL, Program, compile_for
from twin.controller import ControllerState, effective_noise
from twin.device import Backend, Device
from twin.errors import TwinError
from twin.job_cost import planned_seconds
from twin.noise import NoiseModel
from twin.plan import plan
from twin.sampling import DEFAULT_RESULT_FORMAT, marginals

_PROGRAMS: dict[tuple, Program] = {}


def compiled(circuit: Any, device: Device, optimization_level: int) -> Program:
    """Transpiling costs ~8 ms, more than simulating a small circuit: each distinct
    (device, circuit) is compiled once per worker. The transpiler's own seed is fixed, so
    a circuit always maps the same way; the job's seed drives the sampling."""
    text = (
        circuit if isinstance(circuit, str) else orjson.dumps(circuit, option=orjson.OPT_SORT_KEYS)
    )
    key = (device, text, optimization_level)
    if key not in _PROGRAMS:
        if len(_PROGRAMS) > 2048:
            _PROGRAMS.clear()
        _PROGRAMS[key] = compile_for(read_circuit(circuit), device, 0, optimization_level)
    return _PROGRAMS[key]


def run_job(
    backend: Backend,
    state: ControllerState,
    circuits: list[Any],
    shots: int,
    seed: int,
    at: float,
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL,
    budget_seconds: float | None = None,
    result_format: str = DEFAULT_RESULT_FORMAT,
) -> tuple[list[dict[str, Any]], float]:
    """Per-circuit results and the simulation time in ms. The same arguments give the
    same counts, bit for bit. With `result_format` "marginals", each result carries
    `marginals` (per classical bit, clbit 0 first, the shots that read 1), computed from
    the same counts, and `counts` is empty. A job whose circuits, as mapped onto the device, would
    cost more than `budget_seconds` fails before it runs (the estimate at submission
    sees the written circuits; routing can join their qubits into wider parts)."""
    t0 = time.perf_counter()
    noise = NoiseModel(effective_noise(backend, state, at))
    rng = np.random.default_rng(seed)
    programs = [compiled(circuit, backend.device, optimization_level) for circuit in circuits]
    if budget_seconds is not None:
        coherent = noise.coherent_qubits
        planned = [plan(program, shots, backend.limits, None, coherent) for program in programs]
        seconds = sum(planned_seconds(parts, shots) for parts in planned)
        if seconds > budget_seconds:
            widest = max((len(p.program.active_qubits) for ps in planned for p in ps), default=0)
            raise TwinError(
                "job_too_expensive",
                f"mapped onto {backend.backend_id}, the job is estimated at {seconds:.3g} s"
                f" (its widest part entangles {widest} qubits); the budget is"
                f" {budget_seconds:g} s: route fewer gates between distant qubits, or use"
                " optimization_level 1 (it picks a layout)",
            )
    results = []
    for index, program in enumerate(programs):
        counts, ran = engine.run(program, noise, shots, rng, backend.limits)
        result = {"circuit_index": index, "shots": shots, "counts": counts, "engine": ran.engine,
                  "approximation": ran.approximation,
                  "parts": [{"qubits": list(q), "engine": e} for q, e in ran.parts],
                  "qubits_used": list(program.active_qubits)}  # fmt: skip
        if result_format == "marginals":
            result["marginals"] = marginals(counts, program.num_clbits)
            result["counts"] = {}
        results.append(result)
    return results, 1000 * (time.perf_counter() - t0)


def warm_up() -> None:
    """Import and compile everything once, so the first job is not the slow one."""
    from config.twin_files import load_backends, read_dir

    backend = next(iter(load_backends(read_dir()).values()))
    bell = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'
    run_job(backend, ControllerState(), [bell], 16, 0, 0.0)


def size_circuits(circuits: list[Any], limits: CircuitLimits) -> list[CircuitSize]:
    """The checker's call: each circuit screened, parsed and sized (a refusal names its
    index). Runs in a child process with a memory cap, so a parser that misbehaves on
    hostile text takes down only that child."""
    return check_circuits(circuits, limits)


def warm_up_checker() -> None:
    check_circuit('OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1]; h q[0];')
