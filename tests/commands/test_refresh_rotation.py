"""Refresh-token rotation on the command side: the RefreshFamily aggregate alone (given
events, an exchange, the events or the refusal), then RotateRefreshToken through the
processor and the real SQLite store (who may send it, retries, batches, restarts), then
the query node's half (adapters/http/auth.py): its credential, its reading of replies,
its retry of a lost reply."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from adapters.commandbus import parse_command
from adapters.eventstore import EventStore, store_location
from adapters.http.auth import EXCHANGE_CREDENTIAL_TTL, _spend
from adapters.security.tokens import TokenService, new_token_id
from commands.models import Rejected, Reply
from commands.processor import process_batch
from commands.refresh import RotateRefreshToken
from domain.errors import DomainError, Kind
from domain.events import DomainEvent
from domain.refresh import (
    RefreshFamily,
    RefreshFamilyRevoked,
    RefreshTokenRotated,
    refresh_family_key,
)
from tests.commands.test_identity import (
    ALICE_P,
    PASSWORDS,
    accepted,
    api_key,
    as_,
    build_world,
    events_of,
    new_key,
    refused,
    send,
    token,
)
from tests.conftest import ctx

FAM = "family-0000000000001"
# Token ids: L is the sign-in's refresh token, A, B, C... the ones each exchange issues.
L, A, B, C, X = (f"token-{c * 16}" for c in "LABCX")


# --- The aggregate: given events -> exchange -> events or refusal --------------------


def decide(history: list[DomainEvent], jti: str, next_jti: str) -> list[DomainEvent]:
    """The events one exchange adds to a family with this history (refusals raise)."""
    existing = RefreshFamily.replay(history)
    family = RefreshFamily.exchange(
        ctx(),
        existing=existing,
        username="alice",
        family=FAM,
        jti=jti,
        next_jti=next_jti,
    )
    return family.collect_events()


def given(*exchanges: tuple[str, str]) -> list[DomainEvent]:
    history: list[DomainEvent] = []
    for jti, next_jti in exchanges:
        history += decide(history, jti, next_jti)
    return history


def refusal(history: list[DomainEvent], jti: str, next_jti: str) -> str:
    """The refusal's code; the family (replayed from its history) is left as it was."""
    existing = RefreshFamily.replay(history)
    version = existing.version if existing else 0
    with pytest.raises(DomainError) as refused_:
        RefreshFamily.exchange(
            ctx(), existing=existing, username="alice", family=FAM, jti=jti, next_jti=next_jti
        )
    assert (existing.version if existing else 0) == version
    assert not (existing.collect_events() if existing else [])
    return refused_.value.code


def test_the_first_exchange_of_a_family_spends_its_sign_in_token():
    (event,) = decide([], L, A)
    assert isinstance(event, RefreshTokenRotated)
    assert (event.username, event.family, event.jti, event.next_jti) == ("alice", FAM, L, A)
    assert event.originator_id == refresh_family_key("alice", FAM)
    assert event.project_id == "_identity"  # accounts' events belong to no project


def test_the_current_token_is_exchanged_for_the_next():
    (event,) = decide(given((L, A)), A, B)
    assert isinstance(event, RefreshTokenRotated) and (event.jti, event.next_jti) == (A, B)
    family = RefreshFamily.replay(given((L, A), (A, B)))
    assert family is not None and family.current == B and family.spent == {L: A, A: B}


@pytest.mark.parametrize("spent", [L, A], ids=["the-sign-in-token", "a-rotated-token"])
def test_a_spent_token_presented_again_revokes_the_family(spent):
    (event,) = decide(given((L, A), (A, B)), spent, X)
    assert isinstance(event, RefreshFamilyRevoked)
    assert (event.jti, event.next_jti, event.reason) == (spent, X, "reuse")


def test_a_token_the_family_never_had_revokes_it_too():
    # Genuine tokens are either spent or the current one: anything else is not the holder.
    (event,) = decide(given((L, A)), C, X)
    assert isinstance(event, RefreshFamilyRevoked)


@pytest.mark.parametrize("jti", [L, A, B, C], ids=["spent", "spent-twice", "current", "unknown"])
def test_after_a_revocation_every_token_of_the_family_is_refused(jti):
    revoked = given((L, A), (A, B), (L, X))
    assert refusal(revoked, jti, f"later-{jti}") == "refresh_token_revoked"


def test_a_retry_of_the_exchange_that_revoked_gets_the_same_answer():
    revoked = given((L, A), (A, B), (L, X))
    assert refusal(revoked, L, X) == "refresh_token_reused"


def test_a_retry_of_an_accepted_exchange_is_not_reuse():
    assert refusal(given((L, A)), L, A) == "refresh_already_rotated"
    assert refusal(given((L, A), (A, B)), L, A) == "refresh_already_rotated"
    assert refusal(given((L, A), (A, B)), A, B) == "refresh_already_rotated"


def test_exchange_ids_are_never_reused():
    assert refusal([], L, L) == "invalid_input"
    assert refusal(given((L, A), (A, B)), B, A) == "invalid_input"  # A named an exchange
    assert refusal(given((L, A), (A, B)), B, L) == "invalid_input"  # L was a token


# --- Through the processor and the store ----------------------------------------------


@pytest.fixture
def world(sqlite_store: EventStore) -> EventStore:
    return build_world(sqlite_store)


def rotate(jti: str, next_jti: str, family: str = FAM) -> RotateRefreshToken:
    return RotateRefreshToken(family=family, jti=jti, next_jti=next_jti)


def outcome(reply) -> str:
    """What the query node reads from the reply: the event type, or the refusal."""
    if reply.status == "rejected":
        return reply.code
    assert reply.event is not None, "the reply carries the decisive event"
    return reply.event["type"]


ROTATED, REVOKED = RefreshTokenRotated.TYPE, RefreshFamilyRevoked.TYPE


def test_rotation_then_reuse_then_revoked(world):
    alice = token("alice")
    first = accepted(world, alice, rotate(L, A))
    assert outcome(first) == ROTATED
    assert first.event["next_jti"] == A and first.event["project_id"] == "_identity"
    assert [e["type"] for e in events_of(world, first)] == [ROTATED]
    assert outcome(accepted(world, alice, rotate(A, B))) == ROTATED
    reuse = accepted(world, alice, rotate(L, X))
    assert outcome(reuse) == REVOKED
    assert events_of(world, reuse)[0]["actor"] == "alice"
    refused(world, alice, rotate(B, "token-after-revocation"), "refresh_token_revoked")


def test_only_the_owner_and_only_a_person_may_exchange(world):
    accepted(world, token("alice"), rotate(L, A))
    # Bob naming alice's family id reaches a family of his own, not hers.
    assert outcome(accepted(world, token("bob"), rotate(L, X))) == ROTATED
    assert outcome(accepted(world, token("alice"), rotate(A, B))) == ROTATED
    key_id, secret = new_key(world, "alice", ALICE_P, ["read", "calibration:write"])
    refused(world, api_key(key_id, secret), rotate(B, C), "forbidden", project=ALICE_P)
    refused(world, token("alice", 1), rotate(B, C), "unauthenticated")  # a logged-out epoch


def test_a_retry_with_the_same_idempotency_key_gets_the_first_reply(world):
    alice = token("alice")
    first = accepted(world, alice, rotate(L, A), key="refresh-1")
    again = accepted(world, alice, rotate(L, A), key="refresh-1")
    assert (again.event_ids, again.position) == (first.event_ids, first.position)
    # Nothing was revoked: the rotated token still works.
    assert outcome(accepted(world, alice, rotate(A, B))) == ROTATED
    # Without a key the repeat is recognised by its exchange id and changes nothing.
    refused(world, alice, rotate(A, B), "refresh_already_rotated")
    assert outcome(accepted(world, alice, rotate(B, C))) == ROTATED


def test_two_exchanges_of_one_token_in_one_batch_rotate_once_and_revoke(world):
    alice = token("alice")
    accepted(world, alice, rotate(L, A))
    replies = process_batch([as_(alice, rotate(A, B)), as_(alice, rotate(A, C))], world, PASSWORDS)
    assert [outcome(r) for r in replies] == [ROTATED, REVOKED]
    refused(world, alice, rotate(B, X), "refresh_token_revoked")


def test_spent_tokens_and_revocations_survive_a_restart(world, tmp_path: Path):
    alice = token("alice")
    accepted(world, alice, rotate(L, A))
    world.close()
    reopened = EventStore(store_location(None, tmp_path))
    try:
        assert outcome(send(reopened, alice, rotate(L, X))) == REVOKED
    finally:
        reopened.close()
    reopened = EventStore(store_location(None, tmp_path))
    try:
        refused(reopened, alice, rotate(A, B), "refresh_token_revoked")
    finally:
        reopened.close()


# --- The query node's side: what it sends, and how it reads replies and retries --------


class BusToStore:
    """The bus as the query node sees it: a command with headers in, a reply out,
    decided by the real processor. `lose` replies are dropped after the decision, as
    when the command side commits and the reply never arrives."""

    def __init__(self, store: EventStore, tokens: TokenService, lose: int = 0) -> None:
        self.store, self.tokens, self.lose = store, tokens, lose
        self.sent: list[tuple[RotateRefreshToken, dict[str, str]]] = []

    async def send(self, command, headers: dict[str, str]) -> Reply:
        self.sent.append((command, headers))
        subject = "qledger.cmd." + command.SUBJECT
        parsed = parse_command(subject, command.model_dump_json().encode(), headers, self.tokens)
        if isinstance(parsed, Rejected):
            return parsed
        (reply,) = process_batch([parsed], self.store, PASSWORDS)
        if self.lose:
            self.lose -= 1
            return Rejected(kind=Kind.TIMEOUT, code="command_timeout", message="no reply in time")
        return reply


def node_request(tokens: TokenService, bus: BusToStore, headers=()) -> Request:
    state = SimpleNamespace(auth=SimpleNamespace(tokens=tokens), gateway=bus)
    scope = {"type": "http", "headers": list(headers), "app": SimpleNamespace(state=state)}
    return Request(scope)


SECRET = b"s" * 32


def claims_of(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


async def test_the_node_exchanges_with_a_short_lived_credential_of_the_owner(world):
    tokens = TokenService(SECRET)
    bus = BusToStore(world, tokens)
    claims = tokens.verify_refresh(tokens.issue("alice", 0, kind="refresh"))
    # Whatever credential the client sent along is not the exchange's.
    stray = [(b"authorization", b"Bearer not-a-token"), (b"idempotency-key", b"k1")]
    await _spend(node_request(tokens, bus, stray), claims, A)
    ((command, headers),) = bus.sent
    assert (command.family, command.jti, command.next_jti) == (claims.family, claims.jti, A)
    assert "Idempotency-Key" not in headers and "idempotency-key" not in headers
    bearer = headers["Authorization"].removeprefix("Bearer ")
    assert tokens.verify(bearer).username == "alice"
    lifetime = claims_of(bearer)["exp"] - claims_of(bearer)["iat"]
    assert lifetime == EXCHANGE_CREDENTIAL_TTL.total_seconds() < tokens.access_ttl.total_seconds()


async def test_the_node_refuses_a_reused_token_and_a_revoked_family(world):
    tokens = TokenService(SECRET)
    bus = BusToStore(world, tokens)
    first = tokens.verify_refresh(tokens.issue("alice", 0, kind="refresh"))
    await _spend(node_request(tokens, bus), first, A)
    for presented, code in ((first, "refresh_token_reused"), (first, "refresh_token_revoked")):
        with pytest.raises(HTTPException) as refused_:
            await _spend(node_request(tokens, bus), presented, new_token_id())
        assert refused_.value.status_code == 401
        assert refused_.value.detail["code"] == code


async def test_a_lost_reply_is_retried_as_the_same_exchange_not_as_reuse(world):
    tokens = TokenService(SECRET)
    bus = BusToStore(world, tokens, lose=1)
    first = tokens.verify_refresh(tokens.issue("alice", 0, kind="refresh"))
    await _spend(node_request(tokens, bus), first, A)  # decided, reply lost, sent again
    assert [c.next_jti for c, _ in bus.sent] == [A, A]
    second = tokens.verify_refresh(tokens.issue("alice", 0, kind="refresh", family=first.family, jti=A))  # fmt: skip
    await _spend(node_request(tokens, bus), second, B)  # the family is alive; A was current
