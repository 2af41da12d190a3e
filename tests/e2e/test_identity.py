"""Identity and tenancy against the real thing: `qledger serve`, HTTP and NATS."""

from __future__ import annotations

import base64
import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nats
import pytest

from adapters.eventstore import EventStore, store_location
from adapters.security.secret_file import jwt_secret
from adapters.security.tokens import TokenService
from commands.models import RegisterChip
from commands.processor import process_batch
from tests.conftest import sub
from tests.e2e.serving import ADMIN_PASSWORD, Serve, run_bounded, running

PASSWORD = "s3cret-password"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("identity")))


def register(served: Serve, username: str, system_role: str = "user") -> dict:
    """A new account (and its default project), signed in."""
    admin = served.client()
    r = admin.post("/api/auth/register", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    if system_role != "user":
        r = admin.put(f"/api/admin/users/{username}", json={"system_role": system_role})
        assert r.status_code == 200, r.text
    token = served.login(username, PASSWORD)
    me = served.client(token).get("/api/auth/me").json()
    return {"token": token, "project": me["default_project_id"], "client": served.client(token)}


def invite(owner: httpx.Client, project: str, username: str, role: str) -> None:
    r = owner.post(f"/api/projects/{project}/members", json={"username": username, "role": role})
    assert r.status_code == 200, r.text


# Every route in the OpenAPI document, with what it needs. A new route fails the walk
# until it is classified here.
PUBLIC, USER, VIEWER, EDITOR, OWNER, ADMIN = "public", "user", "viewer", "editor", "owner", "admin"
ACCESS = {
    ("GET", "/api/health"): PUBLIC,
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/refresh"): PUBLIC,
    ("POST", "/api/auth/register"): ADMIN,
    ("GET", "/api/auth/me"): USER,
    ("POST", "/api/auth/change-password"): USER,
    ("POST", "/api/auth/reset-password"): ADMIN,
    ("POST", "/api/admin/config/reload"): ADMIN,
    ("GET", "/api/admin/users"): ADMIN,
    ("GET", "/api/admin/users/{username}"): ADMIN,
    ("PUT", "/api/admin/users/{username}"): ADMIN,
    ("DELETE", "/api/admin/users/{username}"): ADMIN,
    ("POST", "/api/admin/users/{username}/project"): ADMIN,
    ("GET", "/api/admin/projects"): ADMIN,
    ("GET", "/api/admin/projects/{project_id}/members"): ADMIN,
    ("POST", "/api/admin/projects/{project_id}/members"): ADMIN,
    ("DELETE", "/api/admin/projects/{project_id}/members/{username}"): ADMIN,
    ("GET", "/api/projects"): USER,
    ("POST", "/api/projects"): USER,
    ("GET", "/api/projects/{project_id}"): VIEWER,
    ("PATCH", "/api/projects/{project_id}"): OWNER,
    ("GET", "/api/projects/{project_id}/members"): VIEWER,
    ("POST", "/api/projects/{project_id}/members"): OWNER,
    ("DELETE", "/api/projects/{project_id}/members/{username}"): OWNER,
    ("PATCH", "/api/projects/{project_id}/members/{username}"): OWNER,
    ("POST", "/api/projects/{project_id}/transfer"): OWNER,
    ("POST", "/api/api-keys"): VIEWER,
    ("GET", "/api/api-keys"): VIEWER,
    ("DELETE", "/api/api-keys/{key_id}"): VIEWER,
    ("GET", "/api/chips"): VIEWER,
    ("POST", "/api/chips"): EDITOR,
    ("GET", "/api/chips/{chip_id}"): VIEWER,
    ("GET", "/api/chips/{chip_id}/qubits"): VIEWER,
    ("GET", "/api/chips/{chip_id}/qubits/{qid}"): VIEWER,
    ("GET", "/api/chips/{chip_id}/couplings"): VIEWER,
    ("GET", "/api/chips/{chip_id}/couplings/{coupling_id}"): VIEWER,
    ("GET", "/api/executions"): VIEWER,
    ("POST", "/api/executions"): EDITOR,
    ("GET", "/api/executions/{execution_id}"): VIEWER,
    ("GET", "/api/executions/lock-status"): VIEWER,
    ("POST", "/api/calibrations/run"): EDITOR,
    ("POST", "/api/calibrations/seed-import"): EDITOR,
    ("GET", "/api/calibrations/seed-parameters/{chip_id}"): VIEWER,
    ("GET", "/api/calibrations/seed-compare/{chip_id}"): VIEWER,
    ("GET", "/api/calibrations/note"): VIEWER,
    ("POST", "/api/executions/{execution_id}/re-execute"): EDITOR,
    ("POST", "/api/task-results/{task_id}/re-execute"): EDITOR,
    ("GET", "/api/tasks"): VIEWER,
    ("GET", "/api/backends"): VIEWER,
    **{
        ("GET", f"/api/task-files/{p}"): VIEWER
        for p in ("settings", "backends", "tree", "content", "history", "backend-config", "tasks")
    },
    ("PUT", "/api/task-files/content"): EDITOR,
    ("GET", "/api/task-knowledge"): USER,
    ("GET", "/api/tasks/{task_name}/knowledge"): USER,
    ("GET", "/api/tasks/{task_name}/knowledge/markdown"): USER,
    ("GET", "/api/tasks/{task_id}/result"): VIEWER,
    ("POST", "/api/executions/{execution_id}/tasks"): EDITOR,
    ("POST", "/api/executions/{execution_id}/complete"): EDITOR,
    ("PUT", "/api/executions/{execution_id}/tasks/{task_id}/exclusion"): EDITOR,
    ("POST", "/api/executions/{execution_id}/fail"): EDITOR,
    ("POST", "/api/executions/{flow_run_id}/cancel"): EDITOR,
    ("POST", "/api/figures"): EDITOR,
    ("GET", "/api/figures/{name}"): VIEWER,
    ("GET", "/api/executions/figure"): VIEWER,
    ("POST", "/api/task-results/figures/download"): VIEWER,
    ("GET", "/api/provenance/entities/{entity_id}"): VIEWER,
    ("GET", "/api/provenance/history"): VIEWER,
    **{
        ("GET", f"/api/provenance/{p}"): VIEWER
        for p in (
            "lineage/{entity_id}",
            "impact/{entity_id}",
            "compare",
            "stats",
            "executions",
            "changes",
            "degradation-trends",
            "recommendations/{entity_id}",
            "policy/violations",
            "policy/impact/{entity_id}",
        )
    },
    **{
        ("GET", p): VIEWER
        for p in (
            "/api/metrics/config",
            "/api/metrics/chips/{chip_id}/metrics",
            "/api/metrics/chips/{chip_id}/qubits/{qid}/history",
            "/api/metrics/chips/{chip_id}/couplings/{coupling_id}/history",
            "/api/chips/{chip_id}/metrics/summary",
            "/api/chips/{chip_id}/metrics/heatmap/{metric}",
            "/api/chips/{chip_id}/dates",
            "/api/task-results/qubits/latest",
            "/api/task-results/qubits/history",
            "/api/task-results/qubits/{qid}/history",
            "/api/task-results/couplings/latest",
            "/api/task-results/couplings/history",
            "/api/task-results/couplings/{coupling_id}/history",
            "/api/task-results/timeseries",
            "/api/tags",
        )
    },
    ("GET", "/api/v1/digital-twin/health"): PUBLIC,
    **{
        ("GET", "/api/v1/digital-twin" + p): VIEWER
        for p in (
            "/backends",
            "/backends/{backend_id}",
            "/metrics",
            "/metrics/prometheus",
            "/jobs/{job_id}",
            "/jobs/{job_id}/result",
            "/controller/{backend_id}/state",
            "/telemetry/qubits",
            "/telemetry/events",
            "/telemetry/events/stream",
            "/telemetry/loop",
            "/telemetry/trace/export",
            "/telemetry/scenario/compatibility",
            "/config",
            "/config/content",
            "/qec_session/v1/{session_id}/status",
            "/qec_session/v1/{session_id}/trace",
            "/controller_api/v1/{backend_id}/cryo",
            "/telemetry/qec",
            "/telemetry/qec/history",
            "/telemetry/qec/summary",
        )
    },  # fmt: skip
    ("POST", "/api/v1/digital-twin/jobs"): EDITOR,
    ("POST", "/api/v1/digital-twin/jobs/{job_id}/metadata"): EDITOR,
    ("DELETE", "/api/v1/digital-twin/jobs/{job_id}"): EDITOR,
    ("POST", "/api/v1/digital-twin/controller/{backend_id}/commands"): EDITOR,
    ("PUT", "/api/v1/digital-twin/config/content"): EDITOR,
    # A QEC round is measured when it is first read: a write.
    ("POST", "/api/v1/digital-twin/qec_session/v1/"): EDITOR,
    (
        "GET",
        "/api/v1/digital-twin/qec_session/v1/{session_id}/round/{round_index}/syndrome",
    ): EDITOR,
    (
        "POST",
        "/api/v1/digital-twin/qec_session/v1/{session_id}/round/{round_index}/correction",
    ): EDITOR,
    ("GET", "/api/v1/digital-twin/qec_session/v1/{session_id}/rounds"): EDITOR,
    ("POST", "/api/v1/digital-twin/qec_session/v1/{session_id}/end"): EDITOR,
    # A readout is a measurement taken and recorded: a write.
    ("POST", "/api/v1/digital-twin/controller_api/v1/{backend_id}/pulse_schedule"): EDITOR,
    ("GET", "/api/v1/digital-twin/controller_api/v1/{backend_id}/readout"): EDITOR,
    ("POST", "/api/v1/digital-twin/controller_api/v1/{backend_id}/readout_config"): EDITOR,
    ("POST", "/api/v1/digital-twin/controller_api/v1/{backend_id}/cryo"): EDITOR,
    # Last: they delete the walk's project or end the callers' sessions.
    ("DELETE", "/api/projects/{project_id}"): OWNER,
    ("DELETE", "/api/admin/projects/{project_id}"): ADMIN,
    ("POST", "/api/auth/logout"): USER,
}
# The lowest role of each caller in the walked project ("other" owns another project).
RANK = {"viewer": 1, "editor": 2, "other": 0, "admin": 9}
NEEDS = {VIEWER: 1, EDITOR: 2, OWNER: 3}


def expected_refusal(level: str, caller: str | None) -> tuple[int, str] | None:
    """(status, code) the caller must get, or None when the route must let it through."""
    if level == PUBLIC:
        return None
    if caller is None:
        return 401, "unauthenticated"
    if level == USER:
        return None
    if level == ADMIN:
        return None if caller == "admin" else (403, "forbidden")
    if caller == "other":
        return 404, "project_not_found"  # not a member: the project is not there for them
    return None if RANK[caller] >= NEEDS[level] else (403, "forbidden")


def test_every_route_refuses_exactly_the_callers_it_should(served: Serve):
    owner = register(served, "walk-owner")
    project = owner["project"]
    callers = {
        "viewer": register(served, "walk-viewer"),
        "editor": register(served, "walk-editor"),
        "other": register(served, "walk-other"),
        "admin": register(served, "walk-admin", system_role="admin"),
    }
    invite(owner["client"], project, "walk-viewer", "viewer")
    invite(owner["client"], project, "walk-editor", "editor")

    doc = httpx.get(served.base + "/openapi.json").json()
    routes = [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops]
    assert sorted(routes) == sorted(ACCESS), "classify every route in ACCESS"
    spare = owner["client"].post("/api/projects", json={"name": "spare"}).json()["project_id"]
    failures = []
    for method, path in ACCESS:  # in the table's order: destructive routes last
        params = {"project_id": project, "username": "nobody-here", "key_id": "0" * 16}
        if path == "/api/admin/projects/{project_id}":  # the walked one is deleted by now
            params["project_id"] = spare
        url = path.format_map({k: params.get(k, "none") for k in ("project_id", "username", "key_id", "chip_id", "qid", "coupling_id", "execution_id", "flow_run_id", "task_id", "entity_id", "metric", "name", "backend_id", "job_id", "session_id", "round_index", "task_name")})  # fmt: skip
        for caller in (None, "viewer", "editor", "other", "admin"):
            headers = {"X-Project-Id": project}
            if caller is not None:
                headers["Authorization"] = f"Bearer {callers[caller]['token']}"
            body = {} if method in ("POST", "PUT", "PATCH") else None
            if path.endswith("/stream"):  # never ends: the status line is the answer
                with httpx.stream(method, served.base + url, headers=headers, timeout=10) as live:
                    content = live.read() if live.status_code != 200 else b""
                    r = httpx.Response(live.status_code, content=content, headers=live.headers)
            else:
                r = httpx.request(method, served.base + url, json=body, headers=headers, timeout=10)
            refusal = expected_refusal(ACCESS[(method, path)], caller)
            code = r.json().get("code") if r.content and r.headers.get("content-type", "").startswith("application/json") else None  # fmt: skip
            if refusal is None:
                ok = r.status_code not in (401, 403) and code != "project_not_found"
            else:
                ok = (r.status_code, code) == refusal
            if not ok:
                failures.append(f"{method} {path} as {caller}: {r.status_code} {r.text[:120]}")
    assert not failures, "\n".join(failures)


def test_two_teams_work_side_by_side_over_http_and_nats(served: Serve):
    alice, bob = register(served, "alice"), register(served, "bob")
    a, b = alice["client"], bob["client"]
    # The same chip id in two projects: two chips, each visible only to its team.
    assert a.post("/api/chips", json={"chip_id": "Q64", "size": 4}).status_code == 200
    assert b.post("/api/chips", json={"chip_id": "Q64", "size": 9}).status_code == 200
    assert a.get("/api/chips/Q64").json()["size"] == 4
    assert b.get("/api/chips/Q64").json()["size"] == 9
    # Bob asks for Alice's project by header: no data, and no hint that it exists.
    stolen = b.get("/api/chips", headers={"X-Project-Id": alice["project"]})
    assert stolen.status_code == 404 and stolen.json()["code"] == "project_not_found"
    assert b.get(f"/api/projects/{alice['project']}").status_code == 404
    assert alice["project"] not in {p["project_id"] for p in b.get("/api/projects").json()["projects"]}  # fmt: skip

    async def over_the_bus():
        nc = await nats.connect(served.nats_url)
        cmd = json.dumps({"execution_id": "run-1", "chip_id": "Q64"}).encode()
        subject = "qledger.cmd.calibration.start_execution"

        async def send(headers):
            return json.loads((await nc.request(subject, cmd, timeout=10, headers=headers)).data)

        anonymous = await send({})
        forged = await send({"Authorization": "Bearer not.a.token"})
        into_alices = await send(
            {"Authorization": f"Bearer {bob['token']}", "X-Project-Id": alice["project"]}
        )
        bobs_own = await send({"Authorization": f"Bearer {bob['token']}"})
        await nc.close()
        return anonymous, forged, into_alices, bobs_own

    anonymous, forged, into_alices, bobs_own = run_bounded(over_the_bus())
    assert (anonymous["status"], anonymous["code"]) == ("rejected", "unauthenticated")
    assert (forged["status"], forged["code"]) == ("rejected", "unauthenticated")
    assert (into_alices["status"], into_alices["code"]) == ("rejected", "project_not_found")
    assert bobs_own["status"] == "accepted"
    seen = b.get("/api/executions/run-1", params={"min_position": bobs_own["position"]})
    assert seen.status_code == 200
    assert a.get("/api/executions/run-1").status_code == 404  # not in Alice's project

    # The same execution and task ids in both projects give the same entity id: each
    # team's provenance queries (lineage traversal included) see only its own version.
    entity = "t1:0:same:t"
    for client, value in ((a, 11.0), (b, 22.0)):
        r = client.post("/api/executions", json={"chip_id": "Q64", "execution_id": "same"})
        assert r.status_code == 200, r.text
        r = client.post("/api/executions/same/tasks", json={
            "task_id": "t", "task_name": "CheckT1", "qid": "0",
            "output_parameters": {"t1": {"value": value}},
            "start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-01T00:01:00Z"})  # fmt: skip
        assert r.status_code == 200, r.text
        position = r.json()["position"]
    for client, value in ((a, 11.0), (b, 22.0)):
        lin = client.get(f"/api/provenance/lineage/{entity}", params={"min_position": position})
        assert lin.json()["origin"]["entity"]["value"] == value
        assert client.get("/api/provenance/stats").json()["total_entities"] == 1
        history = client.get("/api/provenance/history", params={"parameter_name": "t1", "qid": "0"})
        assert [v["value"] for v in history.json()["versions"]] == [value]


def test_an_fpga_bridge_works_with_an_api_key_alone(served: Serve):
    lab = register(served, "lab-lead")
    r = lab["client"].post(
        "/api/api-keys",
        json={"name": "fpga-bridge", "scopes": ["read", "calibration:write"]},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["api_key"]
    listed = lab["client"].get("/api/api-keys").json()
    assert [k["key_id"] for k in listed["api_keys"]] == [created["key_id"]]
    assert key not in json.dumps(listed), "a key is shown once, never listed"

    bridge = httpx.Client(base_url=served.base, headers={"X-API-Key": key}, timeout=10)
    assert bridge.post("/api/chips", json={"chip_id": "fpga", "size": 4}).status_code == 200
    assert bridge.get("/api/chips/fpga").status_code == 200
    assert bridge.post("/api/projects", json={"name": "x"}).status_code == 403  # people only

    async def over_the_bus(headers):
        nc = await nats.connect(served.nats_url)
        body = json.dumps({"execution_id": "bridge-run", "chip_id": "fpga"}).encode()
        msg = await nc.request(
            "qledger.cmd.calibration.start_execution", body, timeout=10, headers=headers
        )
        await nc.close()
        return json.loads(msg.data)

    assert run_bounded(over_the_bus({"X-API-Key": key}))["status"] == "accepted"
    # Revoked: refused on both paths at once.
    revoke = lab["client"].delete(f"/api/api-keys/{created['key_id']}")
    assert revoke.status_code == 204, revoke.text
    assert bridge.get("/api/chips/fpga").status_code == 401
    refused = run_bounded(over_the_bus({"X-API-Key": key}))
    assert (refused["status"], refused["code"]) == ("rejected", "unauthenticated")
    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert httpx.get(served.base + "/api/chips", headers={"X-API-Key": wrong_secret}).status_code == 401  # fmt: skip


def _token(served: Serve, username: str, **changes) -> str:
    """A token signed with the server's own key, with claims changed (for forgery tests)."""
    secret = jwt_secret(None, served.data_dir)
    return TokenService(secret).issue(username, 0, **changes)


def test_bad_tokens_and_passwords_are_refused_alike(served: Serve):
    register(served, "carol")
    login = served.base + "/api/auth/login"
    wrong = httpx.post(login, data={"username": "carol", "password": "not-her-password"})
    unknown = httpx.post(login, data={"username": "nobody-at-all", "password": "whatever-pw"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json(), "an unknown user looks like a wrong password"

    past = datetime.now(UTC) - timedelta(hours=2)
    expired = _token(served, "carol", now=past)
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    claims = expired.split(".")[1]
    unsigned = f"{header}.{claims}."
    other_key = TokenService(b"x" * 32).issue("carol", 0)
    refresh_as_access = _token(served, "carol", kind="refresh")
    for bad in (expired, unsigned, other_key, refresh_as_access, "garbage", "a.b.c"):
        r = httpx.get(served.base + "/api/auth/me", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated", bad
        assert r.headers["WWW-Authenticate"] == "Bearer"

    # Repeated failures are slowed down: 429 with Retry-After, even with the right password.
    for _ in range(5):
        httpx.post(login, data={"username": "carol", "password": "guess-guess"})
    throttled = httpx.post(login, data={"username": "carol", "password": PASSWORD})
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1


def test_logout_and_password_change_revoke_tokens_also_after_a_restart(tmp_path: Path):
    serve = Serve(tmp_path, None).start()
    admin = serve.client()
    assert admin.post("/api/auth/register", json={"username": "dave", "password": PASSWORD}).status_code == 200  # fmt: skip
    first = serve.login("dave", PASSWORD)
    second = serve.login("dave", PASSWORD)
    assert serve.client(first).post("/api/auth/logout").status_code == 200
    assert serve.client(second).get("/api/auth/me").status_code == 401  # everywhere
    third = serve.login("dave", PASSWORD)
    changed = serve.client(third).post(
        "/api/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "brand-new-password"},
    )
    assert changed.status_code == 200, changed.text
    assert serve.client(third).get("/api/auth/me").status_code == 401
    fourth = serve.login("dave", "brand-new-password")
    # A gateway refresh token dies with the account's other tokens.
    pair = httpx.post(
        serve.base + "/api/v1/auth/login",
        json={"email": "dave", "password": "brand-new-password"},
    ).json()
    assert pair["token_type"] == "Bearer"
    refreshed = httpx.post(serve.base + "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})  # fmt: skip
    assert refreshed.status_code == 200 and refreshed.json()["access_token"]
    # Disabled: no login, no old token.
    assert admin.put("/api/admin/users/dave", json={"disabled": True}).status_code == 200
    assert serve.client(fourth).get("/api/auth/me").status_code == 401
    assert httpx.post(serve.base + "/api/auth/login", data={"username": "dave", "password": "brand-new-password"}).status_code == 401  # fmt: skip
    assert admin.put("/api/admin/users/dave", json={"disabled": False}).status_code == 200

    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=30) == 0
    serve.start()
    for old in (first, second, third, fourth):
        assert serve.client(old).get("/api/auth/me").status_code == 401, "revocation is durable"
    stale = httpx.post(serve.base + "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})  # fmt: skip
    assert stale.status_code == 401
    fresh = serve.login("dave", "brand-new-password")
    assert serve.client(fresh).get("/api/auth/me").json()["username"] == "dave"
    # The first admin's password came from the settings; its token still works.
    assert serve.client(serve.login("admin", ADMIN_PASSWORD)).get("/api/auth/me").status_code == 200
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=30) == 0


def test_rules_that_protect_projects_and_admins(served: Serve):
    erin = register(served, "erin")
    e, project = erin["client"], erin["project"]
    register(served, "frank")
    invite(e, project, "frank", "viewer")
    frank = served.client(served.login("frank", PASSWORD))

    # A viewer writing: 403, and nothing changed.
    before = frank.get("/api/chips", headers={"X-Project-Id": project}).json()
    w = frank.post("/api/chips", json={"chip_id": "nope", "size": 4}, headers={"X-Project-Id": project})  # fmt: skip
    assert w.status_code == 403 and w.json()["code"] == "forbidden"
    assert frank.get("/api/chips", headers={"X-Project-Id": project}).json() == before

    # The owner can't leave their project without a successor.
    last = e.delete(f"/api/projects/{project}/members/erin")
    assert last.status_code == 409 and last.json()["code"] == "last_owner"
    demote = e.patch(f"/api/projects/{project}/members/erin", json={"role": "viewer"})
    assert demote.status_code == 409
    moved = e.post(f"/api/projects/{project}/transfer", json={"username": "frank"})
    assert moved.status_code == 200 and moved.json()["owner_username"] == "frank"
    assert e.delete(f"/api/projects/{project}/members/erin").status_code == 403  # editor now

    # The last admin can't delete or demote themself.
    admin = served.client()
    admins = [u for u in admin.get("/api/admin/users").json()["users"] if u["system_role"] == "admin"]  # fmt: skip
    for extra in admins:
        if extra["username"] != "admin":
            admin.put(f"/api/admin/users/{extra['username']}", json={"system_role": "user"})
    gone = admin.delete("/api/admin/users/admin")
    assert gone.status_code == 409 and gone.json()["code"] == "last_admin"
    assert admin.put("/api/admin/users/admin", json={"system_role": "user"}).status_code == 409
    assert admin.get("/api/auth/me").json()["system_role"] == "admin"

    # Malformed and oversized bodies: 4xx, nothing recorded.
    assert admin.post("/api/auth/register", json={"username": "x y", "password": PASSWORD}).status_code == 422  # fmt: skip
    assert admin.post("/api/auth/register", json={"username": "shorty", "password": "short"}).status_code == 422  # fmt: skip
    huge = admin.post("/api/projects", json={"name": "n", "description": "d" * 300_000})
    assert huge.status_code in (413, 422)
    assert admin.get("/api/admin/users/shorty").status_code == 404


def test_events_recorded_before_accounts_existed_belong_to_the_first_admin(tmp_path: Path):
    # A store written before identity existed: project `default`, no accounts at all.
    store = EventStore(store_location(None, tmp_path))
    [reply] = process_batch([sub(RegisterChip(chip_id="legacy", size=4))], store)
    assert reply.status == "accepted"
    store.close()

    serve = Serve(tmp_path, None).start()  # first start of the identity-aware version
    admin = serve.client()
    assert admin.get("/api/auth/me").json()["default_project_id"] == "default"
    assert admin.get("/api/chips/legacy").json()["qubit_count"] == 4
    project = admin.get("/api/projects/default").json()
    assert project["owner_username"] == "admin"
    outsider = register(serve, "newcomer")
    assert outsider["client"].get("/api/chips/legacy", headers={"X-Project-Id": "default"}).status_code == 404  # fmt: skip
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=30) == 0
