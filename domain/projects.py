"""Project: the unit of tenancy. Every chip, execution and parameter version belongs to
one; members hold a role in it. Its events are recorded in the project itself."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from domain.access import ROLES
from domain.aggregate import Aggregate
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import CommandContext, DomainEvent, register, stable_id


@register
@dataclass(frozen=True, kw_only=True)
class ProjectCreated(DomainEvent):
    TYPE = "identity.ProjectCreated"
    name: str
    description: str
    tags: tuple[str, ...]
    owner_username: str
    default_role: str


@register
@dataclass(frozen=True, kw_only=True)
class ProjectUpdated(DomainEvent):
    """The project's settings after the change (all of them)."""

    TYPE = "identity.ProjectUpdated"
    name: str
    description: str
    tags: tuple[str, ...]
    default_role: str


@register
@dataclass(frozen=True, kw_only=True)
class MemberAdded(DomainEvent):
    TYPE = "identity.MemberAdded"
    username: str
    role: str
    invited_by: str


@register
@dataclass(frozen=True, kw_only=True)
class MemberRoleChanged(DomainEvent):
    TYPE = "identity.MemberRoleChanged"
    username: str
    role: str


@register
@dataclass(frozen=True, kw_only=True)
class MemberRemoved(DomainEvent):
    TYPE = "identity.MemberRemoved"
    username: str


@register
@dataclass(frozen=True, kw_only=True)
class OwnershipTransferred(DomainEvent):
    TYPE = "identity.OwnershipTransferred"
    new_owner: str
    previous_owner: str
    previous_owner_role: str


@register
@dataclass(frozen=True, kw_only=True)
class ProjectDeleted(DomainEvent):
    TYPE = "identity.ProjectDeleted"


def project_key(project_id: str):
    return stable_id("project", project_id)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", code="invalid_role")


class Project(Aggregate):
    project_id: str
    name: str
    description: str
    tags: tuple[str, ...]
    owner_username: str
    default_role: str
    deleted = False

    def __init__(self, aggregate_id) -> None:
        super().__init__(aggregate_id)
        self.members: dict[str, str] = {}

    def role_of(self, username: str) -> str | None:
        return self.members.get(username)

    @classmethod
    def create(
        cls,
        ctx: CommandContext,
        *,
        project_id: str,
        name: str,
        description: str,
        tags: tuple[str, ...],
        owner: str,
        existing: Project | None,
    ) -> Project:
        if existing is not None:
            raise Conflict(f"project '{project_id}' already exists", code="project_exists")
        project = cls(project_key(project_id))
        here = dataclasses.replace(ctx, project_id=project_id)
        project._trigger(
            ProjectCreated,
            here,
            name=name,
            description=description,
            tags=tags,
            owner_username=owner,
            default_role="viewer",
        )
        project._trigger(MemberAdded, here, username=owner, role="owner", invited_by=ctx.actor)
        return project

    def _ctx(self, ctx: CommandContext) -> CommandContext:
        return dataclasses.replace(ctx, project_id=self.project_id)

    def update(
        self,
        ctx: CommandContext,
        *,
        name: str,
        description: str,
        tags: tuple[str, ...],
        default_role: str,
    ) -> None:
        _check_role(default_role)
        self._trigger(
            ProjectUpdated,
            self._ctx(ctx),
            name=name,
            description=description,
            tags=tags,
            default_role=default_role,
        )

    def add_member(self, ctx: CommandContext, *, username: str, role: str) -> None:
        _check_role(role)
        if username in self.members:
            raise Conflict(
                f"'{username}' is already a member of '{self.project_id}'", code="already_member"
            )
        self._trigger(
            MemberAdded, self._ctx(ctx), username=username, role=role, invited_by=ctx.actor
        )

    def _require_member(self, username: str) -> str:
        role = self.members.get(username)
        if role is None:
            raise NotFound(
                f"'{username}' is not a member of '{self.project_id}'", code="member_not_found"
            )
        return role

    def _check_keeps_owner(self, username: str, new_role: str | None) -> None:
        if username == self.owner_username and new_role != "owner":
            raise Conflict(
                f"'{username}' owns '{self.project_id}'; transfer ownership first",
                code="last_owner",
            )

    def change_role(self, ctx: CommandContext, *, username: str, role: str) -> None:
        _check_role(role)
        self._require_member(username)
        self._check_keeps_owner(username, role)
        self._trigger(MemberRoleChanged, self._ctx(ctx), username=username, role=role)

    def remove_member(self, ctx: CommandContext, *, username: str) -> None:
        self._require_member(username)
        self._check_keeps_owner(username, None)
        self._trigger(MemberRemoved, self._ctx(ctx), username=username)

    def transfer(self, ctx: CommandContext, *, to: str, previous_owner_role: str) -> None:
        _check_role(previous_owner_role)
        if to == self.owner_username:
            raise Conflict(f"'{to}' already owns '{self.project_id}'", code="already_owner")
        self._trigger(
            OwnershipTransferred,
            self._ctx(ctx),
            new_owner=to,
            previous_owner=self.owner_username,
            previous_owner_role=previous_owner_role,
        )

    def delete(self, ctx: CommandContext) -> None:
        self._trigger(ProjectDeleted, self._ctx(ctx))

    def _on_ProjectCreated(self, e: ProjectCreated) -> None:
        self.project_id = e.project_id
        self.name = e.name
        self.description = e.description
        self.tags = e.tags
        self.owner_username = e.owner_username
        self.default_role = e.default_role

    def _on_ProjectUpdated(self, e: ProjectUpdated) -> None:
        self.name = e.name
        self.description = e.description
        self.tags = e.tags
        self.default_role = e.default_role

    def _on_MemberAdded(self, e: MemberAdded) -> None:
        self.members[e.username] = e.role

    def _on_MemberRoleChanged(self, e: MemberRoleChanged) -> None:
        self.members[e.username] = e.role

    def _on_MemberRemoved(self, e: MemberRemoved) -> None:
        self.members.pop(e.username, None)

    def _on_OwnershipTransferred(self, e: OwnershipTransferred) -> None:
        self.members[e.new_owner] = "owner"
        self.members[e.previous_owner] = e.previous_owner_role
        self.owner_username = e.new_owner

    def _on_ProjectDeleted(self, e: ProjectDeleted) -> None:
        self.deleted = True


def require_project(project: Project | None, project_id: str) -> Project:
    if project is None or project.deleted:
        raise NotFound(f"project '{project_id}' not found", code="project_not_found")
    return project
