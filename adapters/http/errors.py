"""The one place where an error's kind becomes an HTTP status.

Every refusal the API gives is `{"code", "message"}` with the status its kind says:
domain errors raised in a route, commands rejected by the command side (their reply
carries the kind), read-side QueryErrors and the adapters' own refusals all go through
`STATUS_BY_KIND`. A code has one kind wherever it is raised; tests/adapters/
test_error_model.py checks that for every code in the source.
"""

from __future__ import annotations

from fastapi import HTTPException

from domain.errors import DomainError, Kind

STATUS_BY_KIND: dict[Kind, int] = {
    Kind.MALFORMED: 400,
    Kind.UNAUTHENTICATED: 401,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.METHOD_NOT_ALLOWED: 405,
    Kind.CONFLICT: 409,
    Kind.GONE: 410,
    Kind.TOO_LARGE: 413,
    Kind.UNSUPPORTED_MEDIA: 415,
    Kind.INVALID: 422,
    Kind.THROTTLED: 429,
    Kind.INTERNAL: 500,
    Kind.NOT_SUPPORTED: 501,
    Kind.UNAVAILABLE: 503,
    Kind.TIMEOUT: 504,
}


def status_of(kind: Kind) -> int:
    return STATUS_BY_KIND[kind]


class ApiError(HTTPException):
    """A refusal of the HTTP side, by kind. A 401 says how to sign in."""

    def __init__(
        self, kind: Kind, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        if kind is Kind.UNAUTHENTICATED:
            headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
        super().__init__(status_of(kind), {"code": code, "message": message}, headers=headers)
        self.kind = kind

    @classmethod
    def of(cls, err: DomainError) -> ApiError:
        return cls(err.kind, err.code, err.message)


def not_found(what: str) -> ApiError:
    return ApiError(Kind.NOT_FOUND, "not_found", f"{what} not found")
