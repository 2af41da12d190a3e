"""Run parameters: what a task lets its caller set, and the bounds each value must keep.

A calibration request comes from outside; a sweep of 10⁹ points or a delay of 10⁹ µs
would tie up the twin for everyone. Each task declares its run parameters here, with
their defaults and bounds, and a request is checked against them before anything runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class RunParameterError(ValueError):
    """A run parameter the task does not take, or a value outside its bounds."""


@dataclass(frozen=True)
class Param:
    """One run parameter: an int, a float, or a list of ints, within [low, high]."""

    default: Any
    low: float
    high: float
    kind: str = "float"  # "int" | "float" | "int_list"
    optional: bool = False  # None is allowed (the task then picks a value itself)
    max_items: int = 32  # for int lists
    description: str = ""

    def check(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if self.kind == "int_list":
            if not isinstance(value, list) or not 1 <= len(value) <= self.max_items:
                raise RunParameterError(f"{name} must be a list of 1 to {self.max_items} integers")
            return [self._number(name, v, "int") for v in value]
        return self._number(name, value, self.kind)

    def _number(self, name: str, value: Any, kind: str) -> Any:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and isinstance(value, int) and abs(value) > 2**53:  # float() would overflow
            raise RunParameterError(f"{name} must be between {self.low:g} and {self.high:g}")
        if kind == "int":
            ok = ok and float(value).is_integer()
        if not ok or not math.isfinite(value):
            raise RunParameterError(
                f"{name} must be {'an integer' if kind == 'int' else 'a number'}"
            )
        if not self.low <= value <= self.high:
            raise RunParameterError(
                f"{name} must be between {self.low:g} and {self.high:g}, got {value:g}"
            )
        return int(value) if kind == "int" else float(value)


def shots(default: int) -> Param:
    return Param(default, 1, 100_000, "int", description="shots per circuit")


def resolve(task_name: str, spec: dict[str, Param], given: dict[str, Any] | None) -> dict[str, Any]:
    """The defaults, overridden by `given`; every value checked."""
    unknown = sorted(set(given or {}) - set(spec))
    if unknown:
        raise RunParameterError(
            f"{task_name} takes no run parameter {unknown}; it takes {sorted(spec)}"
        )
    values = {name: p.default for name, p in spec.items()}
    for name, value in (given or {}).items():
        values[name] = spec[name].check(name, value)
    return values
