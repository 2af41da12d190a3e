"""Authorising a command against the write model itself: the caller's account, key and
project membership are loaded as aggregates in the command's unit of work, so a logout,
a revoked key or a removed member takes effect for the very next command."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from commands.models import Command
from commands.unit_of_work import UnitOfWork
from domain.access import (
    IDENTITY_PROJECT,
    Credential,
    Forbidden,
    Principal,
    authenticate,
    project_role,
    require_admin,
    require_user,
)
from domain.errors import Malformed
from domain.events import CommandContext
from domain.identity import ApiKey, User, api_key_key, user_key
from domain.projects import Project, project_key


@dataclass(frozen=True)
class Caller:
    principal: Principal
    role: str | None  # the caller's role in ctx.project_id; None outside projects


def authorize(
    command: Command,
    credential: Credential,
    requested_project: str | None,
    ctx: CommandContext,
    uow: UnitOfWork,
) -> tuple[Caller, CommandContext]:
    """Who is asking and in which project; the context the command's events will carry."""
    user = key = None
    if credential.kind == "api_key":
        key = uow.get(ApiKey, api_key_key(credential.key_id))
        if key is not None:
            user = uow.get(User, user_key(key.owner_username))
    elif credential.kind == "token":
        user = uow.get(User, user_key(credential.username))
    principal = authenticate(credential, user=user, key=key, now=ctx.received_at)

    cls = type(command)
    role = None
    if cls.project_scoped():
        project_id = requested_project or principal.default_project_id
        if project_id is None:
            raise Malformed(
                "no X-Project-Id given and the account has no default project",
                code="no_project",
            )
        project = uow.get(Project, project_key(project_id))
        role = project_role(principal, project_id, project, need=cls.ACCESS, scope=cls.SCOPE)
    else:
        project_id = IDENTITY_PROJECT
        if cls.ACCESS == "system":
            if not principal.is_system:
                raise Forbidden("only qledger itself sends this command")
        elif cls.ACCESS == "admin":
            require_admin(principal)
        else:
            require_user(principal)
    ctx = dataclasses.replace(ctx, project_id=project_id, actor=principal.actor)
    return Caller(principal=principal, role=role), ctx
