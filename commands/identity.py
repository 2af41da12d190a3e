"""Identity and tenancy commands: accounts, projects, members, API keys.

Passwords travel in commands (the command side hashes and checks them, exactly as for an
HTTP request) but never leave them: they are masked in reprs and in the idempotency
fingerprint, and only their argon2 hash reaches an event.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
)

from commands.models import Command

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


def _reveal(secret: SecretStr, info: SerializationInfo) -> str:
    # The bus needs the value; the idempotency fingerprint must not contain it (a fast
    # hash of a password in an event could be brute-forced).
    if info.context and info.context.get("mask_secrets"):
        return "**********"
    return secret.get_secret_value()


def _password_length(secret: SecretStr) -> SecretStr:
    if not MIN_PASSWORD_LENGTH <= len(secret.get_secret_value()) <= MAX_PASSWORD_LENGTH:
        raise ValueError(f"must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
    return secret


Password = Annotated[
    SecretStr,
    AfterValidator(_password_length),
    PlainSerializer(_reveal, return_type=str, when_used="json"),
]
# Lower-case, so "Alice" and "alice" are one account; e-mail addresses are valid
# usernames (the twin gateway logs in with {"email", "password"}).
Username = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
    Field(pattern=r"^[a-z0-9][a-z0-9_.@+\-]{0,63}$"),
]
Role = Annotated[str, Field(pattern=r"^(viewer|editor|owner)$")]
Text = Annotated[str, Field(max_length=2000)]
Tag = Annotated[str, Field(min_length=1, max_length=64)]


def _utc(value):
    return value.astimezone(UTC)


# --- Accounts (no project) ---------------------------------------------------------


class _Account(Command):
    ACCESS: ClassVar[str] = "user"
    SCOPE: ClassVar[str | None] = None


class BootstrapSystem(_Account):
    """First start: the first admin and the `default` project (only qledger sends it)."""

    SUBJECT = "identity.bootstrap"
    ACCESS = "system"
    admin_username: Username
    admin_password: Password


class RegisterUser(_Account):
    SUBJECT = "identity.register_user"
    ACCESS = "admin"
    username: Username
    password: Password
    full_name: Annotated[str, Field(max_length=200)] = ""
    system_role: Annotated[str, Field(pattern=r"^(user|admin)$")] = "user"


class ChangePassword(_Account):
    SUBJECT = "identity.change_password"
    current_password: Annotated[
        SecretStr, PlainSerializer(_reveal, return_type=str, when_used="json")
    ]
    new_password: Password


class ResetPassword(_Account):
    SUBJECT = "identity.reset_password"
    ACCESS = "admin"
    username: Username
    new_password: Password


class Logout(_Account):
    """Void every token of the caller issued so far."""

    SUBJECT = "identity.logout"


class UpdateUser(_Account):
    """Admin: change an account's settings; fields left out keep their value."""

    SUBJECT = "identity.update_user"
    ACCESS = "admin"
    username: Username
    full_name: Annotated[str, Field(max_length=200)] | None = None
    disabled: bool | None = None
    system_role: Annotated[str, Field(pattern=r"^(user|admin)$")] | None = None


class DeleteUser(_Account):
    SUBJECT = "identity.delete_user"
    ACCESS = "admin"
    username: Username


class CreateProject(_Account):
    """A new project owned by the caller; `project_id` is chosen by the gateway."""

    SUBJECT = "identity.create_project"
    project_id: Annotated[str, Field(pattern=r"^[a-z0-9]{8,32}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Text = ""
    tags: list[Tag] = Field(default_factory=list, max_length=50)


class CreateProjectForUser(_Account):
    """Admin: a default project for a user who has none."""

    SUBJECT = "identity.create_project_for_user"
    ACCESS = "admin"
    username: Username
    project_id: Annotated[str, Field(pattern=r"^[a-z0-9]{8,32}$")]


# --- Inside one project (X-Project-Id) ------------------------------------------------


class _ProjectAdmin(Command):
    ACCESS: ClassVar[str] = "owner"
    SCOPE: ClassVar[str | None] = None


class UpdateProject(_ProjectAdmin):
    SUBJECT = "identity.update_project"
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Text | None = None
    tags: list[Tag] | None = Field(None, max_length=50)
    default_role: Role | None = None


class DeleteProject(_ProjectAdmin):
    SUBJECT = "identity.delete_project"


class AddMember(_ProjectAdmin):
    SUBJECT = "identity.add_member"
    username: Username
    role: Role = "viewer"


class ChangeMemberRole(_ProjectAdmin):
    SUBJECT = "identity.change_member_role"
    username: Username
    role: Role


class RemoveMember(_ProjectAdmin):
    SUBJECT = "identity.remove_member"
    username: Username


class TransferOwnership(_ProjectAdmin):
    SUBJECT = "identity.transfer_ownership"
    username: Username
    role: Role = "editor"  # what the previous owner becomes


class CreateApiKey(_ProjectAdmin):
    """A key for this project acting for the caller, never beyond the caller's own role.
    The client (or the HTTP gateway) makes the secret and sends only its SHA-256."""

    SUBJECT = "identity.create_api_key"
    ACCESS = "viewer"
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    scopes: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=10)
    secret_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    expires_at: Annotated[AwareDatetime, AfterValidator(_utc)] | None = None


class RevokeApiKey(_ProjectAdmin):
    """By the key's creator or a project owner."""

    SUBJECT = "identity.revoke_api_key"
    ACCESS = "viewer"
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]


IDENTITY_COMMANDS: tuple[type[Command], ...] = (
    BootstrapSystem,
    RegisterUser,
    ChangePassword,
    ResetPassword,
    Logout,
    UpdateUser,
    DeleteUser,
    CreateProject,
    CreateProjectForUser,
    UpdateProject,
    DeleteProject,
    AddMember,
    ChangeMemberRole,
    RemoveMember,
    TransferOwnership,
    CreateApiKey,
    RevokeApiKey,
)


# Serialisation context that masks every secret (idempotency fingerprints, logs).
MASK_SECRETS = {"mask_secrets": True}
