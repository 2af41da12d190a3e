"""Imports every module that defines events, so each wire name resolves to its class."""

from domain import (  # noqa: F401
    chip,
    execution,
    idempotency,
    identity,
    parameters,
    projects,
    refresh,
    task_files,
    twin,
    twin_qec,
)
from domain.events import EVENT_TYPES

__all__ = ["EVENT_TYPES"]
