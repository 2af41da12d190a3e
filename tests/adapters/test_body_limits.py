"""The byte-level JSON checks (adapters/body_limits.py): what they refuse and what they
must let through to the parser."""

from __future__ import annotations

import pytest

from adapters.body_limits import MAX_JSON_DEPTH, BodyRefused, check_json


@pytest.mark.parametrize(
    "body, code",
    [
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nesting_too_deep"),
        (b'{"a": 9223372036854775808}', "number_out_of_range"),
        (b'{"a": -9223372036854775809}', "number_out_of_range"),
        (b'{"a": 1e400}', "number_out_of_range"),
        (b"[1, 2e400]", "number_out_of_range"),  # not the first number's value
        (b'{"a": "\xff"}', "invalid_utf8"),
    ],
)
def test_refused(body, code):
    with pytest.raises(BodyRefused) as err:
        check_json(body)
    assert err.value.code == code


@pytest.mark.parametrize(
    "body",
    [
        b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH,
        b'{"a": 9223372036854775807, "b": 1.5e308, "c": 1e-400}',
        b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ 1e999 99999999999999999999"}',
        b'{"a": "\\\\", "b": [1]}',
        b'{"chip_id": "c1", "size": ',  # malformed: the parser says where
    ],
)
def test_let_through(body):
    check_json(body)
