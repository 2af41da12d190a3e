"""The twin's configuration for the command side and the runner: the shipped YAML files
plus a project's written ones, parsed into backends (cached by content)."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from config.catalog import ConfigFileError, parse_text
from config.twin_files import TWIN_CONFIG, load_backends, model_for, read_dir
from domain.errors import InvalidInput, NotFound
from domain.twin import TwinBackend
from twin import engine, fpga
from twin.circuit_input import (
    DEFAULT_LIMITS,
    CircuitLimits,
    CircuitSize,
    check_circuits,
    read_circuit,
)
from twin.circuits import DEFAULT_OPTIMIZATION_LEVEL, OPTIMIZATION_LEVELS, compile_for
from twin.controller import (
    ControllerState,
    apply_command,
    check_command,
    effective_noise,
)
from twin.device import Backend, Device
from twin.errors import TwinError
from twin.job_cost import job_seconds
from twin.noise import NoiseModel
from twin.sampling import DEFAULT_RESULT_FORMAT, RESULT_FORMATS


def refused(err: TwinError) -> InvalidInput:
    """The twin's refusal as the domain's: bad input, with the twin's code."""
    return InvalidInput(err.message, code=err.code)


def optimization_level_of(metadata: dict) -> int:
    """The job's transpiler level (metadata.optimization_level), refused if not 0-3."""
    level = metadata.get("optimization_level", DEFAULT_OPTIMIZATION_LEVEL)
    if not isinstance(level, int) or isinstance(level, bool) or level not in OPTIMIZATION_LEVELS:
        raise InvalidInput(
            f"metadata.optimization_level must be one of {list(OPTIMIZATION_LEVELS)}"
            " (0 runs the gates as written)",
            code="invalid_optimization_level",
        )
    return int(level)


def result_format_of(metadata: dict) -> str:
    """How the job's results carry outcomes (metadata.result_format), refused if not
    "counts" (the default: every bitstring's count) or "marginals" (per classical bit,
    the shots that read 1)."""
    result_format = metadata.get("result_format", DEFAULT_RESULT_FORMAT)
    if not isinstance(result_format, str) or result_format not in RESULT_FORMATS:
        raise InvalidInput(
            f"metadata.result_format must be one of {list(RESULT_FORMATS)}"
            " (marginals: per classical bit, the shots that read 1)",
            code="invalid_result_format",
        )
    return result_format


def digest(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return h.hexdigest()


DEFAULT_BUDGET_SECONDS = 30.0  # Settings.twin_job_budget_seconds

_LOADED: dict[str, dict[str, Backend]] = {}


def backends_for(files: dict[str, str]) -> dict[str, Backend]:
    key = digest(files)
    if key not in _LOADED:
        try:
            _LOADED[key] = load_backends(files)
        except ConfigFileError as err:
            raise InvalidInput(code="invalid_config", message=str(err)) from None
        if len(_LOADED) > 64:  # a few past configurations are enough
            _LOADED.pop(next(iter(_LOADED)))
    return _LOADED[key]


_NO_COMMANDS = ControllerState()


def controller_state(controller: TwinBackend | None) -> ControllerState:
    """A backend's controller state, folded from its aggregate's commands. The fold is
    kept on the aggregate instance itself, which a batch that does not commit throws
    away: a cache keyed by version alone could outlive such a batch and hold state for
    a version that was later committed with other content."""
    if controller is None:
        return _NO_COMMANDS  # one object: the QEC noise cache is keyed by its identity
    folded: tuple[int, ControllerState] = getattr(controller, "_folded", (0, _NO_COMMANDS))
    n, state = folded
    for command_type, payload in controller.commands[n:]:
        state = apply_command(state, command_type, payload)
    controller._folded = (len(controller.commands), state)  # type: ignore[attr-defined]
    return state


@lru_cache(maxsize=256)
def _schedule_program(device: Device, qasm: str):
    return compile_for(read_circuit(qasm), device, seed=0)


def size_circuits(circuits: list, limits: CircuitLimits) -> list[CircuitSize]:
    """In this process (a caller without the checker child): screened first."""
    try:
        return check_circuits(circuits, limits)
    except TwinError as err:
        raise refused(err) from None


class TwinCatalog:
    """commands.ports.TwinPort over config/twin/ (or another directory)."""

    def __init__(
        self,
        root=TWIN_CONFIG,
        *,
        budget_seconds: float = DEFAULT_BUDGET_SECONDS,
        circuit_limits: CircuitLimits = DEFAULT_LIMITS,
    ) -> None:
        self.budget_seconds = budget_seconds
        self.circuit_limits = circuit_limits
        self.files = read_dir(root)
        backends_for(self.files)  # a bad shipped file stops the start

    def base_files(self) -> dict[str, str]:
        return self.files

    def check_files(self, files: dict[str, str]) -> None:
        """Each file a project wrote is checked alone first (one small parse), so a bad
        write is refused without reading the whole directory, which the command writer
        would wait for; then all of them together (cross-file references)."""
        for path, content in files.items():
            try:
                model = model_for(path)
            except ConfigFileError as err:
                raise InvalidInput(code="invalid_config_path", message=str(err)) from None
            if self.files.get(path) != content:
                try:
                    parse_text(content, path, model)
                except ConfigFileError as err:
                    raise InvalidInput(code="invalid_config", message=str(err)) from None
        backends_for(files)

    def backend(self, files: dict[str, str], backend_id: str) -> Backend:
        backends = backends_for(files)
        if backend_id not in backends:
            raise NotFound(
                f"unknown backend '{backend_id}'; known: {sorted(backends)}",
                code="unknown_backend",
            )
        return backends[backend_id]

    def check_controller(self, files, backend_id, command_type, payload) -> None:
        backend = self.backend(files, backend_id)
        try:
            check_command(backend, command_type, payload)
        except TwinError as err:
            raise refused(err) from None

    def check_job(self, files, backend_id, circuits, shots, sizes=None, metadata=None) -> None:
        """Counts against the backend's limits, each circuit against its size, and the
        job's estimated cost against the operator's budget. `sizes`: the circuits as the
        checker process sized them (adapters/twin/checker.py); without, they are read
        here, screened first."""
        backend = self.backend(files, backend_id)
        optimization_level_of(metadata or {})
        result_format_of(metadata or {})
        limits = backend.limits
        if shots < 1 or shots > limits.max_shots:
            raise InvalidInput(
                code="invalid_shots",
                message=f"shots must be between 1 and {limits.max_shots} (max_shots)",
            )
        if len(circuits) > limits.max_circuits_per_job:
            raise InvalidInput(
                code="too_many_circuits",
                message=f"{len(circuits)} circuits; a job may have at most"
                f" {limits.max_circuits_per_job} (max_circuits_per_job)",
            )
        if sizes is None:
            sizes = size_circuits(circuits, self.circuit_limits)
        for i, size in enumerate(sizes):
            if size.num_qubits > backend.device.num_qubits:
                raise InvalidInput(
                    code="too_many_qubits",
                    message=f"circuits[{i}] uses {size.num_qubits} qubits; {backend_id} has"
                    f" {backend.device.num_qubits}",
                )
        try:
            seconds = job_seconds(list(sizes), shots, limits)
        except TwinError as err:
            raise refused(err) from None
        if seconds > self.budget_seconds:
            raise InvalidInput(
                code="job_too_expensive",
                message=f"the job is estimated at {seconds:.3g} s of simulation; the budget is"
                f" {self.budget_seconds:g} s a job (QLEDGER_TWIN_JOB_BUDGET_SECONDS):"
                " use fewer shots, qubits or gates",
            )

    def check_schedule(self, files, backend_id, actions, n_qubits) -> list[dict]:
        backend = self.backend(files, backend_id)
        try:
            checked = fpga.check_schedule(actions, n_qubits, backend.device.num_qubits)
        except TwinError as err:
            raise refused(err) from None
        try:  # a schedule that compiles to a circuit too wide to simulate: refused now
            program = _schedule_program(backend.device, fpga.schedule_qasm(checked, n_qubits))
            engine.engine_for(program, backend.limits)
        except TwinError as err:
            raise InvalidInput(err.message, code="invalid_schedule") from None
        return checked

    def readout(self, files, backend_id, controller, schedule, seed, at) -> list[int]:
        """One shot of the schedule under the backend's noise now; without a schedule,
        every qubit read in |0> (each 1 with its own p(1|0))."""
        backend = self.backend(files, backend_id)
        eff = effective_noise(backend, controller_state(controller), at.timestamp())
        rng = np.random.default_rng(seed)
        if schedule is None:
            p = np.array([q.readout_p1_given_0 for q in eff.qubits])
            return [int(b) for b in rng.random(len(p)) < p]
        n_qubits, actions = schedule
        program = _schedule_program(backend.device, fpga.schedule_qasm(list(actions), n_qubits))
        counts, _ = engine.run(program, NoiseModel(eff), 1, rng, backend.limits)
        (bits,) = counts  # one shot: one bitstring, qubit 0 rightmost (Qiskit order)
        return [int(b) for b in reversed(bits.replace(" ", ""))][:n_qubits]
