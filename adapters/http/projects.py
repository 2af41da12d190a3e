"""The `projects` group of the calibration reference, and qledger's API keys.

Members read a project; owners (and system admins) change it. A project the caller is
not a member of answers 404, as one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from adapters.http.deps import IdempotencyKey, ReadModels, generated_id, send_command
from adapters.http.errors import not_found
from adapters.http.security import CurrentUser, MemberCtx, PathOwnerCtx, PathReaderCtx
from adapters.security.apikeys import new_api_key, secret_sha256
from commands.identity import (
    AddMember,
    ChangeMemberRole,
    CreateApiKey,
    CreateProject,
    DeleteProject,
    RemoveMember,
    RevokeApiKey,
    TransferOwnership,
    UpdateProject,
)
from projections import identity as q

router = APIRouter(prefix="/api/projects", tags=["projects"])
keys = APIRouter(prefix="/api/api-keys", tags=["api-keys"])


class ProjectResponse(BaseModel):
    project_id: str
    owner_username: str
    name: str
    description: str
    tags: list[str]
    default_role: str
    created_at: str | None
    updated_at: str | None


class ProjectList(BaseModel):
    projects: list[ProjectResponse]
    total: int


class MemberResponse(BaseModel):
    project_id: str
    username: str
    role: str
    status: str
    invited_by: str | None
    last_accessed_at: str | None


class MemberList(BaseModel):
    members: list[MemberResponse]
    total: int


class CreateProjectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)


class UpdateProjectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    default_role: str | None = None


class InviteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    role: str = "viewer"


class RoleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    role: str = "editor"  # what the previous owner becomes


async def _project(db, project_id: str) -> dict:
    found = await run_in_threadpool(q.get_project, db, project_id)
    if found is None:
        raise not_found(f"project '{project_id}'")
    return found


async def _member(db, project_id: str, username: str) -> dict:
    found = await run_in_threadpool(q.get_member, db, project_id, username)
    if found is None:
        raise not_found(f"member '{username}'")
    return found


@router.get("", response_model=ProjectList)
def list_projects(user: CurrentUser, db: ReadModels):
    return q.list_projects_of(db, user.username)


@router.post("", response_model=ProjectResponse)
async def create_project(
    body: CreateProjectRequest,
    request: Request,
    user: CurrentUser,
    db: ReadModels,
    idempotency_key: IdempotencyKey = None,
):
    project_id = generated_id(f"user:{user.username}", idempotency_key)[:16]
    command = CreateProject(project_id=project_id, **body.model_dump())
    await send_command(request, command, None, idempotency_key, wait=True)
    return await _project(db, project_id)


@router.get("/{project_id}", response_model=ProjectResponse)
async def get_project(project_id: str, ctx: PathReaderCtx, db: ReadModels):
    return await _project(db, ctx.project_id)


@router.patch("/{project_id}", response_model=ProjectResponse)
async def update_project(
    project_id: str, body: UpdateProjectRequest, request: Request, ctx: PathOwnerCtx, db: ReadModels
):
    command = UpdateProject(**body.model_dump())
    await send_command(request, command, ctx.project_id, None, wait=True)
    return await _project(db, ctx.project_id)


@router.delete("/{project_id}", status_code=204)
async def delete_project(project_id: str, request: Request, ctx: PathOwnerCtx) -> Response:
    await send_command(request, DeleteProject(), ctx.project_id, None, wait=True)
    return Response(status_code=204)


@router.get("/{project_id}/members", response_model=MemberList)
def list_members(project_id: str, ctx: PathReaderCtx, db: ReadModels):
    return q.list_members(db, ctx.project_id)


@router.post("/{project_id}/members", response_model=MemberResponse)
async def invite_member(
    project_id: str, body: InviteRequest, request: Request, ctx: PathOwnerCtx, db: ReadModels
):
    command = AddMember(username=body.username, role=body.role)
    await send_command(request, command, ctx.project_id, None, wait=True)
    return await _member(db, ctx.project_id, command.username)


@router.delete("/{project_id}/members/{username}", status_code=204)
async def remove_member(
    project_id: str, username: str, request: Request, ctx: PathOwnerCtx
) -> Response:
    await send_command(request, RemoveMember(username=username), ctx.project_id, None, wait=True)
    return Response(status_code=204)


@router.patch("/{project_id}/members/{username}", response_model=MemberResponse)
async def update_member_role(
    project_id: str,
    username: str,
    body: RoleRequest,
    request: Request,
    ctx: PathOwnerCtx,
    db: ReadModels,
):
    command = ChangeMemberRole(username=username, role=body.role)
    await send_command(request, command, ctx.project_id, None, wait=True)
    return await _member(db, ctx.project_id, command.username)


@router.post("/{project_id}/transfer", response_model=ProjectResponse)
async def transfer_ownership(
    project_id: str, body: TransferRequest, request: Request, ctx: PathOwnerCtx, db: ReadModels
):
    command = TransferOwnership(username=body.username, role=body.role)
    await send_command(request, command, ctx.project_id, None, wait=True)
    return await _project(db, ctx.project_id)


# --- API keys (beyond the reference): machine credentials of one project ----------------


class CreateKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    scopes: list[str] = Field(default_factory=lambda: ["read"], min_length=1, max_length=10)
    expires_at: datetime | None = None


class KeyResponse(BaseModel):
    key_id: str
    name: str
    owner_username: str
    scopes: list[str]
    created_at: str | None
    expires_at: str | None
    revoked: bool


class CreatedKey(KeyResponse):
    project_id: str
    api_key: str = Field(description="send as X-API-Key; shown only in this response")


class KeyList(BaseModel):
    api_keys: list[KeyResponse]
    total: int


@keys.post("", response_model=CreatedKey, status_code=201)
async def create_api_key(body: CreateKeyRequest, request: Request, ctx: MemberCtx, db: ReadModels):
    """A key for the project in X-Project-Id, acting for you with at most your own role.
    The full key is in this response only; qledger keeps just a hash of its secret."""
    key_id, secret, full_key = new_api_key()
    command = CreateApiKey(
        key_id=key_id,
        name=body.name,
        scopes=body.scopes,
        secret_sha256=secret_sha256(secret),
        expires_at=body.expires_at,
    )
    await send_command(request, command, ctx.project_id, None, wait=True)
    listed = await run_in_threadpool(q.list_api_keys, db, ctx.project_id, owner=None)
    row = next(k for k in listed["api_keys"] if k["key_id"] == key_id)
    return {**row, "project_id": ctx.project_id, "api_key": full_key}


@keys.get("", response_model=KeyList)
def list_api_keys(ctx: MemberCtx, db: ReadModels):
    """Owners see every key of the project; other members their own."""
    owner = None if ctx.role == "owner" else ctx.principal.username
    return q.list_api_keys(db, ctx.project_id, owner=owner)


@keys.delete("/{key_id}", status_code=204)
async def revoke_api_key(key_id: str, request: Request, ctx: MemberCtx) -> Response:
    if len(key_id) != 16:
        raise not_found(f"API key '{key_id}'")
    await send_command(request, RevokeApiKey(key_id=key_id), ctx.project_id, None, wait=True)
    return Response(status_code=204)
