"""Wire shapes for users and API keys (QBitFlow SDK 1.1.0 field names)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from pydantic import ConfigDict, Field, StrictBool, StrictInt

from core.schemas import CamelModel, Email, ShortText

if TYPE_CHECKING:
    from core.models import ApiKey


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    USER = "user"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the API key, its user, organization, role and mode."""

    api_key_id: int
    organization_id: int
    user_id: int
    role: Role
    test: bool

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)


FeeBps = Annotated[StrictInt, Field(ge=0, le=1000)]
Password = Annotated[str, Field(min_length=8, max_length=256)]


class UserOut(CamelModel):
    model_config = ConfigDict(from_attributes=True)  # read straight off a core.models.User

    id: int
    name: str
    last_name: str
    email: str
    created_at: datetime
    updated_at: datetime
    organization_id: int
    role: Role
    organization_fee_bps: int


class UserCreate(CamelModel):
    name: ShortText
    last_name: ShortText
    email: Email
    password: Password
    role: Role
    organization_fee_bps: FeeBps = 0


class UserUpdate(CamelModel):
    """Partial: an absent or null field stays as it is (the SDK sends password: null)."""

    name: ShortText | None = None
    last_name: ShortText | None = None
    email: Email | None = None
    password: Password | None = None
    organization_fee_bps: FeeBps | None = None


class ApiKeyOut(CamelModel):
    id: int
    name: str
    organization_id: int
    user_id: int
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    role: Role
    test: bool
    preview: str


def api_key_out(key: ApiKey, role: Role) -> ApiKeyOut:
    """A key as the API shows it: its own columns plus its holder's role (a key has none)."""
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        organization_id=key.organization_id,
        user_id=key.user_id,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        role=role,
        test=key.test,
        preview=key.preview,
    )


class ApiKeyCreate(CamelModel):
    name: ShortText
    user_id: StrictInt = Field(gt=0, le=2**63 - 1)
    expires_at: datetime | None = None
    test: StrictBool = False


class CreatedApiKey(CamelModel):
    data: ApiKeyOut
    key: str


class MessageOut(CamelModel):
    message: str
