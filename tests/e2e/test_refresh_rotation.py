"""Refresh-token rotation against the real thing: `qledger serve`, HTTP, NATS, a restart.

Each refresh token works once; presenting a spent one revokes its family (every token
descended from the same sign-in), and that holds after a restart too.
"""

from __future__ import annotations

import base64
import json
import signal
from pathlib import Path

import httpx

from tests.e2e.serving import Serve

PASSWORD = "rotation-password-1"


def claims(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def sign_in(serve: Serve, username: str) -> dict:
    r = httpx.post(
        serve.base + "/api/v1/auth/login",
        json={"email": username, "password": PASSWORD},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def refresh(serve: Serve, refresh_token: str) -> httpx.Response:
    return httpx.post(
        serve.base + "/api/v1/auth/refresh", json={"refresh_token": refresh_token}, timeout=40
    )


def refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == code and body["message"], body


def test_a_refresh_token_works_once_and_its_reuse_revokes_the_family(tmp_path: Path):
    serve = Serve(tmp_path, None).start()
    r = serve.client().post("/api/auth/register", json={"username": "rita", "password": PASSWORD})
    assert r.status_code == 200, r.text

    first = sign_in(serve, "rita")
    rotated = refresh(serve, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert set(second) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert second["token_type"] == "Bearer" and second["expires_in"] > 0
    old, new = claims(first["refresh_token"]), claims(second["refresh_token"])
    assert new["fam"] == old["fam"] and new["jti"] != old["jti"]
    me = serve.client(second["access_token"]).get("/api/auth/me")
    assert me.status_code == 200 and me.json()["username"] == "rita"

    # The first token again: spent, so someone else holds this family. Revoked...
    refused(refresh(serve, first["refresh_token"]), "refresh_token_reused")
    # ...including the token the legitimate rotation issued.
    refused(refresh(serve, second["refresh_token"]), "refresh_token_revoked")

    # Another sign-in is another family, untouched by that revocation.
    other = sign_in(serve, "rita")
    assert claims(other["refresh_token"])["fam"] != old["fam"]
    other_rotated = refresh(serve, other["refresh_token"])
    assert other_rotated.status_code == 200, other_rotated.text

    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=30) == 0
    serve.start()
    # What was spent and revoked is in the event store, not in a process's memory.
    refused(refresh(serve, second["refresh_token"]), "refresh_token_revoked")
    refused(refresh(serve, other["refresh_token"]), "refresh_token_reused")
    refused(refresh(serve, other_rotated.json()["refresh_token"]), "refresh_token_revoked")
    fresh = refresh(serve, sign_in(serve, "rita")["refresh_token"])
    assert fresh.status_code == 200, fresh.text
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=30) == 0
