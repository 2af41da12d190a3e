"""Credential mechanics: tokens, password hashes, API keys, the secret file, throttling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import argon2
import jwt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from adapters.security.apikeys import KEY_PREFIX, new_api_key, parse_api_key, secret_sha256
from adapters.security.passwords import Passwords
from adapters.security.secret_file import jwt_secret
from adapters.security.throttle import LoginThrottle
from adapters.security.tokens import MAX_TOKEN_LENGTH, InvalidToken, TokenService
from domain.access import Credential

SECRET = b"s" * 32 + b"-test-secret"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
ROOT = Path(__file__).resolve().parents[2]

usernames = st.text(min_size=1, max_size=64)
epochs = st.integers(min_value=-(2**53), max_value=2**53)


@pytest.fixture(scope="module")
def tokens() -> TokenService:
    return TokenService(SECRET)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "iss": "qledger",
        "sub": "alice",
        "ep": 3,
        "typ": "access",
        "iat": TS,
        "exp": TS + 1800,
        "jti": "abc",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, object], key: bytes = SECRET) -> str:
    return jwt.encode(payload, key, algorithm="HS256")


def refused(service: TokenService, token: str, **kwargs: object) -> bool:
    try:
        service.verify(token, now=kwargs.pop("now", NOW), **kwargs)  # type: ignore[arg-type]
    except InvalidToken as exc:
        assert exc.message == "invalid or expired token"  # no hint which check failed
        return True
    return False


# --- tokens ---------------------------------------------------------------------------


@given(usernames, epochs, st.sampled_from(["access", "refresh"]))
def test_token_round_trip(tokens: TokenService, username: str, epoch: int, kind: str) -> None:
    token = tokens.issue(username, epoch, kind=kind, now=NOW)  # type: ignore[arg-type]
    credential = tokens.verify(token, kind=kind, now=NOW)  # type: ignore[arg-type]
    assert credential == Credential(kind="token", username=username, token_epoch=epoch)


def test_token_verifies_against_the_real_clock_without_now(tokens: TokenService) -> None:
    assert tokens.verify(tokens.issue("alice", 1)).username == "alice"


def test_two_tokens_issued_in_the_same_second_differ(tokens: TokenService) -> None:
    assert tokens.issue("alice", 1, now=NOW) != tokens.issue("alice", 1, now=NOW)


@given(
    position=st.integers(min_value=0),
    replacement=st.sampled_from(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00é"
    ),
)
@settings(max_examples=300)
def test_any_modified_character_is_refused(
    tokens: TokenService, position: int, replacement: str
) -> None:
    token = tokens.issue("alice", 7, now=NOW)
    position %= len(token)
    assume(token[position] != replacement)
    mutated = token[:position] + replacement + token[position + 1 :]
    assert refused(tokens, mutated)


def test_signature_spare_bits_do_not_give_a_second_valid_spelling(tokens: TokenService) -> None:
    # An HS256 signature is 32 bytes = 43 base64url characters, whose last one carries
    # 2 spare bits: four different final characters decode to the same signature. Only
    # the canonical one is accepted.
    token = tokens.issue("alice", 7, now=NOW)
    head, last = token[:-1], token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same_bytes = [
        c
        for c in alphabet
        if c != last
        and base64.urlsafe_b64decode(token.rsplit(".", 1)[1][:-1] + c + "=")
        == base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "=")
    ]
    assert len(same_bytes) == 3  # the malleability exists at the encoding level...
    for c in same_bytes:
        assert refused(tokens, head + c)  # ...and is refused


def test_alg_none_token_is_refused(tokens: TokenService) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    assert refused(tokens, f"{header}.{payload}.")
    assert refused(tokens, f"{header}.{payload}.{b64(b'x' * 32)}")


def test_token_signed_with_another_secret_is_refused(tokens: TokenService) -> None:
    assert not refused(tokens, hs256(claims()))  # the forged ones below differ only in key
    assert refused(tokens, hs256(claims(), b"o" * 32 + b"-other-secret"))
    assert refused(tokens, TokenService(b"o" * 40).issue("alice", 3, now=NOW))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_refused_even_with_the_right_secret(
    tokens: TokenService, algorithm: str
) -> None:
    key = SECRET * 2  # long enough that PyJWT signs without complaint
    service = TokenService(key)
    assert refused(service, jwt.encode(claims(), key, algorithm=algorithm))


def forge(header: Mapping[str, object], key: bytes = SECRET) -> str:
    """A token with an arbitrary header, HMAC-SHA256-signed with `key`."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "hs256", "HS256 ", None])
def test_header_naming_another_algorithm_is_refused(tokens: TokenService, alg: str | None) -> None:
    # Algorithm confusion: the header, not the server, would pick how to check the
    # signature. The signature here is even a valid HMAC with our own secret.
    assert not refused(tokens, forge({"alg": "HS256", "typ": "JWT"}))  # control
    header = {"typ": "JWT"} if alg is None else {"alg": alg, "typ": "JWT"}
    assert refused(tokens, forge(header))


def test_padded_spelling_of_a_valid_token_is_refused(tokens: TokenService) -> None:
    # PyJWT itself accepts a trailing "=" on the signature; we accept one spelling only.
    token = tokens.issue("alice", 7, now=NOW)
    assert refused(tokens, token + "=")


@pytest.mark.parametrize("missing", ["iss", "sub", "ep", "typ", "iat", "exp", "jti"])
def test_token_with_a_missing_claim_is_refused(tokens: TokenService, missing: str) -> None:
    assert refused(tokens, hs256(claims(**{missing: None})))


@pytest.mark.parametrize(
    "change",
    [
        {"ep": "3"},
        {"ep": 3.0},
        {"ep": True},
        {"sub": ""},
        {"sub": 42},
        {"sub": ["alice"]},
        {"iat": "now"},
        {"exp": float(TS + 1800)},
        {"iss": "someone-else"},
        {"typ": "id"},
        {"jti": 5},
    ],
)
def test_token_with_a_wrongly_typed_claim_is_refused(
    tokens: TokenService, change: dict[str, object]
) -> None:
    assert not refused(tokens, hs256(claims()))  # well-typed control
    assert refused(tokens, hs256(claims(**change)))


def test_token_expires_exactly_at_exp(tokens: TokenService) -> None:
    token = tokens.issue("alice", 1, now=NOW)
    exp = NOW + tokens.access_ttl
    assert not refused(tokens, token, now=exp - timedelta(seconds=1))
    assert refused(tokens, token, now=exp)
    assert refused(tokens, token, now=exp + timedelta(days=365))


def test_expiry_is_enforced_without_an_explicit_now() -> None:
    service = TokenService(SECRET)
    stale = service.issue("alice", 1, now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(InvalidToken):
        service.verify(stale)


def test_refresh_tokens_live_longer_than_access_tokens() -> None:
    service = TokenService(SECRET, access_ttl=timedelta(minutes=5), refresh_ttl=timedelta(days=1))
    later = NOW + timedelta(hours=1)
    assert refused(service, service.issue("a", 1, now=NOW), now=later)
    refresh = service.issue("a", 1, kind="refresh", now=NOW)
    assert service.verify(refresh, kind="refresh", now=later).username == "a"


def test_token_issued_in_the_future_is_refused(tokens: TokenService) -> None:
    assert not refused(tokens, tokens.issue("a", 1, now=NOW + timedelta(seconds=60)))
    assert refused(tokens, tokens.issue("a", 1, now=NOW + timedelta(seconds=61)))


def test_refresh_and_access_tokens_are_not_interchangeable(tokens: TokenService) -> None:
    access = tokens.issue("alice", 1, kind="access", now=NOW)
    refresh = tokens.issue("alice", 1, kind="refresh", now=NOW)
    assert refused(tokens, refresh, kind="access")
    assert refused(tokens, access, kind="refresh")


def test_token_from_another_issuer_is_refused() -> None:
    other = TokenService(SECRET, issuer="other-ledger")
    assert refused(TokenService(SECRET), other.issue("alice", 1, now=NOW))


def test_oversized_token_is_refused(tokens: TokenService) -> None:
    big = hs256(claims(pad="x" * MAX_TOKEN_LENGTH))
    assert refused(tokens, big)
    with pytest.raises(ValueError):
        tokens.issue("x" * MAX_TOKEN_LENGTH, 1)


@given(st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9_-]{0,40}(\.[A-Za-z0-9_=-]{0,40}){2}"))
def test_garbage_is_refused(tokens: TokenService, garbage: str) -> None:
    assert refused(tokens, garbage)


def test_short_secret_is_rejected() -> None:
    with pytest.raises(ValueError):
        TokenService(b"x" * 31)


def test_ttls_are_readable_for_expires_in() -> None:
    service = TokenService(SECRET, access_ttl=timedelta(minutes=10))
    assert service.access_ttl == timedelta(minutes=10)
    assert service.refresh_ttl == timedelta(days=7)


# --- passwords ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@given(password=st.text(min_size=1, max_size=40), other=st.text(min_size=1, max_size=40))
@settings(max_examples=30)
def test_password_verifies_only_itself(passwords: Passwords, password: str, other: str) -> None:
    stored = passwords.hash(password)
    assert stored != password
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, password)
    assert passwords.verify(stored, other) == (other == password)


def test_hash_does_not_contain_the_password(passwords: Passwords) -> None:
    assert "correct horse battery staple" not in passwords.hash("correct horse battery staple")


def test_same_password_hashes_differently_each_time(passwords: Passwords) -> None:
    assert passwords.hash("correct horse") != passwords.hash("correct horse")


def test_unknown_user_never_verifies(passwords: Passwords) -> None:
    assert passwords.verify(None, "") is False
    assert passwords.verify(None, "anything at all") is False


@pytest.mark.parametrize("bad_hash", ["", "plaintext", "$argon2id$v=19$m=8,t=1,p=1$broken"])
def test_malformed_hash_is_a_mismatch_not_a_crash(passwords: Passwords, bad_hash: str) -> None:
    assert passwords.verify(bad_hash, "plaintext") is False


def test_default_parameters_are_rfc9106_low_memory_argon2id() -> None:
    real = Passwords()
    stored = real.hash("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert real.verify(stored, "correct horse battery")
    assert not real.verify(stored, "correct horse batterY")


def test_unknown_user_costs_about_as_much_as_a_wrong_password() -> None:
    # A slow hasher so that hashing dominates; the unknown-user path must do the same work.
    slow = Passwords(argon2.PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1))
    stored = slow.hash("right password")

    def best_of(f: object) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            f()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return min(times)

    slow.verify(None, "warm-up")  # the dummy hash is made on first use
    wrong = best_of(lambda: slow.verify(stored, "wrong password"))
    unknown = best_of(lambda: slow.verify(None, "wrong password"))
    assert unknown > wrong / 3  # a skipped hash would be ~1000x faster


# --- API keys -------------------------------------------------------------------------


def test_new_api_key_parses_back_to_its_id_and_secret_hash() -> None:
    for _ in range(50):
        key_id, secret, full = new_api_key()
        assert full.startswith(KEY_PREFIX)
        assert len(key_id) == 16 and all(c in "0123456789abcdef" for c in key_id)
        credential = parse_api_key(full)
        assert credential == Credential(
            kind="api_key", key_id=key_id, key_secret_sha256=secret_sha256(secret)
        )
        assert credential.key_secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()


def test_new_api_keys_are_unique() -> None:
    keys = {new_api_key()[2] for _ in range(200)}
    assert len(keys) == 200


def test_api_key_with_different_secret_has_different_hash() -> None:
    key_id, secret, full = new_api_key()
    tampered = full[:-1] + ("A" if full[-1] != "A" else "B")
    assert parse_api_key(tampered).key_secret_sha256 != parse_api_key(full).key_secret_sha256


_, _SECRET_EXAMPLE, _FULL_EXAMPLE = new_api_key()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "qlk_",
        _FULL_EXAMPLE.replace("qlk_", "qlx_", 1),
        _FULL_EXAMPLE.replace("qlk_", "QLK_", 1),
        "qlk_0123456789ABCDEF_" + _SECRET_EXAMPLE,  # uppercase hex
        "qlk_0123456789abcde_" + _SECRET_EXAMPLE,  # 15 hex
        "qlk_0123456789abcdef0_" + _SECRET_EXAMPLE,  # 17 hex
        "qlk_0123456789abcdeg_" + _SECRET_EXAMPLE,  # not hex
        "qlk_0123456789abcdef_",  # empty secret
        "qlk_0123456789abcdef" + _SECRET_EXAMPLE,  # no separator
        "qlk_0123456789abcdef_" + "a" * 101,  # secret too long
        "qlk_0123456789abcdef_" + "a" * 180,
        _FULL_EXAMPLE + "\n",
        " " + _FULL_EXAMPLE,
        _FULL_EXAMPLE[:-1] + "é",
    ],
    # Stable ids: the examples hold a fresh key, and parallel workers must collect the
    # same test names.
    ids=[f"malformed-{i}" for i in range(15)],
)
def test_malformed_api_keys_are_refused(bad: str) -> None:
    with pytest.raises(InvalidToken) as info:
        parse_api_key(bad)
    assert info.value.message == "invalid API key"


def test_longest_allowed_secret_is_accepted() -> None:
    assert parse_api_key("qlk_0123456789abcdef_" + "a" * 100).key_id == "0123456789abcdef"


@given(st.text(max_size=250))
def test_arbitrary_text_is_refused_unless_it_has_the_key_shape(text: str) -> None:
    try:
        credential = parse_api_key(text)
    except InvalidToken:
        return
    # Anything accepted really is a prefixed key with a 16-hex id and a bounded secret.
    assert text.startswith(KEY_PREFIX) and len(text) <= 200
    assert text[4:20] == credential.key_id and text[20] == "_"
    assert credential.key_secret_sha256 == secret_sha256(text[21:])


@given(
    key_id=st.from_regex(r"[0-9a-f]{16}", fullmatch=True),
    secret=st.from_regex(r"[A-Za-z0-9_-]{1,100}", fullmatch=True),
)
def test_every_well_formed_key_parses(key_id: str, secret: str) -> None:
    credential = parse_api_key(f"qlk_{key_id}_{secret}")
    assert (credential.key_id, credential.key_secret_sha256) == (key_id, secret_sha256(secret))


# --- JWT secret file ------------------------------------------------------------------


def test_generated_secret_is_stable_and_private(tmp_path: Path) -> None:
    first = jwt_secret(None, tmp_path / "data")
    assert len(first) >= 32
    assert jwt_secret(None, tmp_path / "data") == first
    mode = stat.S_IMODE((tmp_path / "data" / "jwt.secret").stat().st_mode)
    assert mode == 0o600
    TokenService(first)  # usable as a signing key


def test_different_data_dirs_get_different_secrets(tmp_path: Path) -> None:
    assert jwt_secret(None, tmp_path / "a") != jwt_secret(None, tmp_path / "b")


def test_configured_secret_wins(tmp_path: Path) -> None:
    jwt_secret(None, tmp_path)
    configured = "c" * 32
    assert jwt_secret(configured, tmp_path) == configured.encode()


def test_configured_secret_creates_no_file(tmp_path: Path) -> None:
    jwt_secret("c" * 40, tmp_path)
    assert not (tmp_path / "jwt.secret").exists()


def test_short_configured_secret_stops_startup(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="at least 32"):
        jwt_secret("c" * 31, tmp_path)


def test_short_secret_file_stops_startup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("adapters.security.secret_file._READ_PAUSE", 0.0)
    (tmp_path / "jwt.secret").write_text("too short\n")
    with pytest.raises(SystemExit, match="jwt.secret"):
        jwt_secret(None, tmp_path)


def test_hand_written_secret_file_is_used(tmp_path: Path) -> None:
    (tmp_path / "jwt.secret").write_text("h" * 40 + "\n")
    assert jwt_secret(None, tmp_path) == b"h" * 40


def test_reader_waits_for_a_creator_that_has_not_written_yet(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    path.touch()  # created (O_EXCL won) but not yet written

    def write_late() -> None:
        time.sleep(0.1)
        path.write_text("w" * 64)

    writer = threading.Thread(target=write_late)
    writer.start()
    assert jwt_secret(None, tmp_path) == b"w" * 64
    writer.join()


def _start_together(barrier: threading.Barrier, data_dir: Path, results: list[bytes]) -> None:
    barrier.wait()
    results.append(jwt_secret(None, data_dir))


def test_concurrent_threads_agree_on_one_secret(tmp_path: Path) -> None:
    for round_ in range(20):
        data_dir = tmp_path / str(round_)
        barrier = threading.Barrier(8)
        results: list[bytes] = []
        threads = [
            threading.Thread(target=_start_together, args=(barrier, data_dir, results))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 8 and len(set(results)) == 1
        assert (data_dir / "jwt.secret").read_bytes().strip() == results[0]


def test_concurrent_processes_agree_on_one_secret(tmp_path: Path) -> None:
    start_at = time.time() + 1.0  # all processes call jwt_secret at the same instant
    script = (
        "import sys, time; from pathlib import Path\n"
        "from adapters.security.secret_file import jwt_secret\n"
        "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
        "print(jwt_secret(None, Path(sys.argv[2])).decode())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(start_at), str(tmp_path / "data")],
            stdout=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        for _ in range(6)
    ]
    outputs = {p.communicate(timeout=30)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outputs) == 1
    assert outputs == {(tmp_path / "data" / "jwt.secret").read_bytes().strip()}


# --- login throttle -------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_throttle(**kwargs: float) -> tuple[LoginThrottle, FakeClock]:
    clock = FakeClock()
    return LoginThrottle(clock=clock, **kwargs), clock  # type: ignore[arg-type]


def test_first_failures_are_free_then_delays_double_up_to_the_cap() -> None:
    throttle, _ = make_throttle(free_failures=3, base_delay=1.0, max_delay=10.0)
    keys = ["user:alice"]
    assert throttle.retry_after(keys) == 0.0
    waits = []
    for _ in range(8):
        throttle.failed(keys)
        waits.append(throttle.retry_after(keys))
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_wait_counts_down_with_time() -> None:
    throttle, clock = make_throttle(free_failures=1, base_delay=4.0)
    throttle.failed(["k"])
    assert throttle.retry_after(["k"]) == 4.0
    clock.now += 3.0
    assert throttle.retry_after(["k"]) == pytest.approx(1.0)
    clock.now += 1.0
    assert throttle.retry_after(["k"]) == 0.0
    clock.now += 100.0
    assert throttle.retry_after(["k"]) == 0.0


def test_success_resets_the_count() -> None:
    throttle, _ = make_throttle(free_failures=2)
    for _ in range(5):
        throttle.failed(["user:alice"])
    assert throttle.retry_after(["user:alice"]) > 0
    throttle.succeeded(["user:alice"])
    assert throttle.retry_after(["user:alice"]) == 0.0
    throttle.failed(["user:alice"])
    assert throttle.retry_after(["user:alice"]) == 0.0  # free failures are free again


def test_other_usernames_are_unaffected_and_the_strictest_key_decides() -> None:
    throttle, _ = make_throttle(free_failures=1, base_delay=2.0)
    for _ in range(3):
        throttle.failed(["user:alice", "addr:10.0.0.1"])
    assert throttle.retry_after(["user:bob", "addr:10.0.0.2"]) == 0.0
    # Bob from the attacker's address is blocked by the address key...
    assert throttle.retry_after(["user:bob", "addr:10.0.0.1"]) == 8.0
    # ...and alice from anywhere by her username key.
    assert throttle.retry_after(["user:alice", "addr:10.0.0.2"]) == 8.0


def test_idle_entries_are_forgotten() -> None:
    throttle, clock = make_throttle(
        free_failures=1, base_delay=1.0, max_delay=1.0, forget_after=60.0
    )
    for _ in range(5):
        throttle.failed(["k"])
    clock.now += 59.0
    throttle.failed(["other"])
    clock.now += 2.0  # "k" idle 61 s, "other" 2 s
    throttle.retry_after([])  # pruning happens lazily on use
    assert len(throttle._entries) == 1
    throttle.failed(["k"])
    assert throttle.retry_after(["k"]) == 1.0 and throttle._entries["k"].failures == 1


def test_memory_is_capped_by_evicting_the_stalest() -> None:
    throttle, clock = make_throttle(free_failures=0, max_entries=100)
    for i in range(1000):
        clock.now += 0.001
        throttle.failed([f"user:{i}"])
    assert len(throttle._entries) == 100
    assert throttle.retry_after(["user:999"]) > 0
    assert throttle.retry_after(["user:0"]) == 0.0


def test_huge_failure_counts_stay_at_the_cap() -> None:
    throttle, _ = make_throttle(free_failures=0, max_delay=60.0)
    for _ in range(2000):
        throttle.failed(["k"])
    assert throttle.retry_after(["k"]) == 60.0


def test_a_token_verified_once_still_expires_and_keeps_its_kind():
    # Verified tokens are cached; the cache must not outlive the token or mix up kinds.
    service = TokenService(SECRET)
    token = service.issue("alice", 3, now=NOW)
    assert service.verify(token, now=NOW).username == "alice"
    assert service.verify(token, now=NOW + timedelta(minutes=29)).token_epoch == 3
    with pytest.raises(InvalidToken):
        service.verify(token, now=NOW + timedelta(minutes=30))
    with pytest.raises(InvalidToken):
        service.verify(token, kind="refresh", now=NOW)
    other = TokenService(b"o" * 32)  # another server's key: its own cache, no borrowing
    with pytest.raises(InvalidToken):
        other.verify(token, now=NOW)
