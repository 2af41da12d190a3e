"""Seed parameters and the calibration note: the reference's `/calibrations/seed-*` and
`/calibrations/note` routes.

The reference reads seeds from a chip's qubex parameter files; qledger's configured
values of a chip are those of the twin backend it is bound to (config/twin/). An import
is the bus command ImportSeeds (commands/seeds.py): one execution whose task results
record the values as parameter versions, so seeds have lineage like any result.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from adapters.http.deps import (
    AcceptedResponse,
    IdempotencyKey,
    ProjectId,
    ReadAfter,
    ReadModels,
    WritableProject,
    accepted_body,
    generated_id,
    send_command,
    wait_for_position,
)
from adapters.http.errors import ApiError
from commands.models import Ident
from commands.seeds import (
    CONFIG_SEEDS,
    KNOWN_UNITS,
    MAX_SEED_PARAMETERS,
    ImportSeeds,
    config_seed_values,
    manual_values,
)
from domain.errors import Kind
from projections import chips
from projections.calibration_notes import latest_note
from projections.provenance import current_parameters
from projections.seeds import imported_values

router = APIRouter(prefix="/api/calibrations", tags=["calibration"])
# Seed and current values this close (relative) are the same value, as the reference
# compares them: a float written to YAML and read back is not always bit-identical.
SAME_WITHIN = 1e-9


class SeedImportRequest(ImportSeeds):
    execution_id: Ident | None = Field(None, description="generated when omitted")  # type: ignore[assignment]


class SeedImportResult(BaseModel):
    parameter_name: str
    qid: str
    value: float | int
    unit: str
    status: str  # "imported": an import records every value or none
    message: str | None = None
    task_id: str  # qledger's: the task result and the version the value became
    entity_id: str


class SeedImportResponse(AcceptedResponse):
    chip_id: str
    source: str
    imported_count: int
    skipped_count: int
    error_count: int
    results: list[SeedImportResult]
    provenance_activity_id: str  # the import's execution
    execution_id: str


@router.post("/seed-import", response_model=SeedImportResponse)
async def import_seed_parameters(
    body: SeedImportRequest,
    request: Request,
    project: WritableProject,
    db: ReadModels,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Record seed values for qubits of a chip: from the configuration of the twin
    backend the chip is bound to (`source` "backend", or the reference's
    "qubex_params"), or from `manual_data` (`source` "manual"). One execution records
    them all, or nothing is recorded."""
    fields = body.model_dump()
    fields["execution_id"] = body.execution_id or generated_id(project, idempotency_key)
    command = ImportSeeds(**fields)
    reply = await send_command(request, command, project, idempotency_key)
    execution_id = command.execution_id
    summary = {
        "chip_id": command.chip_id,
        "source": command.source,
        "provenance_activity_id": execution_id,
        "execution_id": execution_id,
    }
    try:
        await wait_for_position(reply.position, request)
    except ApiError:
        # Recorded, not yet readable: say so (and where to read it) instead of failing a
        # write that happened. The results are read back from what was recorded.
        location = f"/api/executions/{execution_id}?min_position={reply.position}"
        return JSONResponse(
            accepted_body(reply, **summary), status_code=202, headers={"Location": location}
        )
    values = await run_in_threadpool(imported_values, db, project, execution_id)
    return accepted_body(
        reply,
        **summary,
        imported_count=len(values),
        skipped_count=manual_values(command)[1] if command.source == "manual" else 0,
        error_count=0,
        results=[{**v, "status": "imported", "message": None} for v in values],
    )


def _chip_or_404(db, project: str, chip_id: str) -> dict[str, Any]:
    chip = chips.get_chip(db, project, chip_id)
    if chip is None:
        raise ApiError(Kind.NOT_FOUND, "chip_not_found", f"chip '{chip_id}' does not exist")
    return chip


@router.get("/seed-parameters/{chip_id}", response_model=list[str], dependencies=[ReadAfter])
def get_available_seed_parameters(chip_id: str, project: ProjectId, db: ReadModels) -> Any:
    """The parameters a backend import can seed on this chip: those its twin backend's
    configuration holds for every qubit. None for a chip bound to no backend (its seeds
    can only be imported by hand)."""
    chip = _chip_or_404(db, project, chip_id)
    return list(CONFIG_SEEDS) if chip["backend_id"] else []


class QubitComparison(BaseModel):
    yaml_qid: str  # the reference's name: the backend's qubit the value is configured for
    yaml_value: float
    qdash_value: Any  # the current version's value, None if the series has none
    status: str  # "new" (no current value), "same" or "different"
    difference: float | None  # qledger's: current minus configured, in the unit
    qdash_unit: str | None  # qledger's: the current version's unit
    entity_id: str | None  # qledger's: the current version


class ParameterComparison(BaseModel):
    unit: str
    qubits: dict[str, QubitComparison]


class SeedComparison(BaseModel):
    chip_id: str
    backend_id: str  # qledger's: whose configuration the seeds are
    parameters: dict[str, ParameterComparison]


def _compared(seed: float, unit: str, current: dict[str, Any] | None) -> dict[str, Any]:
    value = current["value"] if current else None
    difference = None
    # A bool is an int to Python, and a value in another unit is another number.
    if isinstance(value, int | float) and not isinstance(value, bool) and current:
        if current["unit"] == unit:
            difference = value - seed
    if current is None:
        status = "new"
    elif difference is not None and abs(difference) <= SAME_WITHIN * max(
        abs(seed), abs(seed + difference)
    ):
        status = "same"
    else:
        status = "different"
    return {
        "qdash_value": value,
        "status": status,
        "difference": difference,
        "qdash_unit": current["unit"] if current else None,
        "entity_id": current["entity_id"] if current else None,
    }


def _parameter_list(parameters: str | None) -> list[str]:
    if not parameters:
        return list(CONFIG_SEEDS)
    names = list(dict.fromkeys(p.strip() for p in parameters.split(",") if p.strip()))
    unknown = [n for n in names if n not in CONFIG_SEEDS]
    if unknown:
        raise ApiError(
            Kind.INVALID,
            "unknown_seed_parameter",
            f"no seed for {unknown[:10]}; a backend seeds {list(CONFIG_SEEDS)}",
        )
    return names


@router.get("/seed-compare/{chip_id}", response_model=SeedComparison, dependencies=[ReadAfter])
def compare_seed_values(
    chip_id: str,
    request: Request,
    project: ProjectId,
    db: ReadModels,
    parameters: Annotated[
        str | None,
        Query(
            max_length=MAX_SEED_PARAMETERS * 129,
            description="comma-separated parameter names (default: every seed parameter)",
        ),
    ] = None,
) -> Any:
    """Per parameter and qubit: the value the chip's twin backend is configured with
    (`yaml_value`) against qledger's current version (`qdash_value`), and their
    difference. A chip bound to no backend has nothing to compare."""
    names = _parameter_list(parameters)
    chip = _chip_or_404(db, project, chip_id)
    if not chip["backend_id"]:
        return {"chip_id": chip_id, "backend_id": "", "parameters": {}}
    backend = request.app.state.twin.backend(db, project, chip["backend_id"])
    qids = [str(q) for q in range(chip["qubit_count"])]
    seeds = config_seed_values(backend, qids, names)
    current = current_parameters(db, project, chip_id, list(seeds))
    return {
        "chip_id": chip_id,
        "backend_id": chip["backend_id"],
        "parameters": {
            name: {
                "unit": KNOWN_UNITS[name],
                "qubits": {
                    qid: {
                        "yaml_qid": qid,
                        "yaml_value": values[name],
                        **_compared(
                            values[name], KNOWN_UNITS[name], current.get(qid, {}).get(name)
                        ),
                    }
                    for qid, values in seeds.items()
                    if math.isfinite(values[name])
                },
            }
            for name in names
        },
    }


class CalibrationNoteResponse(BaseModel):
    username: str  # "": the execution read model does not keep who started it
    execution_id: str
    task_id: str  # "": the note is the execution's, not one task's
    note: dict[str, Any]
    timestamp: str | None  # when the execution started
    chip_id: str  # qledger's


@router.get("/note", response_model=CalibrationNoteResponse, dependencies=[ReadAfter])
def get_calibration_note(
    project: ProjectId,
    db: ReadModels,
    chip_id: Annotated[Ident | None, Query(description="only this chip's executions")] = None,
) -> Any:
    """The newest calibration note: the `note` of the project's (or the chip's) newest
    execution that has one. 404 `calibration_note_not_found` if none has."""
    found = latest_note(db, project, chip_id)
    if found is None:
        raise ApiError(
            Kind.NOT_FOUND,
            "calibration_note_not_found",
            "no execution" + (f" of chip '{chip_id}'" if chip_id else "") + " has a note",
        )
    return {"username": "", "task_id": "", **found}
