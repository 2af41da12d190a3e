"""Handlers of the identity commands. As everywhere, every rule is checked before the
first event is triggered, so a rejection leaves the batch's aggregates untouched."""

from __future__ import annotations

from commands.authorization import Caller
from commands.identity import (
    AddMember,
    BootstrapSystem,
    ChangeMemberRole,
    ChangePassword,
    CreateApiKey,
    CreateProject,
    CreateProjectForUser,
    DeleteProject,
    DeleteUser,
    Logout,
    RegisterUser,
    RemoveMember,
    ResetPassword,
    RevokeApiKey,
    TransferOwnership,
    UpdateProject,
    UpdateUser,
)
from commands.ports import PasswordHasherPort
from commands.unit_of_work import UnitOfWork
from domain.access import DEFAULT_PROJECT, ROLE_RANK, SCOPES, Forbidden
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import CommandContext
from domain.identity import (
    ROSTER_KEY,
    AdminRoster,
    ApiKey,
    User,
    api_key_key,
    default_project_of,
    require_user_exists,
    user_key,
)
from domain.projects import Project, project_key, require_project


def _passwords(uow: UnitOfWork) -> PasswordHasherPort:
    if uow.passwords is None:
        raise RuntimeError("this command side was started without a password hasher")
    return uow.passwords


def _roster(uow: UnitOfWork) -> AdminRoster:
    return uow.get(AdminRoster, ROSTER_KEY) or AdminRoster()


def _user(uow: UnitOfWork, username: str) -> User:
    return require_user_exists(uow.get(User, user_key(username)), username)


def _project(uow: UnitOfWork, project_id: str) -> Project:
    return require_project(uow.get(Project, project_key(project_id)), project_id)


def _new_account(
    uow: UnitOfWork,
    ctx: CommandContext,
    *,
    username: str,
    password: str,
    full_name: str,
    system_role: str,
    project_id: str,
) -> list:
    existing_user = uow.get(User, user_key(username))
    existing_project = uow.get(Project, project_key(project_id))
    if existing_user is None and existing_project is not None:
        # Checked before the user's event is triggered. (Default project ids can't be
        # chosen by CreateProject: they contain "-", which its pattern refuses.)
        raise Conflict(f"project '{project_id}' already exists", code="project_exists")
    user = User.register(
        ctx,
        username=username,
        full_name=full_name,
        password_hash=_passwords(uow).hash(password),
        system_role=system_role,
        default_project_id=project_id,
        existing=existing_user,
    )
    project = Project.create(
        ctx,
        project_id=project_id,
        name=username if project_id != DEFAULT_PROJECT else DEFAULT_PROJECT,
        description="",
        tags=(),
        owner=username,
        existing=existing_project,
    )
    roster = _roster(uow)
    if system_role == "admin":
        roster.grant(ctx, username)
    return uow.stage(user, project, roster)


def handle_bootstrap(cmd: BootstrapSystem, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    if uow.get(Project, project_key(DEFAULT_PROJECT)) is not None:
        raise Conflict("qledger already has its first admin", code="already_bootstrapped")
    return _new_account(
        uow,
        ctx,
        username=cmd.admin_username,
        password=cmd.admin_password.get_secret_value(),
        full_name="",
        system_role="admin",
        project_id=DEFAULT_PROJECT,  # events recorded before accounts existed live here
    )


def handle_register(cmd: RegisterUser, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    return _new_account(
        uow,
        ctx,
        username=cmd.username,
        password=cmd.password.get_secret_value(),
        full_name=cmd.full_name,
        system_role=cmd.system_role,
        project_id=default_project_of(cmd.username),
    )


def handle_change_password(cmd: ChangePassword, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    user = _user(uow, ctx.actor)
    passwords = _passwords(uow)
    if not passwords.verify(user.password_hash, cmd.current_password.get_secret_value()):
        raise InvalidInput("the current password is wrong", code="wrong_password")
    user.set_password(
        ctx, password_hash=passwords.hash(cmd.new_password.get_secret_value()), by_admin=False
    )
    return uow.stage(user)


def handle_reset_password(cmd: ResetPassword, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    user = _user(uow, cmd.username)
    new_hash = _passwords(uow).hash(cmd.new_password.get_secret_value())
    user.set_password(ctx, password_hash=new_hash, by_admin=True)
    return uow.stage(user)


def handle_logout(cmd: Logout, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    user = _user(uow, ctx.actor)
    user.revoke_tokens(ctx, reason="logout")
    return uow.stage(user)


def handle_update_user(cmd: UpdateUser, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    user = _user(uow, cmd.username)
    disabled = user.disabled if cmd.disabled is None else cmd.disabled
    role = cmd.system_role or user.system_role
    # The roster holds the admins who can act: active accounts with the admin role.
    roster = _roster(uow)
    if role == "admin" and not disabled:
        roster.grant(ctx, user.username)
    else:
        roster.revoke(ctx, user.username)  # refuses to remove the last one
    user.update(
        ctx,
        full_name=user.full_name if cmd.full_name is None else cmd.full_name,
        disabled=disabled,
        system_role=role,
    )
    return uow.stage(roster, user)


def handle_delete_user(cmd: DeleteUser, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    user = _user(uow, cmd.username)
    roster = _roster(uow)
    roster.revoke(ctx, user.username)  # refuses to delete the last admin
    user.delete(ctx)
    return uow.stage(roster, user)


def handle_create_project(cmd: CreateProject, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    project = Project.create(
        ctx,
        project_id=cmd.project_id,
        name=cmd.name,
        description=cmd.description,
        tags=tuple(cmd.tags),
        owner=ctx.actor,
        existing=uow.get(Project, project_key(cmd.project_id)),
    )
    return uow.stage(project)


def handle_create_project_for_user(
    cmd: CreateProjectForUser, ctx: CommandContext, uow: UnitOfWork, _: Caller
):
    user = _user(uow, cmd.username)
    current = user.default_project_id
    if current is not None:
        found = uow.get(Project, project_key(current))
        if found is not None and not found.deleted:
            raise Conflict(
                f"'{user.username}' already has the default project '{current}'",
                code="has_default_project",
            )
    project = Project.create(
        ctx,
        project_id=cmd.project_id,
        name=user.username,
        description="",
        tags=(),
        owner=user.username,
        existing=uow.get(Project, project_key(cmd.project_id)),
    )
    user.assign_default_project(ctx, cmd.project_id)
    return uow.stage(project, user)


def handle_update_project(cmd: UpdateProject, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    project = _project(uow, ctx.project_id)
    project.update(
        ctx,
        name=project.name if cmd.name is None else cmd.name,
        description=project.description if cmd.description is None else cmd.description,
        tags=project.tags if cmd.tags is None else tuple(cmd.tags),
        default_role=cmd.default_role or project.default_role,
    )
    return uow.stage(project)


def handle_delete_project(cmd: DeleteProject, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    project = _project(uow, ctx.project_id)
    owner = uow.get(User, user_key(project.owner_username))
    project.delete(ctx)
    if owner is not None and owner.default_project_id == project.project_id:
        owner.assign_default_project(ctx, None)
        return uow.stage(project, owner)
    return uow.stage(project)


def handle_add_member(cmd: AddMember, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    _user(uow, cmd.username)
    project = _project(uow, ctx.project_id)
    project.add_member(ctx, username=cmd.username, role=cmd.role)
    return uow.stage(project)


def handle_change_role(cmd: ChangeMemberRole, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    project = _project(uow, ctx.project_id)
    project.change_role(ctx, username=cmd.username, role=cmd.role)
    return uow.stage(project)


def handle_remove_member(cmd: RemoveMember, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    project = _project(uow, ctx.project_id)
    project.remove_member(ctx, username=cmd.username)
    return uow.stage(project)


def handle_transfer(cmd: TransferOwnership, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    _user(uow, cmd.username)
    project = _project(uow, ctx.project_id)
    project.transfer(ctx, to=cmd.username, previous_owner_role=cmd.role)
    return uow.stage(project)


def handle_create_api_key(cmd: CreateApiKey, ctx: CommandContext, uow: UnitOfWork, caller: Caller):
    # A key acts with its creator's membership (never with admin rights), so the creator
    # must be a member, and may grant only what that membership allows.
    role = _project(uow, ctx.project_id).role_of(ctx.actor)
    if role is None:
        raise Forbidden(
            f"a key acts with your membership, and you are not a member of '{ctx.project_id}'"
        )
    for scope in cmd.scopes:
        needed = SCOPES.get(scope)
        if needed is None:
            raise InvalidInput(
                f"unknown scope '{scope}'; known: {', '.join(sorted(SCOPES))}",
                code="invalid_scope",
            )
        if ROLE_RANK[needed] > ROLE_RANK[role]:
            raise Forbidden(f"scope '{scope}' needs the role {needed}; yours is {role}")
    key = ApiKey.create(
        ctx,
        key_id=cmd.key_id,
        name=cmd.name,
        scopes=tuple(cmd.scopes),
        secret_sha256=cmd.secret_sha256,
        expires_at=cmd.expires_at,
        existing=uow.get(ApiKey, api_key_key(cmd.key_id)),
    )
    return uow.stage(key)


def handle_revoke_api_key(cmd: RevokeApiKey, ctx: CommandContext, uow: UnitOfWork, caller: Caller):
    key = uow.get(ApiKey, api_key_key(cmd.key_id))
    if key is None or key.project_id != ctx.project_id:
        raise NotFound(f"API key '{cmd.key_id}' not found", code="api_key_not_found")
    if key.owner_username != ctx.actor and caller.role != "owner":
        raise Forbidden("only the key's creator or a project owner may revoke it")
    key.revoke(ctx)
    return uow.stage(key)


IDENTITY_HANDLERS = {
    BootstrapSystem: handle_bootstrap,
    RegisterUser: handle_register,
    ChangePassword: handle_change_password,
    ResetPassword: handle_reset_password,
    Logout: handle_logout,
    UpdateUser: handle_update_user,
    DeleteUser: handle_delete_user,
    CreateProject: handle_create_project,
    CreateProjectForUser: handle_create_project_for_user,
    UpdateProject: handle_update_project,
    DeleteProject: handle_delete_project,
    AddMember: handle_add_member,
    ChangeMemberRole: handle_change_role,
    RemoveMember: handle_remove_member,
    TransferOwnership: handle_transfer,
    CreateApiKey: handle_create_api_key,
    RevokeApiKey: handle_revoke_api_key,
}
