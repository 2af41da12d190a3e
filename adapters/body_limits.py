"""Bounds on a JSON body, checked on its bytes before any parser builds objects from it.

The HTTP middleware and the bus adapter both call `check_json`: JSON nested deeper than
MAX_JSON_DEPTH, integers that no 64-bit field can hold, numbers that overflow a double,
and text that is not UTF-8 are refused with a stable code. Each check is a few passes of
C-speed regular expressions over the body, never a Python loop per byte.
"""

from __future__ import annotations

import re

import numpy as np

from domain.errors import InvalidInput

MAX_JSON_DEPTH = 32  # objects and arrays, counted together
MAX_INT = 2**63 - 1

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # unrolled: no alternation per byte
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# A number with an exponent of three digits or more: the only kind that can overflow.
_BIG_EXPONENT = re.compile(rb"-?\d+(?:\.\d+)?[eE]\+?0*\d{3,}")
_LONG_INT = re.compile(rb"-?\d{19,}(?![.eE\d])")


class BodyRefused(InvalidInput):
    """A body refused before parsing: bad input like any other (kind INVALID)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


def check_json(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise BodyRefused for a body no handler should see. Malformed JSON passes: the
    parser that follows says where it is malformed."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BodyRefused(
            "invalid_utf8", f"the body is not UTF-8 (byte {err.start} cannot be decoded)"
        ) from None
    outside = _STRING.sub(b'""', body)
    _check_depth(outside, max_depth)
    for match in _LONG_INT.finditer(outside):
        if abs(int(match.group())) > MAX_INT:
            raise BodyRefused(
                "number_out_of_range",
                f"an integer in the body is beyond ±{MAX_INT} (a 64-bit field)",
            )
    for match in _BIG_EXPONENT.finditer(outside):
        if abs(float(match.group())) == float("inf"):
            raise BodyRefused("number_out_of_range", "a number in the body overflows a double")


_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1


def _check_depth(outside_strings: bytes, max_depth: int) -> None:
    """The running count of open brackets, in numpy: its maximum is the depth."""
    brackets = outside_strings.translate(None, _NOT_BRACKETS)
    if not brackets:
        return
    steps = _STEP[np.frombuffer(brackets, dtype=np.uint8)].astype(np.int32)
    if int(np.cumsum(steps).max()) > max_depth:
        raise BodyRefused(
            "nesting_too_deep",
            f"the body nests objects and arrays more than {max_depth} deep",
        )
