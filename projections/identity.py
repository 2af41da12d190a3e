"""Users, projects with their members, and API keys; plus the in-memory directory that
authentication reads (domain.access: UserView, ApiKeyView, ProjectView).

Identity events are rare, so they are applied row by row, in store order. User events
after registration carry no username, so a user row also keeps its aggregate id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from projections.base import Envelope, Projector, Table, ViewReader, ViewTx, iso, to_json

USER = Table(
    "app_user",
    (
        ("user_id", "VARCHAR"),  # the aggregate id: how later user events name the user
        ("username", "VARCHAR"),
        ("full_name", "VARCHAR"),
        ("password_hash", "VARCHAR"),
        ("system_role", "VARCHAR"),
        ("disabled", "BOOLEAN"),
        ("deleted", "BOOLEAN"),
        ("token_epoch", "INTEGER"),
        ("default_project_id", "VARCHAR"),
        ("created_at", "TIMESTAMPTZ"),
        ("updated_at", "TIMESTAMPTZ"),
    ),
    (("user_id",), ("username",)),
)
PROJECT = Table(
    "project",
    (
        ("project_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("description", "VARCHAR"),
        ("tags", "VARCHAR"),  # JSON list
        ("owner_username", "VARCHAR"),
        ("default_role", "VARCHAR"),
        ("deleted", "BOOLEAN"),
        ("created_at", "TIMESTAMPTZ"),
        ("updated_at", "TIMESTAMPTZ"),
    ),
    (("project_id",),),
)
MEMBER = Table(
    "project_member",
    (
        ("project_id", "VARCHAR"),
        ("username", "VARCHAR"),
        ("role", "VARCHAR"),
        ("invited_by", "VARCHAR"),
        ("joined_at", "TIMESTAMPTZ"),
    ),
    (("project_id", "username"), ("username",)),
)
API_KEY = Table(
    "api_key",
    (
        ("key_id", "VARCHAR"),
        ("project_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("owner_username", "VARCHAR"),
        ("scopes", "VARCHAR"),  # JSON list
        ("secret_sha256", "VARCHAR"),
        ("expires_at", "TIMESTAMPTZ"),
        ("revoked", "BOOLEAN"),
        ("created_at", "TIMESTAMPTZ"),
        ("revoked_at", "TIMESTAMPTZ"),
    ),
    (("key_id",), ("project_id",)),
)

_TS = "CAST(? AS TIMESTAMPTZ)"
_USER_EVENTS = ("UserRegistered", "UserUpdated", "PasswordChanged", "TokensRevoked",
                "DefaultProjectAssigned", "UserDeleted", "AdminGranted", "AdminRevoked")  # fmt: skip
_PROJECT_EVENTS = ("ProjectCreated", "ProjectUpdated", "MemberAdded", "MemberRoleChanged",
                   "MemberRemoved", "OwnershipTransferred", "ProjectDeleted")  # fmt: skip
_KEY_EVENTS = ("ApiKeyCreated", "ApiKeyRevoked")


class IdentityProjector(Projector):
    name = "identity"
    handles = frozenset(
        f"identity.{kind}" for kind in (*_USER_EVENTS, *_PROJECT_EVENTS, *_KEY_EVENTS)
    )
    tables = (USER, PROJECT, MEMBER, API_KEY)

    def apply(self, batch: Sequence[Envelope], tx: ViewTx) -> None:
        for env in batch:
            kind = env["type"].removeprefix("identity.")
            if kind in _USER_EVENTS:
                _apply_user(kind, env, env["payload"], tx)
            elif kind in _PROJECT_EVENTS:
                _apply_project(kind, env, env["payload"], tx)
            else:
                _apply_key(kind, env, env["payload"], tx)


def _apply_user(kind: str, env: Envelope, p: dict[str, Any], tx: ViewTx) -> None:
    """token_epoch moves exactly as the User aggregate's does."""

    def update(assignments: str, *params: Any) -> None:
        tx.execute(
            f"UPDATE app_user SET {assignments}, updated_at = {_TS} WHERE user_id = ?",
            [*params, env["occurred_at"], env["aggregate_id"]],
        )

    match kind:
        case "UserRegistered":
            row = {"user_id": env["aggregate_id"], "disabled": False, "deleted": False,
                   "token_epoch": 0, "created_at": env["occurred_at"],
                   "updated_at": env["occurred_at"], **p}  # fmt: skip
            tx.insert(USER, [row])
        case "UserUpdated":  # disabling (false -> true) voids every token
            update(
                "token_epoch = token_epoch + CASE WHEN ? AND NOT disabled THEN 1 ELSE 0 END,"
                " full_name = ?, disabled = ?, system_role = ?",
                *(p["disabled"], p["full_name"], p["disabled"], p["system_role"]),
            )
        case "PasswordChanged":
            update("password_hash = ?, token_epoch = token_epoch + 1", p["password_hash"])
        case "TokensRevoked":
            update("token_epoch = token_epoch + 1")
        case "DefaultProjectAssigned":
            update("default_project_id = ?", p["default_project_id"])
        case "UserDeleted":
            update("deleted = true, token_epoch = token_epoch + 1")
        case _:
            # AdminGranted/AdminRevoked: the roster guards "never remove the last admin"
            # on the command side; a user's system_role is what the user's events say.
            pass


def _set_member(tx: ViewTx, env: Envelope, username: str, role: str) -> None:
    """The member's role becomes `role`; a non-member joins with it."""
    project_id = env["project_id"]
    tx.execute(
        "UPDATE project_member SET role = ? WHERE project_id = ? AND username = ?",
        [role, project_id, username],
    )
    tx.execute(
        f"INSERT INTO project_member SELECT ?, ?, ?, ?, {_TS} WHERE NOT EXISTS"
        " (SELECT 1 FROM project_member WHERE project_id = ? AND username = ?)",
        [project_id, username, role, env["actor"], env["occurred_at"], project_id, username],
    )


def _apply_project(kind: str, env: Envelope, p: dict[str, Any], tx: ViewTx) -> None:
    """Project and member events carry the project's own id as their project_id."""
    project_id, at = env["project_id"], env["occurred_at"]

    def update(assignments: str, *params: Any) -> None:
        tx.execute(
            f"UPDATE project SET {assignments}, updated_at = {_TS} WHERE project_id = ?",
            [*params, at, project_id],
        )

    match kind:
        case "ProjectCreated":
            row = {**p, "project_id": project_id, "tags": to_json(p["tags"]), "deleted": False,
                   "created_at": at, "updated_at": at}  # fmt: skip
            tx.insert(PROJECT, [row])
        case "ProjectUpdated":
            update(
                "name = ?, description = ?, tags = ?, default_role = ?",
                *(p["name"], p["description"], to_json(p["tags"]), p["default_role"]),
            )
        case "ProjectDeleted":  # rows are kept; queries hide the project
            update("deleted = true")
        case "MemberAdded":
            tx.insert(MEMBER, [{**p, "project_id": project_id, "joined_at": at}])
        case "MemberRoleChanged":
            _set_member(tx, env, p["username"], p["role"])
        case "MemberRemoved":
            tx.execute(
                "DELETE FROM project_member WHERE project_id = ? AND username = ?",
                [project_id, p["username"]],
            )
        case "OwnershipTransferred":
            _set_member(tx, env, p["new_owner"], "owner")
            _set_member(tx, env, p["previous_owner"], p["previous_owner_role"])
            update("owner_username = ?", p["new_owner"])


def _apply_key(kind: str, env: Envelope, p: dict[str, Any], tx: ViewTx) -> None:
    """A key's events carry the key's project as their project_id."""
    if kind == "ApiKeyCreated":
        row = {**p, "project_id": env["project_id"], "scopes": to_json(p["scopes"]),
               "revoked": False, "created_at": env["occurred_at"]}  # fmt: skip
        tx.insert(API_KEY, [row])
    else:
        tx.execute(
            f"UPDATE api_key SET revoked = true, revoked_at = {_TS} WHERE key_id = ?",
            [env["occurred_at"], p["key_id"]],
        )


# -- the directory authentication reads --------------------------------------------
@dataclass(frozen=True)
class UserRow:
    username: str
    full_name: str
    password_hash: str
    system_role: str
    disabled: bool
    deleted: bool
    token_epoch: int
    default_project_id: str | None
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class ApiKeyRow:
    key_id: str
    project_id: str
    name: str
    owner_username: str
    scopes: tuple[str, ...]
    secret_sha256: str
    revoked: bool
    expires_at: datetime | None
    created_at: datetime | None


@dataclass(frozen=True)
class ProjectRow:
    project_id: str
    name: str
    owner_username: str
    deleted: bool
    members: Mapping[str, str]  # username -> role

    def role_of(self, username: str) -> str | None:
        return self.members.get(username)


@dataclass(frozen=True)
class Directory:
    users: Mapping[str, UserRow]
    projects: Mapping[str, ProjectRow]
    keys: Mapping[str, ApiKeyRow]


def load_directory(db: ViewReader) -> Directory:
    """Every user, project (with its roster) and API key, deleted and revoked ones too:
    authenticate() and project_role() refuse those themselves."""
    users = {
        r["username"]: UserRow(**{k: v for k, v in r.items() if k != "user_id"})
        for r in db.rows("SELECT * FROM app_user")
    }
    members: dict[str, dict[str, str]] = {}
    for r in db.rows("SELECT project_id, username, role FROM project_member"):
        members.setdefault(r["project_id"], {})[r["username"]] = r["role"]
    projects = {
        r["project_id"]: ProjectRow(**r, members=members.get(r["project_id"], {}))
        for r in db.rows("SELECT project_id, name, owner_username, deleted FROM project")
    }
    keys = {
        r["key_id"]: ApiKeyRow(**{**r, "scopes": tuple(orjson.loads(r["scopes"]))})
        for r in db.rows(
            "SELECT key_id, project_id, name, owner_username, scopes, secret_sha256, revoked,"
            " expires_at, created_at FROM api_key"
        )
    }
    return Directory(users=users, projects=projects, keys=keys)


# -- queries -----------------------------------------------------------------------
_USER_COLUMNS = "username, full_name, disabled, system_role, default_project_id"


def list_users(db: ViewReader, *, skip: int, limit: int) -> dict[str, Any]:
    total = db.rows("SELECT count(*) AS n FROM app_user WHERE NOT deleted")[0]["n"]
    users = db.rows(
        f"SELECT {_USER_COLUMNS} FROM app_user WHERE NOT deleted"
        " ORDER BY username LIMIT ? OFFSET ?",
        [limit, skip],
    )
    return {"users": users, "total": total}


def get_user(db: ViewReader, username: str) -> dict[str, Any] | None:
    rows = db.rows(
        f"SELECT {_USER_COLUMNS}, created_at, updated_at FROM app_user"
        " WHERE username = ? AND NOT deleted",
        [username],
    )
    if not rows:
        return None
    r = rows[0]
    return {**r, "created_at": iso(r["created_at"]), "updated_at": iso(r["updated_at"])}


def _project_dict(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "project_id": r["project_id"],
        "owner_username": r["owner_username"],
        "name": r["name"],
        "description": r["description"],
        "tags": orjson.loads(r["tags"]),
        "default_role": r["default_role"],
        "created_at": iso(r["created_at"]),
        "updated_at": iso(r["updated_at"]),
    }


# Members shown: those whose account is not deleted.
_LIVE_MEMBER = (
    "project_member m LEFT JOIN app_user u ON u.username = m.username"
    " WHERE NOT coalesce(u.deleted, false)"
)


def list_all_projects(db: ViewReader, *, skip: int, limit: int) -> dict[str, Any]:
    total = db.rows("SELECT count(*) AS n FROM project WHERE NOT deleted")[0]["n"]
    rows = db.rows(
        "SELECT p.project_id, p.name, p.owner_username, p.description,"
        " coalesce(c.n, 0) AS member_count, p.created_at FROM project p"
        f" LEFT JOIN (SELECT m.project_id, count(*) AS n FROM {_LIVE_MEMBER}"
        " GROUP BY m.project_id) c ON c.project_id = p.project_id"
        " WHERE NOT p.deleted ORDER BY p.created_at, p.project_id LIMIT ? OFFSET ?",
        [limit, skip],
    )
    return {"projects": [{**r, "created_at": iso(r["created_at"])} for r in rows], "total": total}


def list_projects_of(db: ViewReader, username: str) -> dict[str, Any]:
    rows = db.rows(
        "SELECT p.* FROM project p JOIN project_member m ON m.project_id = p.project_id"
        " WHERE m.username = ? AND NOT p.deleted ORDER BY p.created_at, p.project_id",
        [username],
    )
    return {"projects": [_project_dict(r) for r in rows], "total": len(rows)}


def get_project(db: ViewReader, project_id: str) -> dict[str, Any] | None:
    rows = db.rows("SELECT * FROM project WHERE project_id = ? AND NOT deleted", [project_id])
    return _project_dict(rows[0]) if rows else None


_MEMBER_SELECT = (
    "SELECT m.project_id, m.username, coalesce(u.full_name, '') AS full_name, m.role,"
    " 'active' AS status, m.invited_by, NULL AS last_accessed_at"
    f" FROM {_LIVE_MEMBER} AND m.project_id = ?"
)


def list_members(db: ViewReader, project_id: str) -> dict[str, Any]:
    members = db.rows(f"{_MEMBER_SELECT} ORDER BY m.joined_at, m.username", [project_id])
    return {"members": members, "total": len(members)}


def get_member(db: ViewReader, project_id: str, username: str) -> dict[str, Any] | None:
    rows = db.rows(f"{_MEMBER_SELECT} AND m.username = ?", [project_id, username])
    return rows[0] if rows else None


def list_api_keys(db: ViewReader, project_id: str, *, owner: str | None) -> dict[str, Any]:
    """The project's keys (or one owner's), revoked ones too; never their secret's hash."""
    where, params = "project_id = ?", [project_id]
    if owner is not None:
        where += " AND owner_username = ?"
        params.append(owner)
    rows = db.rows(
        "SELECT key_id, name, owner_username, scopes, created_at, expires_at, revoked"
        f" FROM api_key WHERE {where} ORDER BY created_at, key_id",
        params,
    )
    keys = [
        {
            **r,
            "scopes": orjson.loads(r["scopes"]),
            "created_at": iso(r["created_at"]),
            "expires_at": iso(r["expires_at"]),
        }  # fmt: skip
        for r in rows
    ]
    return {"api_keys": keys, "total": len(keys)}
