"""Seed parameter values: the starting values of a chip's qubit parameters, typed in by
hand or read from the configuration of the twin backend the chip is bound to.

A seed import is one command and one commit: it starts an execution, records one
`SeedImport` task result per qubit whose outputs are the imported values, and completes
the execution. Seeds are thereby parameter versions like any other: their lineage leads
to the import, a parameter's history lists them, and the next calibration supersedes
them. Nothing here is a new kind of event.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    model_validator,
)

from calibration.tasks import TASKS
from commands.authorization import Caller
from commands.calibration_run import backend_layout
from commands.models import Command, Ident
from commands.unit_of_work import UnitOfWork
from domain.chip import Chip, chip_key
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import CommandContext
from domain.execution import Execution, execution_key
from domain.parameters import ParameterSeries, series_key

SEED_FLOW = "qledger.seed_import"  # the flow_name of the executions seed imports start
SEED_TASK = "SeedImport"  # the task_name of their task results
MAX_SEED_QUBITS = 1024
MAX_SEED_PARAMETERS = 64
# Each value is one event, and an accepted command's idempotency record lists the id of
# every event it caused in one event, which must fit one NATS message (1 MiB): 8,192
# values and their task results keep it near 400 KB.
MAX_SEED_VALUES = 8192
# Larger than any physical parameter in any unit qledger records (Hz included), small
# enough that a typo of twenty digits is refused rather than recorded.
MAX_SEED_MAGNITUDE = 1e12

# The unit each known parameter is recorded in: the calibration tasks' outputs, plus the
# qubit frequency, which no task measures yet. A seed in another unit would break its
# series (values are compared in the unit they were recorded in).
KNOWN_UNITS: dict[str, str] = {
    "qubit_frequency": "GHz",
    **{o.name: o.unit for task in TASKS.values() for o in task.outputs},
}


def _config_seeds() -> dict[str, Callable[[Any], float]]:
    """What a twin backend's noise configuration says of each parameter, per qubit (a
    twin.device.QubitNoise, read by attribute: commands do not import the twin). The
    twin has one T2 and no low-frequency noise, so its echo equals its Ramsey: both T2s
    seed from it."""
    return {
        "qubit_frequency": lambda q: q.frequency_ghz,
        "t1": lambda q: q.t1_us,
        "t2_star": lambda q: q.t2_us,
        "t2_echo": lambda q: q.t2_us,
        "average_readout_fidelity": lambda q: 1 - (q.readout_p1_given_0 + q.readout_p0_given_1) / 2,
        "p10": lambda q: q.readout_p1_given_0,
        "p01": lambda q: q.readout_p0_given_1,
        "x90_gate_fidelity": lambda q: 1 - q.gate_error,
    }


CONFIG_SEEDS = _config_seeds()


def config_seed_values(backend: Any, qids: Iterable[str], names: Iterable[str]):
    """{qid: {name: value}} from the backend's configured noise, for the chip qubits that
    the backend configures (qubit "5" is the backend's qubit 5)."""
    configured = backend.noise.qubits
    wanted = list(names)
    return {
        qid: {name: float(CONFIG_SEEDS[name](configured[int(qid)])) for name in wanted}
        for qid in qids
        if int(qid) < len(configured)
    }


def normal_qid(qid: str) -> str:
    """The chip's id of a qubit named as the reference's clients name it: "Q05" and "05"
    are qubit "5" (qledger's qubits are numbered "0", "1", ...)."""
    digits = qid[1:] if qid.startswith("Q") else qid
    return str(int(digits)) if digits.isdigit() else qid


def _seed_number(value: int | float) -> int | float:
    if not math.isfinite(value) or abs(value) > MAX_SEED_MAGNITUDE:
        raise ValueError(f"must be a finite number within ±{MAX_SEED_MAGNITUDE:g}")
    return value


def _seed_error(value: float) -> float:
    _seed_number(value)
    if value < 0:
        raise ValueError("an error is never negative")
    return value


def _source(value: Any) -> Any:
    # The reference's source "qubex_params" reads a chip's parameter files; in qledger
    # a chip's configured values are its twin backend's.
    return "backend" if value == "qubex_params" else value


SeedNumber = Annotated[StrictInt | StrictFloat, AfterValidator(_seed_number)]


class SeedEntry(BaseModel):
    """A seed with its unit (default: the parameter's own) and, optionally, its error."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: SeedNumber | None
    unit: Annotated[str, Field(max_length=32)] = ""
    error: Annotated[StrictInt | StrictFloat, AfterValidator(_seed_error)] | None = None


# A value, a value with its unit, or null (skipped, as the reference skips nulls).
SeedGiven = SeedNumber | SeedEntry | None


class ImportSeeds(Command):
    """Record seed values for qubits of a chip as parameter versions of one execution."""

    SUBJECT = "calibration.import_seeds"
    execution_id: Ident
    chip_id: Ident
    # "backend": the configuration of the twin backend the chip is bound to ("qubex_params",
    # the reference's name for its parameter files, means the same); "manual": manual_data.
    source: Annotated[Literal["backend", "manual"], BeforeValidator(_source)] = "backend"
    # Only these parameters (default: every one the source has).
    parameters: list[Ident] | None = Field(None, min_length=1, max_length=MAX_SEED_PARAMETERS)
    # Only these qubits (default: every one the source has); "Q05" is qubit "5".
    qids: list[Ident] | None = Field(None, min_length=1, max_length=MAX_SEED_QUBITS)
    # {parameter_name: {qid: value | {"value", "unit", "error"} | null}}
    manual_data: (
        dict[Ident, Annotated[dict[Ident, SeedGiven], Field(max_length=MAX_SEED_QUBITS)]] | None
    ) = Field(None, max_length=MAX_SEED_PARAMETERS)

    @model_validator(mode="after")
    def _manual_data_goes_with_its_source(self) -> ImportSeeds:
        if self.source == "manual" and not self.manual_data:
            raise ValueError("source 'manual' needs manual_data")
        if self.source != "manual" and self.manual_data is not None:
            raise ValueError("manual_data is read only with source 'manual'")
        return self


@dataclass(frozen=True)
class Seed:
    qid: str  # the chip's id
    parameter_name: str
    value: int | float
    unit: str
    error: float | None


def manual_values(cmd: ImportSeeds) -> tuple[list[tuple[str, str, int | float | SeedEntry]], int]:
    """([(normal qid, parameter, given)] for each value within the filters, nulls
    skipped), and how many nulls were skipped. Shared with the HTTP answer, which counts
    the skipped values as the reference does."""
    wanted = {normal_qid(q) for q in cmd.qids} if cmd.qids else None
    names = cmd.parameters or list(cmd.manual_data or {})
    values: list[tuple[str, str, int | float | SeedEntry]] = []
    skipped = 0
    for name in names:
        for qid, given in (cmd.manual_data or {}).get(name, {}).items():
            qid = normal_qid(qid)
            if wanted is not None and qid not in wanted:
                continue
            if given is None or (isinstance(given, SeedEntry) and given.value is None):
                skipped += 1
                continue
            values.append((qid, name, given))
    return values, skipped


def _require_qubit(chip: Chip, given: str) -> str:
    qid = normal_qid(given)
    if qid not in chip.qubits:
        why = " (a coupling: seeds are per qubit)" if given in chip.couplings else ""
        raise InvalidInput(
            f"'{given}' is not a qubit of chip '{chip.chip_id}'{why}", code="unknown_qid"
        )
    return qid


def _selected_qids(chip: Chip, cmd: ImportSeeds) -> list[str] | None:
    if cmd.qids is None:
        return None
    qids = [_require_qubit(chip, q) for q in cmd.qids]
    if len(set(qids)) != len(qids):
        raise InvalidInput("a qubit is named twice", code="duplicate_qid")
    return qids


def _unknown_parameters(names: Iterable[str], known: Iterable[str], where: str) -> None:
    available = list(known)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InvalidInput(
            f"no seed for {unknown} in {where}; it has {available}", code="unknown_seed_parameter"
        )


def _manual_seeds(chip: Chip, cmd: ImportSeeds) -> list[Seed]:
    _selected_qids(chip, cmd)
    _unknown_parameters(cmd.parameters or (), cmd.manual_data or {}, "manual_data")
    seen: set[tuple[str, str]] = set()
    seeds = []
    values, _skipped = manual_values(cmd)
    for qid, name, given in values:
        qid = _require_qubit(chip, qid)
        if (qid, name) in seen:
            raise InvalidInput(f"{name}: qubit '{qid}' is named twice", code="duplicate_qid")
        seen.add((qid, name))
        entry = given if isinstance(given, SeedEntry) else SeedEntry(value=given)
        known = KNOWN_UNITS.get(name)
        if known is not None and entry.unit not in ("", known):
            raise InvalidInput(
                f"{name} is recorded in '{known}', not '{entry.unit}': convert the value",
                code="seed_unit_mismatch",
            )
        assert entry.value is not None  # nulls were skipped
        seeds.append(Seed(qid, name, entry.value, entry.unit or known or "", entry.error))
    return seeds


def _backend_seeds(uow: UnitOfWork, ctx: CommandContext, chip: Chip, cmd: ImportSeeds):
    if not chip.backend_id:
        raise InvalidInput(
            f"chip '{chip.chip_id}' is not bound to a twin backend, so it has no configured"
            " values; send source 'manual' with manual_data",
            code="chip_not_on_twin",
        )
    names = cmd.parameters or list(CONFIG_SEEDS)
    _unknown_parameters(names, CONFIG_SEEDS, f"backend '{chip.backend_id}'")
    backend, _layout = backend_layout(uow, ctx.project_id, chip.backend_id)
    qids = _selected_qids(chip, cmd) or sorted(chip.qubits, key=int)
    values = config_seed_values(backend, qids, names)
    missing = [q for q in qids if q not in values]
    if missing:  # the project rewrote the backend's files since the chip was registered
        raise InvalidInput(
            f"backend '{chip.backend_id}' now configures no qubit {missing[:10]}",
            code="backend_qubit_missing",
        )
    seeds = [
        Seed(qid, name, values[qid][name], KNOWN_UNITS[name], None)
        for qid in qids
        for name in names
    ]
    bad = [s for s in seeds if not (abs(s.value) <= MAX_SEED_MAGNITUDE)]  # NaN fails too
    if bad:  # the twin's files bound few values from above: `.inf` is valid YAML
        raise InvalidInput(
            f"backend '{chip.backend_id}' configures {bad[0].parameter_name} of qubit"
            f" '{bad[0].qid}' as {bad[0].value}, which is no seed",
            code="invalid_seed_value",
        )
    return seeds


def _description(cmd: ImportSeeds, chip: Chip, seeds: list[Seed]) -> str:
    origin = f"backend {chip.backend_id}" if cmd.source == "backend" else "manual input"
    names = list(dict.fromkeys(s.parameter_name for s in seeds))
    qubits = len({s.qid for s in seeds})
    return f"seed import from {origin}: {', '.join(names)} on {qubits} qubits"


def seed_task_id(project_id: str, execution_id: str, qid: str) -> str:
    """Unique across executions (a task id alone finds its result), at most 128
    characters whatever the execution id: `<hash>-SeedImport-<qid>`, as runs name theirs."""
    short = hashlib.sha256(f"{project_id}/{execution_id}".encode()).hexdigest()[:12]
    return f"{short}-{SEED_TASK}-{qid}"


def handle_import_seeds(cmd: ImportSeeds, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    chip = uow.get(Chip, chip_key(ctx.project_id, cmd.chip_id))
    if chip is None:
        raise NotFound(f"chip '{cmd.chip_id}' does not exist", code="chip_not_found")
    if cmd.source == "backend":
        seeds = _backend_seeds(uow, ctx, chip, cmd)
    else:
        seeds = _manual_seeds(chip, cmd)
    if not seeds:
        raise InvalidInput("nothing to import: every value is null", code="no_seed_values")
    if len(seeds) > MAX_SEED_VALUES:
        raise InvalidInput(
            f"{len(seeds)} values; one import may record at most {MAX_SEED_VALUES}:"
            " import fewer qubits or parameters at a time",
            code="seed_import_too_large",
        )
    if uow.get(Execution, execution_key(ctx.project_id, cmd.execution_id)) is not None:
        raise Conflict(f"execution '{cmd.execution_id}' already exists", code="execution_exists")
    series: dict[tuple[str, str], ParameterSeries] = {}
    for seed in seeds:
        key = series_key(ctx.project_id, chip.chip_id, seed.qid, seed.parameter_name)
        found = uow.get(ParameterSeries, key) or ParameterSeries(key)
        # A seed is valid from now: refused (409) for a series measured later than now.
        found.check_next(
            parameter_name=seed.parameter_name, qid=seed.qid, valid_from=ctx.received_at
        )
        series[(seed.qid, seed.parameter_name)] = found
    # Every rule has been checked: from here on only events are triggered.
    return _record(cmd, ctx, uow, chip, seeds, series)


def _record(
    cmd: ImportSeeds,
    ctx: CommandContext,
    uow: UnitOfWork,
    chip: Chip,
    seeds: list[Seed],
    series: dict[tuple[str, str], ParameterSeries],
):
    """The import's execution, started and completed around one task result per qubit,
    each followed by the versions it produced (the order a run records them in)."""
    at = ctx.received_at
    description = _description(cmd, chip, seeds)
    origin: dict[str, str] = {"source": cmd.source}
    if cmd.source == "backend":
        origin["backend_id"] = chip.backend_id
    execution = Execution.start(
        ctx,
        execution_id=cmd.execution_id,
        chip_id=chip.chip_id,
        name=description,
        flow_name=SEED_FLOW,
        tags=(),
        note={},
        started_at=at,
        existing=None,  # checked above
    )
    events = uow.stage(execution)
    by_qubit: dict[str, list[Seed]] = {}
    for seed in seeds:
        by_qubit.setdefault(seed.qid, []).append(seed)
    for qid, qubit_seeds in by_qubit.items():
        task_id = seed_task_id(ctx.project_id, cmd.execution_id, qid)
        execution.record_task_result(
            ctx,
            task_id=task_id,
            task_name=SEED_TASK,
            task_type="qubit",
            qid=qid,
            status="completed",
            message="",
            input_parameters={},
            output_parameters={
                s.parameter_name: {"value": s.value, "unit": s.unit, "error": s.error}
                for s in qubit_seeds
            },
            run_parameters=origin,
            figure_path=(),
            json_figure_path=(),
            start_at=at,
            end_at=at,
            used=(),  # a seed is read from no version: its lineage is its import
        )
        events += uow.stage(execution)
        for s in qubit_seeds:
            version = series[(qid, s.parameter_name)]
            version.record_version(
                ctx,
                chip_id=chip.chip_id,
                qid=qid,
                parameter_name=s.parameter_name,
                value=s.value,
                unit=s.unit,
                error=s.error,
                valid_from=at,
                execution_id=cmd.execution_id,
                task_id=task_id,
                task_name=SEED_TASK,
                used=(),
            )
            events += uow.stage(version)
    execution.finish(ctx, status="completed", message=f"{description}: {len(seeds)} values")
    return events + uow.stage(execution)


# Registered in commands/handlers.py.
SEED_HANDLERS = {ImportSeeds: handle_import_seeds}
