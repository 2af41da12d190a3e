"""Typed business-rule errors and their kinds.

Every refusal qledger can give has a stable `code` (machine-readable, one meaning) and a
`kind` (what sort of refusal it is). The kind alone decides the HTTP status, in one table
(adapters/http/errors.py); a command refused on the bus carries both in its reply.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """What sort of refusal an error is. The rules for choosing one:

    - the thing a request reads or acts on does not exist (the chip in the path, the
      backend a job is submitted to, the metric asked for): NOT_FOUND;
    - a field refers to something that must exist but is not what the request acts on
      (a task's qubit, an input parameter version, a figure): INVALID, like any other
      content that breaks a rule;
    - the request's envelope is unusable (a header, a command name): MALFORMED;
    - the request is right but the record's state forbids it now: CONFLICT.
    """

    MALFORMED = "malformed"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"  # the HTTP framework's own, no domain error
    CONFLICT = "conflict"
    GONE = "gone"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA = "unsupported_media"
    INVALID = "invalid"
    THROTTLED = "throttled"
    INTERNAL = "internal"
    NOT_SUPPORTED = "not_supported"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"


class DomainError(Exception):
    """A command broke a rule. `code` is stable and machine-readable; `message` is for humans."""

    code = "domain_error"
    kind = Kind.INVALID

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    code = "invalid_input"
    kind = Kind.INVALID


class Malformed(DomainError):
    code = "malformed"
    kind = Kind.MALFORMED


class NotFound(DomainError):
    code = "not_found"
    kind = Kind.NOT_FOUND


class Conflict(DomainError):
    code = "conflict"
    kind = Kind.CONFLICT


class Unavailable(DomainError):
    """The part that would decide this is not running here; retrying later may work."""

    code = "unavailable"
    kind = Kind.UNAVAILABLE


class TooLarge(DomainError):
    code = "too_large"
    kind = Kind.TOO_LARGE


class UnsupportedMedia(DomainError):
    code = "unsupported_media_type"
    kind = Kind.UNSUPPORTED_MEDIA
