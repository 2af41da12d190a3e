"""Calibration tasks: what each one measures, the circuits it runs, and how it turns
counts into parameter values with errors and a quality verdict.

A task runs on several qubits at once, as hardware does: one circuit per sweep point
covers every selected qubit (each measured into its own clbit), so a 64-qubit T1 is 24
circuits, not 1,536. Circuits are OpenQASM 2 text for the twin (or any backend that reads
it) and are meant to run at optimization_level 0: every pulse as written.

Pure code: numpy, scipy, no I/O. The adapters submit the circuits, render the figures
and record the results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from calibration import clifford
from calibration.fits import (
    Fit,
    binomial_sigma,
    damped_cosine,
    exponential_decay,
    rb_decay,
    rotation_train,
)
from calibration.params import Param, RunParameterError, resolve, shots

HEAD = 'OPENQASM 2.0; include "qelib1.inc";'
# QASM text per circuit: the twin takes 64 KiB; the rest is margin.
MAX_CIRCUIT_BYTES = 60_000
# Outputs that are durations: a value whose error is as large as itself says nothing.
TIME_CONSTANTS = frozenset({"t1", "t2_star", "t2_echo"})


@dataclass(frozen=True)
class Output:
    name: str
    unit: str
    description: str


@dataclass(frozen=True)
class Sweep:
    """The circuits of one run: x[i] is the sweep value of circuits[i] (or, where qubits
    sweep over their own values, `per_qubit[q][i]` is qubit q's)."""

    x: list[float]
    circuits: list[str]
    x_label: str
    per_qubit: dict[int, list[float]] | None = None

    def x_of(self, qubit: int) -> list[float]:
        return self.per_qubit[qubit] if self.per_qubit else self.x


@dataclass(frozen=True)
class Outcome:
    """One qubit's result: values and errors by output name, the fit, the verdict, and
    the data a figure and the raw-data record need."""

    qubit: int
    values: dict[str, float]
    errors: dict[str, float]
    ok: bool
    reason: str
    fit: Fit | None
    x: list[float]
    y: list[float]
    y_err: list[float]
    quality: dict[str, float] = field(default_factory=dict)
    target: str = ""  # the qid it is about, when not the qubit itself ("3-4": a coupling)

    @property
    def qid(self) -> str:
        return self.target or str(self.qubit)


def circuit(num_qubits: int, qubits: list[int], body: dict[int, list[str]]) -> str:
    """One QASM circuit: each qubit's statements, then each qubit measured into the
    clbit of its position in `qubits`."""
    lines = [HEAD, f"qreg q[{num_qubits}];", f"creg c[{len(qubits)}];"]
    for q in qubits:
        lines += body.get(q, [])
    lines += [f"measure q[{q}] -> c[{i}];" for i, q in enumerate(qubits)]
    return " ".join(lines)


def _body(text: str, qubit: int) -> list[str]:
    """A one-qubit circuit's statements on `qubit`, without header and measurement."""
    statements = [f"{s.strip()};" for s in text.split(";") if s.strip()]
    return [s for s in statements if f"q[{qubit}]" in s and not s.startswith("measure")]


def marginal_p1(counts: dict[str, int], clbit: int) -> float:
    """P(clbit reads 1) from a count table (bit 0 rightmost, as Qiskit prints)."""
    shots = sum(counts.values())
    ones = sum(n for key, n in counts.items() if key[len(key) - 1 - clbit] == "1")
    return ones / shots if shots else float("nan")


def p1_table(results: list[list[dict]], clbits: int) -> np.ndarray:
    """(clbits, circuits) P(1), from jobs' "marginals" results in sweep order (each
    result: how many shots read 1 per classical bit)."""
    columns = [np.asarray(r["marginals"], dtype=float) / r["shots"] for job in results for r in job]
    table = np.stack(columns, axis=1)
    if table.shape[0] != clbits:
        raise ValueError(f"results carry {table.shape[0]} clbits, expected {clbits}")
    return table


def targets_of(task: Task, qids: list[str]) -> list[str]:
    """The qids of a run that a task runs on: qubits ("3"), or couplings ("3-4")."""
    return [q for q in qids if ("-" in q) == (task.task_type == "coupling")]


class Task:
    name: ClassVar[str]
    description: ClassVar[str]
    task_type: ClassVar[str] = "qubit"  # what its qids name: "qubit" or "coupling"
    result_format: ClassVar[str] = "marginals"  # what it needs of the twin's results
    # (run parameter, parameter): the sweep is laid out around a guess, which for each
    # qubit is the parameter's current value when it has one (the run parameter is the
    # fallback). One circuit then sweeps each qubit over its own delays.
    guess_from: ClassVar[tuple[str, str] | None] = None
    inputs: ClassVar[tuple[str, ...]] = ()  # parameters it reads (their current versions)
    outputs: ClassVar[tuple[Output, ...]]
    parameters: ClassVar[dict[str, Param]] = {"shots": shots(2000)}
    min_r_squared: ClassVar[float] = 0.8
    max_qubits_per_circuit: ClassVar[int] = 1024
    max_reduced_chi2: ClassVar[float] = math.inf

    def sweep(self, num_qubits: int, qubits: list[int], params: dict[str, Any]) -> Sweep:
        raise NotImplementedError

    def analyze(self, qubit: int, x: np.ndarray, p1: np.ndarray, shots: int, params) -> Outcome:
        raise NotImplementedError

    def groups(self, targets: list[str], per_circuit: int | None = None) -> list[list[str]]:
        """The targets that share circuits (one circuit per sweep point covers a group),
        at most `per_circuit` (see qubits_per_circuit) to a circuit."""
        step = per_circuit or self.max_qubits_per_circuit
        return [targets[i : i + step] for i in range(0, len(targets), step)]

    def qubits_per_circuit(self, params: dict[str, Any], num_qubits: int) -> int:
        """The task's own cap, lowered so that the longest circuit keeps within
        MAX_CIRCUIT_BYTES: a long pulse train on many qubits would exceed what the twin
        takes. Measured on one qubit's sweep (the last qubit writes the longest
        statements), with a margin for sequences drawn at random."""
        alone = self.sweep(num_qubits, [num_qubits - 1], params)
        head = len(circuit(num_qubits, [], {}))
        longest = max(len(c) for c in alone.circuits)
        per_qubit = 1.1 * (longest - head) + 1
        fits = int((MAX_CIRCUIT_BYTES - head) // per_qubit)
        if fits < 1:
            raise RunParameterError(
                f"{self.name}: one qubit's circuit would be {longest} bytes, over the"
                f" {MAX_CIRCUIT_BYTES} a circuit may take; ask for fewer points or pulses"
            )
        return min(self.max_qubits_per_circuit, fits)

    def build(
        self,
        num_qubits: int,
        group: list[str],
        params: dict[str, Any],
        guesses: dict[str, float] | None = None,
    ) -> Sweep:
        """The group's circuits. `guesses`: per qid, the guess its own delays follow
        (tasks with `guess_from`); the others use the run parameter's."""
        qubits = [int(q) for q in group]
        if self.guess_from is None or not guesses:
            return self.sweep(num_qubits, qubits, params)
        key = self.guess_from[0]
        # Each qubit's sweep as if it ran alone, then joined circuit by circuit (the
        # sweeps of these tasks have the same number of circuits whatever the guess).
        alone = {q: self.sweep(num_qubits, [q], {**params, key: guesses.get(str(q), params[key])})
                 for q in qubits}  # fmt: skip
        first = alone[qubits[0]]
        circuits = [
            circuit(num_qubits, qubits, {q: _body(alone[q].circuits[i], q) for q in qubits})
            for i in range(len(first.circuits))
        ]
        return Sweep(first.x, circuits, first.x_label, {q: s.x for q, s in alone.items()})

    def analyze_group(
        self, group: list[str], sweep: Sweep, results: list[list[dict]], params: dict[str, Any]
    ) -> list[Outcome]:
        """Every target's outcome from its group's job results (in sweep order)."""
        p1 = p1_table(results, len(group))
        return [
            self.analyze(int(q), np.asarray(sweep.x_of(int(q))), p1[c], params["shots"], params)
            for c, q in enumerate(group)
        ]

    def run_params(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """The run parameters with `given` applied; RunParameterError if one is unknown
        or out of its bounds."""
        return resolve(self.name, self.parameters, given)

    def circuit_count(self, params: dict[str, Any]) -> int:
        """Circuits per qubit group, known before any is built (to budget a run)."""
        return int(params["points"])

    def _decay_time(self, qubit: int, x, p1, shots: int, output: str) -> Outcome:
        """`output` is the time constant of an exponential decay (T1, T2echo)."""
        err = binomial_sigma(p1, shots)
        fit = exponential_decay(x, p1, err)
        values = {output: fit.values.get("tau", float("nan"))}
        errors = {output: fit.errors.get("tau", float("nan"))}
        return self._gate(qubit, fit, x, p1, err, values, errors)

    def _gate(self, qubit: int, fit: Fit, x, y, err, values, errors) -> Outcome:
        """The verdict: a fit that converged, explains the data (R²) and gives finite
        values with errors smaller than the values themselves."""
        data: dict[str, Any] = dict(
            x=list(map(float, x)), y=list(map(float, y)), y_err=list(map(float, err))
        )
        quality = {"r_squared": fit.r_squared, "reduced_chi2": fit.reduced_chi2}
        if not fit.ok:
            return Outcome(qubit, {}, {}, False, fit.reason, fit, **data, quality=quality)
        if not fit.r_squared >= self.min_r_squared:
            reason = f"R² {fit.r_squared:.3f} is below {self.min_r_squared}: the model does not explain the data"
            return Outcome(qubit, {}, {}, False, reason, fit, **data, quality=quality)
        if not fit.reduced_chi2 <= self.max_reduced_chi2:
            reason = (
                f"reduced χ² {fit.reduced_chi2:.2f} is above {self.max_reduced_chi2}:"
                " the data scatter more than their shot noise allows"
            )
            return Outcome(qubit, {}, {}, False, reason, fit, **data, quality=quality)
        bad = [k for k, v in values.items() if not (math.isfinite(v) and math.isfinite(errors[k]))]
        if bad:
            return Outcome(
                qubit, {}, {}, False, f"no finite value for {bad}", fit, **data, quality=quality
            )
        vague = [k for k in values if k in TIME_CONSTANTS and not errors[k] < values[k]]
        if vague:
            reason = (
                f"{vague[0]} = {values[vague[0]]:.3g} ± {errors[vague[0]]:.2g}: the error is as"
                " large as the value (the sweep does not cover the decay: set the guess near it)"
            )
            return Outcome(qubit, {}, {}, False, reason, fit, **data, quality=quality)
        return Outcome(qubit, values, errors, True, "", fit, **data, quality=quality)


class CheckT1(Task):
    name = "CheckT1"
    description = "Energy relaxation: X, a delay, measure. P(1) decays as e^(-t/T1)."
    inputs = ("t1",)
    outputs = (Output("t1", "us", "energy relaxation time"),)
    guess_from = ("t1_guess_us", "t1")
    parameters = {
        "shots": shots(2000),
        "points": Param(24, 5, 200, "int", description="delays, log-spaced"),
        "t1_guess_us": Param(100.0, 0.1, 10_000, description="delays span 0.02-5 x this"),
    }

    def sweep(self, num_qubits, qubits, params) -> Sweep:
        guess = float(params["t1_guess_us"])
        delays = np.geomspace(0.02 * guess, 5 * guess, int(params["points"]))
        circuits = [
            circuit(
                num_qubits, qubits, {q: [f"x q[{q}];", f"delay({t!r}us) q[{q}];"] for q in qubits}
            )
            for t in map(float, delays)
        ]
        return Sweep(list(map(float, delays)), circuits, "delay (µs)")

    def analyze(self, qubit, x, p1, shots, params) -> Outcome:
        return self._decay_time(qubit, x, p1, shots, "t1")


class CheckRamsey(Task):
    name = "CheckRamsey"
    description = (
        "Dephasing and frequency: sx, a delay t, a virtual Z turn 2π·δ·t, sx, measure. P(1)"
        " oscillates at δ plus the qubit's own detuning, damped by T2*."
    )
    inputs = ("t2_star",)
    outputs = (
        Output("t2_star", "us", "Ramsey dephasing time"),
        Output("detuning", "MHz", "qubit frequency minus drive frequency"),
    )
    guess_from = ("t2_guess_us", "t2_star")
    parameters = {
        "shots": shots(4000),
        "points": Param(41, 5, 200, "int", description="delays, evenly spaced"),
        "t2_guess_us": Param(50.0, 0.1, 10_000, description="delays span 0-2.5 x this"),
        "artificial_detuning_mhz": Param(
            None, 0.001, 100, optional=True, description="default: five fringes over the span"
        ),
    }

    def sweep(self, num_qubits, qubits, params) -> Sweep:
        span = 2.5 * float(params["t2_guess_us"])
        delta = params["artificial_detuning_mhz"] or 5.0 / span  # five fringes over the span
        times = np.linspace(0.0, span, int(params["points"]))
        circuits = []
        for t in map(float, times):
            turn = 2 * math.pi * delta * t
            body = {
                q: [
                    f"sx q[{q}];",
                    f"delay({t!r}us) q[{q}];",
                    f"rz({turn!r}) q[{q}];",
                    f"sx q[{q}];",
                ]
                for q in qubits
            }
            circuits.append(circuit(num_qubits, qubits, body))
        return Sweep(list(map(float, times)), circuits, "delay (µs)")

    def analyze(self, qubit, x, p1, shots, params) -> Outcome:
        span = float(x.max())
        delta = params["artificial_detuning_mhz"] or 5.0 / span
        err = binomial_sigma(p1, shots)
        fit = damped_cosine(x, p1, err)
        values = {
            "t2_star": fit.values.get("tau", float("nan")),
            "detuning": fit.values.get("frequency", float("nan")) - delta,
        }
        errors = {
            "t2_star": fit.errors.get("tau", float("nan")),
            "detuning": fit.errors.get("frequency", float("nan")),
        }
        outcome = self._gate(qubit, fit, x, p1, err, values, errors)
        # The fringes show |δ + Δ| only: a detuning beyond δ/2 either way may be aliased
        # or of the wrong sign. It is recorded, but marked, and nothing acts on it.
        outcome.quality["artificial_detuning_mhz"] = delta
        outcome.quality["detuning_unambiguous"] = float(abs(values["detuning"]) < delta / 2)
        return outcome


class CheckT2Echo(Task):
    name = "CheckT2Echo"
    description = "Hahn echo: sx, t/2, x, t/2, sx, measure. The echo undoes slow detuning; P(1) decays to 1/2 with T2echo."
    inputs = ("t2_echo",)
    outputs = (Output("t2_echo", "us", "Hahn-echo coherence time"),)
    guess_from = ("t2_guess_us", "t2_echo")
    parameters = {
        "shots": shots(8000),
        "points": Param(30, 5, 200, "int", description="total delays, log-spaced"),
        "t2_guess_us": Param(50.0, 0.1, 10_000, description="delays span 0.02-4 x this"),
    }

    def sweep(self, num_qubits, qubits, params) -> Sweep:
        guess = float(params["t2_guess_us"])
        times = np.geomspace(0.02 * guess, 4 * guess, int(params["points"]))
        circuits = []
        for t in map(float, times):
            half = f"delay({t / 2!r}us) q[{{q}}];"
            body = {
                q: [f"sx q[{q}];", half.format(q=q), f"x q[{q}];", half.format(q=q), f"sx q[{q}];"]
                for q in qubits
            }
            circuits.append(circuit(num_qubits, qubits, body))
        return Sweep(list(map(float, times)), circuits, "total delay (µs)")

    def analyze(self, qubit, x, p1, shots, params) -> Outcome:
        return self._decay_time(qubit, x, p1, shots, "t2_echo")


class CheckRabi(Task):
    name = "CheckRabi"
    description = (
        "Pulse amplitude: n sx pulses, n = 0..N. A pulse that turns (π/2)(1+ε) makes P(1)"
        " drift off 1 - cos(nπ/2) as n grows; the fit finds ε, and the π amplitude that"
        " corrects it is 1/(1+ε) of the current one."
    )
    inputs = ("pi_amplitude",)
    outputs = (Output("pi_amplitude", "", "drive amplitude of a π pulse, relative to the current"),)
    parameters = {
        "shots": shots(2000),
        "max_pulses": Param(60, 4, 400, "int", description="pulse trains of 0..max sx"),
    }

    def circuit_count(self, params) -> int:
        return int(params["max_pulses"]) + 1

    def sweep(self, num_qubits, qubits, params) -> Sweep:
        counts = list(range(0, int(params["max_pulses"]) + 1))
        circuits = [
            circuit(num_qubits, qubits, {q: [f"sx q[{q}];"] * n for q in qubits}) for n in counts
        ]
        return Sweep([float(n) for n in counts], circuits, "sx pulses")

    def analyze(self, qubit, x, p1, shots, params) -> Outcome:
        err = binomial_sigma(p1, shots)
        fit = rotation_train(x, p1, err)
        eps = fit.values.get("eps", float("nan"))
        values = {"pi_amplitude": 1 / (1 + eps)}
        errors = {"pi_amplitude": fit.errors.get("eps", float("nan")) / (1 + eps) ** 2}
        return self._gate(qubit, fit, x, p1, err, values, errors)


class ReadoutFidelity(Task):
    name = "ReadoutFidelity"
    description = "Assignment errors: prepare |0> and |1> and measure; p(1|0), p(0|1) and their mean fidelity."
    outputs = (
        Output("average_readout_fidelity", "", "1 - (p01 + p10) / 2"),
        Output("p10", "", "P(read 1 | prepared 0)"),
        Output("p01", "", "P(read 0 | prepared 1)"),
    )
    parameters = {"shots": shots(10000)}
    min_r_squared = 0.0  # no curve to fit: the binomial errors are the quality

    def circuit_count(self, params) -> int:
        return 2

    def sweep(self, num_qubits, qubits, params) -> Sweep:
        zero = circuit(num_qubits, qubits, {})
        one = circuit(num_qubits, qubits, {q: [f"x q[{q}];"] for q in qubits})
        return Sweep([0.0, 1.0], [zero, one], "prepared state")

    def analyze(self, qubit, x, p1, shots, params) -> Outcome:
        p10, p01 = float(p1[0]), 1 - float(p1[1])
        e10, e01 = (float(binomial_sigma(np.array([p]), shots)[0]) for p in (p10, p01))
        values = {"average_readout_fidelity": 1 - (p01 + p10) / 2, "p10": p10, "p01": p01}
        errors = {"average_readout_fidelity": math.hypot(e10, e01) / 2, "p10": e10, "p01": e01}
        ok = p10 < 0.5 and p01 < 0.5
        reason = "" if ok else "states are not told apart (an assignment error of 1/2 or more)"
        return Outcome(qubit, values if ok else {}, errors if ok else {}, ok, reason, None,
                       [0.0, 1.0], [float(p1[0]), float(p1[1])], [e10, e01])  # fmt: skip


class RandomizedBenchmarking(Task):
    name = "RandomizedBenchmarking"
    description = (
        "Average gate error: random sequences of m one-qubit Cliffords and their inverse,"
        " each run ending in |0> and (with one more x) in |1>. The difference of the two"
        " survivals is A·p^m, free of readout errors. Error per Clifford (1 - p)/2, over"
        " the mean sx pulses per Clifford: the error per pulse, as x90_gate_fidelity."
    )
    inputs = ("x90_gate_fidelity",)
    outputs = (
        Output("x90_gate_fidelity", "", "1 - error per sx pulse"),
        Output("error_per_clifford", "", "(1 - p) / 2"),
    )
    parameters = {
        "shots": shots(1000),
        "lengths": Param(
            [1, 16, 64, 128, 256],
            1,
            300,  # 6 qubits x 300 Cliffords stays within the twin's 64 KiB of QASM
            "int_list",
            max_items=16,
            description="Clifford sequence lengths",
        ),
        "sequences": Param(8, 1, 50, "int", description="random sequences per length"),
        "seed": Param(0, 0, 2**31 - 1, "int", description="draws the sequences"),
    }
    # Long sequences on many qubits make big circuits: the runner splits the qubits into
    # groups of at most this many per circuit (a job's events must fit one bus message).
    max_qubits_per_circuit: ClassVar[int] = 6  # 256 Cliffords: ~8 kB of QASM a qubit
    # The decay is small next to the shot noise at these lengths: R² says little, the
    # reduced χ² says whether the model explains the data within their errors.
    min_r_squared = -math.inf
    max_reduced_chi2 = 5.0

    def circuit_count(self, params) -> int:
        return 2 * len(params["lengths"]) * int(params["sequences"])

    def sweep(self, num_qubits, qubits, params) -> Sweep:
        """x is +m for a sequence ending in |0>, -m for the same one ending in |1>."""
        rng = np.random.default_rng(int(params["seed"]))
        x, circuits = [], []
        for m in params["lengths"]:
            for _ in range(int(params["sequences"])):
                body = {q: clifford.qasm_ops(clifford.sequence(int(m), rng), q) for q in qubits}
                flipped = {q: [*ops, f"x q[{q}];"] for q, ops in body.items()}
                x += [float(m), -float(m)]
                circuits += [
                    circuit(num_qubits, qubits, body),
                    circuit(num_qubits, qubits, flipped),
                ]
        return Sweep(x, circuits, "Cliffords")

    def analyze(self, qubit, x, p1, shots, params) -> Outcome:
        lengths = np.array(sorted({abs(v) for v in x.tolist()}))
        # P(read 0 | ends in |0>) - P(read 0 | ends in |1>), per sequence
        diffs = {m: p1[x == -m] - p1[x == m] for m in lengths}
        y = np.array([diffs[m].mean() for m in lengths])
        floor = math.sqrt(2) / math.sqrt(shots * max(1, len(diffs[lengths[0]])))
        err = np.array(
            [max(float(np.std(d, ddof=1)) / math.sqrt(len(d)) if len(d) > 1 else 0.0, floor)
             for d in diffs.values()]
        )  # fmt: skip
        fit = rb_decay(lengths, y, err)
        p, dp = fit.values.get("p", float("nan")), fit.errors.get("p", float("nan"))
        epc = (1 - p) / 2
        pulses = clifford.mean_pulses()
        values = {"x90_gate_fidelity": 1 - epc / pulses, "error_per_clifford": epc}
        errors = {"x90_gate_fidelity": dp / 2 / pulses, "error_per_clifford": dp / 2}
        return self._gate(qubit, fit, lengths, y, err, values, errors)


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        CheckT1(),
        CheckRamsey(),
        CheckT2Echo(),
        CheckRabi(),
        ReadoutFidelity(),
        RandomizedBenchmarking(),
    )
}

# Two-qubit tasks live in their own module and add themselves to TASKS when it loads.
import calibration.two_qubit  # noqa: E402, F401
