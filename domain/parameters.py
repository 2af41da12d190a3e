"""ParameterSeries: the versions of one calibrated parameter of one qubit or coupling.

One series per (project, chip, qid, parameter). Version numbers are the series' own
event count, so the store's optimistic concurrency on (aggregate id, version) allocates
them with no gaps or repeats, whichever process writes.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime

from domain.aggregate import Aggregate
from domain.errors import Conflict
from domain.events import CommandContext, DomainEvent, register, stable_id

Value = float | int | str | bool


@register
@dataclass(frozen=True, kw_only=True)
class ParameterVersionRecorded(DomainEvent):
    """A completed calibration task produced a new value for one parameter of one qubit."""

    TYPE = "calibration.ParameterVersionRecorded"
    entity_id: str  # parameter_name:qid:execution_id:task_id
    chip_id: str
    qid: str
    parameter_name: str
    version: int
    value: Value
    value_type: str
    unit: str
    error: float | None
    valid_from: datetime
    execution_id: str
    task_id: str
    task_name: str
    used: tuple[str, ...]  # entity ids of the exact input versions the task read


def series_key(project_id: str, chip_id: str, qid: str, parameter_name: str):
    return stable_id("param", project_id, chip_id, qid, parameter_name)


def entity_id_for(parameter_name: str, qid: str, execution_id: str, task_id: str) -> str:
    return f"{parameter_name}:{qid}:{execution_id}:{task_id}"


def value_type_of(value: Value) -> str:
    # bool before int: bool is a subclass of int in Python.
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if isinstance(value, t):
            return name
    raise TypeError(f"unsupported parameter value {value!r}")


class ParameterSeries(Aggregate):
    def __init__(self, aggregate_id) -> None:
        super().__init__(aggregate_id)
        self.valid_from: list[datetime] = []
        self.entity_ids: list[str] = []
        self.latest_value: Value | None = None  # what a calibration run starts from

    @property
    def latest_version(self) -> int:
        return len(self.entity_ids)

    def entity_at(self, moment: datetime) -> str | None:
        """The entity id of the version valid at `moment`, or None before the first."""
        i = bisect.bisect_right(self.valid_from, moment)
        return self.entity_ids[i - 1] if i else None

    def check_next(self, *, parameter_name: str, qid: str, valid_from: datetime) -> None:
        if self.valid_from and valid_from < self.valid_from[-1]:
            raise Conflict(
                f"{parameter_name} of {qid}: a measurement ending {valid_from.isoformat()} is older"
                f" than the current version (valid from {self.valid_from[-1].isoformat()})",
                code="stale_measurement",
            )

    def record_version(
        self,
        ctx: CommandContext,
        *,
        chip_id: str,
        qid: str,
        parameter_name: str,
        value: Value,
        unit: str,
        error: float | None,
        valid_from: datetime,
        execution_id: str,
        task_id: str,
        task_name: str,
        used: tuple[str, ...],
    ) -> ParameterVersionRecorded:
        self.check_next(parameter_name=parameter_name, qid=qid, valid_from=valid_from)
        event = self._trigger(
            ParameterVersionRecorded,
            ctx,
            occurred_at=valid_from,
            entity_id=entity_id_for(parameter_name, qid, execution_id, task_id),
            chip_id=chip_id,
            qid=qid,
            parameter_name=parameter_name,
            version=self.latest_version + 1,
            value=value,
            value_type=value_type_of(value),
            unit=unit,
            error=error,
            valid_from=valid_from,
            execution_id=execution_id,
            task_id=task_id,
            task_name=task_name,
            used=used,
        )
        assert isinstance(event, ParameterVersionRecorded)
        return event

    def _on_ParameterVersionRecorded(self, e: ParameterVersionRecorded) -> None:
        self.valid_from.append(e.valid_from)
        self.entity_ids.append(e.entity_id)
        self.latest_value = e.value
