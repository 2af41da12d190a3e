"""The `admin` group of the calibration reference: system admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from adapters.http.deps import Offset, ReadModels, generated_id, send_command
from adapters.http.errors import not_found
from adapters.http.security import AdminUser, auth_of
from commands.identity import (
    AddMember,
    CreateProjectForUser,
    DeleteProject,
    DeleteUser,
    RemoveMember,
    UpdateUser,
)
from projections import identity as q

router = APIRouter(prefix="/api/admin", tags=["admin"])

Skip = Offset
Limit = Annotated[int, Query(ge=1, le=1000)]


class UserSummary(BaseModel):
    username: str
    full_name: str
    disabled: bool
    system_role: str
    default_project_id: str | None


class UserDetail(UserSummary):
    created_at: str | None
    updated_at: str | None


class UserList(BaseModel):
    users: list[UserSummary]
    total: int


class ProjectSummary(BaseModel):
    project_id: str
    name: str
    owner_username: str
    description: str
    member_count: int
    created_at: str | None


class ProjectList(BaseModel):
    projects: list[ProjectSummary]
    total: int


class Member(BaseModel):
    username: str
    full_name: str
    role: str
    status: str


class MemberList(BaseModel):
    members: list[Member]
    total: int


class UpdateUserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full_name: str | None = None
    disabled: bool | None = None
    system_role: str | None = None


class AddMemberRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str


@router.post("/config/reload")
async def reload_config(request: Request, _: AdminUser) -> dict[str, list[str]]:
    """Drops cached configuration. qledger caches only the identity directory so far
    (it reloads itself on every identity event; this forces it)."""
    auth_of(request).forget()
    return {"cleared": ["identity_directory"]}


@router.get("/users", response_model=UserList)
def list_users(_: AdminUser, db: ReadModels, skip: Skip = 0, limit: Limit = 100):
    return q.list_users(db, skip=skip, limit=limit)


async def _user_or_404(db, username: str) -> dict:
    user = await run_in_threadpool(q.get_user, db, username.strip().lower())
    if user is None:
        raise not_found(f"user '{username}'")
    return user


@router.get("/users/{username}", response_model=UserDetail)
async def get_user(username: str, _: AdminUser, db: ReadModels):
    return await _user_or_404(db, username)


@router.put("/users/{username}", response_model=UserDetail)
async def update_user(
    username: str, body: UpdateUserRequest, request: Request, _: AdminUser, db: ReadModels
):
    command = UpdateUser(username=username, **body.model_dump())
    await send_command(request, command, None, None, wait=True)
    return await _user_or_404(db, command.username)


@router.delete("/users/{username}")
async def delete_user(username: str, request: Request, _: AdminUser) -> dict[str, str]:
    command = DeleteUser(username=username)
    await send_command(request, command, None, None, wait=True)
    return {"message": f"User {command.username} deleted"}


@router.post("/users/{username}/project", response_model=UserDetail)
async def create_project_for_user(username: str, request: Request, _: AdminUser, db: ReadModels):
    key = request.headers.get("Idempotency-Key")
    command = CreateProjectForUser(username=username, project_id=generated_id("_admin", key)[:16])
    await send_command(request, command, None, key, wait=True)
    return await _user_or_404(db, command.username)


@router.get("/projects", response_model=ProjectList)
def list_projects(_: AdminUser, db: ReadModels, skip: Skip = 0, limit: Limit = 100):
    return q.list_all_projects(db, skip=skip, limit=limit)


async def _project_or_404(db, project_id: str) -> dict:
    project = await run_in_threadpool(q.get_project, db, project_id)
    if project is None:
        raise not_found(f"project '{project_id}'")
    return project


@router.delete("/projects/{project_id}")
async def delete_project(project_id: str, request: Request, _: AdminUser) -> dict[str, str]:
    await send_command(request, DeleteProject(), project_id, None, wait=True)
    return {"message": f"Project {project_id} deleted"}


@router.get("/projects/{project_id}/members", response_model=MemberList)
async def list_members(project_id: str, _: AdminUser, db: ReadModels):
    await _project_or_404(db, project_id)
    return await run_in_threadpool(q.list_members, db, project_id)


@router.post("/projects/{project_id}/members", response_model=Member)
async def add_member(
    project_id: str, body: AddMemberRequest, request: Request, _: AdminUser, db: ReadModels
):
    command = AddMember(username=body.username, role="viewer")
    await send_command(request, command, project_id, None, wait=True)
    member = await run_in_threadpool(q.get_member, db, project_id, command.username)
    if member is None:
        raise not_found(f"member '{command.username}'")
    return member


@router.delete("/projects/{project_id}/members/{username}")
async def remove_member(
    project_id: str, username: str, request: Request, _: AdminUser
) -> dict[str, str]:
    command = RemoveMember(username=username)
    await send_command(request, command, project_id, None, wait=True)
    return {"message": f"{command.username} removed from {project_id}"}
