"""Wire shapes for products and customers (QBitFlow SDK 1.1.0 field names, plus our extras)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AliasChoices, ConfigDict, Field, StrictBool, StrictInt

from core.schemas import (
    CamelModel,
    Email,
    EvmAddress,
    ExactDecimal,
    LongText,
    Reference,
    ShortText,
    UsdAmount,
)

TelegramUserId = Annotated[StrictInt, Field(gt=0, le=2**52)]


def _not_zero(value: int) -> int:
    if value == 0:
        raise ValueError("must be a Telegram chat id, not 0")
    return value


# Groups and channels have negative ids (-100... for channels and supergroups); 64-bit signed.
TelegramChatId = Annotated[
    StrictInt,
    Field(
        ge=-(2**63),
        le=2**63 - 1,
        description="A Telegram group or channel the bot administers (paid access)",
    ),
    AfterValidator(_not_zero),
]
Phone = Annotated[str, Field(min_length=3, max_length=40, pattern=r"^\+?[0-9 ()\-.]{3,40}$")]
Address = Annotated[str, Field(min_length=1, max_length=1000)]


class ProductOut(CamelModel):
    # Read straight off a core.models.Product; price comes from its price_usd column. An
    # explicit validation_alias switches off the camelCase generator for this field, so the
    # wire name is spelled out as alias.
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    price: ExactDecimal = Field(
        alias="price",
        validation_alias=AliasChoices("price", "price_usd"),
        description="USD, exact",
    )
    reference: str | None
    created_at: datetime
    is_active: bool
    test: bool
    telegram_chat_id: int | None = Field(
        description="The Telegram group or channel subscribers get into, if any"
    )


class ProductCreate(CamelModel):
    name: ShortText
    description: LongText
    price: UsdAmount
    reference: Reference | None = None
    telegram_chat_id: TelegramChatId | None = None


class ProductUpdate(CamelModel):
    """Partial: the SDK sends name, description and price; absent or null stays unchanged,
    except `telegramChatId`, which the SDK never sends: null there unbinds the chat."""

    name: ShortText | None = None
    description: LongText | None = None
    price: UsdAmount | None = None
    is_active: StrictBool | None = None
    telegram_chat_id: TelegramChatId | None = Field(
        default=None, description="A Telegram group or channel the bot administers; null unbinds"
    )


class CustomerOut(CamelModel):
    model_config = ConfigDict(from_attributes=True)  # read straight off a core.models.Customer

    uuid: str
    name: str
    last_name: str
    email: str
    phone_number: str | None
    address: str | None
    reference: str | None
    telegram_user_id: int | None
    wallet_address: str | None
    created_at: datetime
    test: bool


class CustomerCreate(CamelModel):
    name: ShortText
    last_name: ShortText
    email: Email
    phone_number: Phone | None = None
    address: Address | None = None
    reference: Reference | None = None
    telegram_user_id: TelegramUserId | None = None
    wallet_address: EvmAddress | None = None


class CustomerUpdate(CamelModel):
    """Partial, uuid in the body (the SDK's shape). The reference is immutable."""

    uuid: Annotated[str, Field(min_length=1, max_length=36)]
    name: ShortText | None = None
    last_name: ShortText | None = None
    email: Email | None = None
    phone_number: Phone | None = None
    address: Address | None = None
    reference: Reference | None = None
    telegram_user_id: TelegramUserId | None = None
    wallet_address: EvmAddress | None = None


class CustomerPage(CamelModel):
    items: list[CustomerOut]
    next_cursor: str | None
