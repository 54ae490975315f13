"""Wire shapes for products and customers (QBitFlow SDK 1.1.0 field names, plus our extras)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

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
DAY_SECONDS = 86_400
GracePeriodDays = Annotated[
    StrictInt,
    Field(
        ge=0,
        le=365,
        description="Subscriptions: days of access after an unpaid period end before they "
        "expire (null: the server's default; at most a third of the period either way)",
    ),
]
ReactivateOnLatePayment = Annotated[
    StrictBool,
    Field(
        description="Subscriptions: money arriving after expiry starts the subscription again "
        "(otherwise it is recorded and reported as payment.late)"
    ),
]
MaxSpendingPerPeriod = Annotated[
    UsdAmount,
    Field(
        description="Pay-as-you-go: the most one period may bill, USD (null: 1000); usage that "
        "would bill beyond it is refused"
    ),
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
    grace_period_days: int | None = Field(
        description="Days of grace after an unpaid period end (null: the server's default)"
    )
    reactivate_on_late_payment: bool = Field(
        description="Whether money arriving after expiry starts the subscription again"
    )
    max_spending_per_period: ExactDecimal | None = Field(
        description="Pay-as-you-go: the most one period may bill, USD (null: 1000)"
    )

    @model_validator(mode="before")
    @classmethod
    def _grace_in_days(cls, data: Any) -> Any:
        """Read off a core.models.Product, which keeps the grace in seconds (the lifecycle's unit)."""
        if isinstance(data, dict) or not hasattr(data, "grace_seconds"):
            return data
        seconds = data.grace_seconds
        values = {
            name: getattr(data, name)
            for name in cls.model_fields
            if name not in ("price", "grace_period_days", "max_spending_per_period")
        }
        return {
            **values,
            "price": data.price_usd,
            "grace_period_days": None if seconds is None else seconds // DAY_SECONDS,
            "reactivate_on_late_payment": bool(data.reactivate_on_late_payment),
            "max_spending_per_period": data.max_spending_per_period_usd,
        }


class ProductCreate(CamelModel):
    name: ShortText
    description: LongText
    price: UsdAmount
    reference: Reference | None = None
    telegram_chat_id: TelegramChatId | None = None
    grace_period_days: GracePeriodDays | None = None
    reactivate_on_late_payment: ReactivateOnLatePayment = False
    max_spending_per_period: MaxSpendingPerPeriod | None = None


class ProductUpdate(CamelModel):
    """Partial: the SDK sends name, description and price; absent or null stays unchanged,
    except `telegramChatId` and `gracePeriodDays`, which the SDK never sends: null there
    unbinds the chat or restores the default grace."""

    name: ShortText | None = None
    description: LongText | None = None
    price: UsdAmount | None = None
    is_active: StrictBool | None = None
    telegram_chat_id: TelegramChatId | None = Field(
        default=None, description="A Telegram group or channel the bot administers; null unbinds"
    )
    grace_period_days: GracePeriodDays | None = Field(
        default=None,
        description="Days of grace after an unpaid period end, 0 to 365; null: back to the "
        "server's default (absent: unchanged)",
    )
    reactivate_on_late_payment: ReactivateOnLatePayment | None = None
    max_spending_per_period: MaxSpendingPerPeriod | None = Field(
        default=None, description="Pay-as-you-go cap per period, USD; null: back to 1000"
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
