"""What a linked merchant does from Telegram: invoices, subscription links, recent invoices,
binding a product to a paid chat. The bot acts as the linked user in the link's mode
(`core.telegram.links.merchant_principal`), through the same services as the API."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.catalog import service as catalog_service
from core.catalog.exceptions import ProductNotFound
from core.catalog.schemas import ProductUpdate
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.checkout.schemas import SessionCreate, SubscriptionOptionsIn
from core.errors import InvalidInput
from core.models import CheckoutSession, Product
from core.orgs.schemas import Principal
from core.telegram import links
from core.telegram.exceptions import NotAMerchant

INVOICES_PAGE = 5


async def principal_of(session: AsyncSession, telegram_user_id: int) -> Principal:
    principal = await links.merchant_principal(session, telegram_user_id)
    if principal is None:
        raise NotAMerchant()
    return principal


def parse_amount(text: str) -> Decimal:
    """A USD amount typed in Telegram (`19.99`, `19,99`, `$5`), exact, positive."""
    cleaned = text.strip().lstrip("$").replace(",", ".")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidInput("The amount must be a number such as 19.99", param="amount") from None
    if not amount.is_finite() or amount <= 0 or amount > Decimal("1000000000"):
        raise InvalidInput("The amount must be above 0 and at most 1,000,000,000", param="amount")
    if amount != amount.quantize(Decimal("0.000001")):
        raise InvalidInput("The amount has at most 6 decimals", param="amount")
    return amount


async def create_invoice(
    session: AsyncSession,
    context: CheckoutContext,
    principal: Principal,
    *,
    amount: Decimal,
    description: str,
) -> CheckoutSession:
    """A one-time invoice to forward to a payer (its bot link and web link)."""
    text = description.strip()
    if not text:
        raise InvalidInput("Say what the invoice is for: /invoice 19.99 Ebook", param="description")
    data = SessionCreate(product_name=text[:200], description=text[:2000], price=amount)
    return await checkout_service.create_session(session, principal, context, data, source="bot")


async def create_subscription_link(
    session: AsyncSession,
    context: CheckoutContext,
    principal: Principal,
    *,
    product_id: int,
    days: int,
) -> CheckoutSession:
    """A subscription session for one of the merchant's products, billed every `days` days."""
    options = SubscriptionOptionsIn.model_validate(
        {"subscriptionType": "subscription", "frequency": {"value": days, "unit": "days"}}
    )
    data = SessionCreate(product_id=product_id, options=options)
    return await checkout_service.create_session(session, principal, context, data, source="bot")


async def products(session: AsyncSession, principal: Principal) -> Sequence[Product]:
    return [p for p in await catalog_service.list_products(session, principal) if p.is_active]


async def recent_invoices(
    session: AsyncSession, principal: Principal, *, page: int
) -> tuple[Sequence[CheckoutSession], int]:
    """The invoices this user made in the bot, newest first, one page; and how many in all."""
    where = (
        CheckoutSession.organization_id == principal.organization_id,
        CheckoutSession.test == principal.test,
        CheckoutSession.created_by_user_id == principal.user_id,
        CheckoutSession.source == "bot",
    )
    total = await session.scalar(select(func.count()).select_from(CheckoutSession).where(*where))
    rows = await session.scalars(
        select(CheckoutSession)
        .where(*where)
        .order_by(CheckoutSession.id.desc())
        .offset(max(0, page) * INVOICES_PAGE)
        .limit(INVOICES_PAGE)
    )
    return list(rows), int(total or 0)


async def bind_chat(
    session: AsyncSession, principal: Principal, *, product_id: int, chat_id: int
) -> Product:
    """Bind a product to a Telegram chat the bot administers (the caller checked the rights)."""
    try:
        return await catalog_service.update_product(
            session, principal, product_id, ProductUpdate(telegram_chat_id=chat_id)
        )
    except ProductNotFound as exc:
        # The same answer as a subscription link's unknown product (`productId`).
        raise ProductNotFound(param="productId") from exc
