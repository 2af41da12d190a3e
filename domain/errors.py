"""Typed business-rule errors. Adapters map `status` to an HTTP code or a rejected reply."""

from __future__ import annotations


class DomainError(Exception):
    """A command broke a rule. `code` is stable and machine-readable; `message` is for humans."""

    code = "domain_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    code = "invalid_input"
    status = 422


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409
