"""Wire shapes for users and API keys (QBitFlow SDK 1.1.0 field names)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StrictBool, StrictInt

from core.schemas import CamelModel, Email, ShortText


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
