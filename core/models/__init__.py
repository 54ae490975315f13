"""Every model, imported here so Alembic and create_all see the whole schema."""

from core.models.base import Base
from core.models.catalog import Customer, Product
from core.models.chain_state import ChainCursor, ChainHead, JobRun, Lease, LedgerBlock
from core.models.checkout import CheckoutSession, Currency, SessionQuote
from core.models.clock import ClockOffset
from core.models.events import Event, EventConsumer
from core.models.idempotency import IdempotencyRecord
from core.models.orgs import ApiKey, Organization, User
from core.models.payments import Payment
from core.models.subscriptions import Subscription, SubscriptionBill
from core.models.telegram import (
    TelegramAccess,
    TelegramCard,
    TelegramClaim,
    TelegramLinkCode,
    TelegramMerchant,
    TelegramOutbox,
    TelegramState,
    TelegramUser,
)
from core.models.wallet import DepositAddress, OrganizationWallet, WalletAccount
from core.models.webhooks import (
    OrganizationWebhookSecret,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "ApiKey",
    "ChainCursor",
    "ChainHead",
    "Event",
    "EventConsumer",
    "LedgerBlock",
    "JobRun",
    "Lease",
    "Base",
    "CheckoutSession",
    "ClockOffset",
    "Currency",
    "Customer",
    "DepositAddress",
    "IdempotencyRecord",
    "Organization",
    "OrganizationWallet",
    "OrganizationWebhookSecret",
    "Payment",
    "Product",
    "SessionQuote",
    "Subscription",
    "SubscriptionBill",
    "TelegramAccess",
    "TelegramCard",
    "TelegramClaim",
    "TelegramLinkCode",
    "TelegramMerchant",
    "TelegramOutbox",
    "TelegramState",
    "TelegramUser",
    "User",
    "WalletAccount",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
