"""Typed business-rule errors. Each becomes a rejected reply with its stable `code`; the
HTTP adapter maps codes to status codes (adapters/http/deps.py)."""

from __future__ import annotations


class DomainError(Exception):
    """A command broke a rule. `code` is stable and machine-readable; `message` is for humans."""

    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    code = "invalid_input"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"
