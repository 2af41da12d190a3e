"""Imports every module that defines events, so each wire name resolves to its class."""

from domain import chip, execution, idempotency, identity, parameters, projects, refresh  # noqa: F401
from domain.events import EVENT_TYPES

__all__ = ["EVENT_TYPES"]
