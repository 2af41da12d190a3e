"""One error model: every code the source can raise has one kind, every kind one HTTP
status. docs/errors.md is generated from the same catalogue (tests/adapters/
test_generated_docs.py keeps it current), and the e2e suite checks every error response
it receives against it (tests/e2e/serving.py)."""

from __future__ import annotations

from adapters.error_catalogue import catalogue, sites
from adapters.http.errors import STATUS_BY_KIND
from domain.errors import Kind


def test_every_kind_has_one_status() -> None:
    assert set(STATUS_BY_KIND) == set(Kind)


def test_each_code_is_raised_as_one_kind_everywhere() -> None:
    split = {code: kinds for code, kinds in catalogue().items() if len(kinds) > 1}
    where = {
        code: sorted(f"{s.where} ({s.kind.value})" for s in sites() if s.code == code)
        for code in split
    }
    assert not split, f"codes raised as more than one kind: {where}"


def test_the_catalogue_sees_each_way_a_code_is_raised() -> None:
    """If the scan stopped recognising a form, codes would vanish from the catalogue and
    the e2e check would start failing on them; this names the form that broke."""
    kinds = {code: next(iter(k)) for code, k in catalogue().items()}
    expected = {
        "chip_not_found": Kind.NOT_FOUND,  # NotFound(..., code="…") in a handler
        "unknown_qid": Kind.INVALID,  # a reference inside a body: INVALID, not NOT_FOUND
        "refresh_token_reused": Kind.UNAUTHENTICATED,  # a class attribute
        "store_unavailable": Kind.UNAVAILABLE,  # Rejected(kind=…, code=…)
        "job_not_found": Kind.NOT_FOUND,  # QueryError(kind, code, …)
        "position_not_in_store": Kind.INVALID,  # ApiError(kind, code, …)
        "too_many_qubits": Kind.INVALID,  # TwinError(code, …)
        "nesting_too_deep": Kind.INVALID,  # BodyRefused(code, …)
        "body_too_large": Kind.TOO_LARGE,  # the body-limit middleware's own refusal
        "twin_unavailable": Kind.UNAVAILABLE,
        "invalid_request": Kind.INVALID,  # the framework's schema check
    }
    assert {code: kinds.get(code) for code in expected} == expected
