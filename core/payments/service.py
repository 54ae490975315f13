"""Payments read back: one payment, pages of them, a transaction's details, a subscription's.

Recording them is `core.payments.ingest`; settling their sessions `core.checkout.settlement`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import tenancy
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.checkout.state import PaymentStatus
from core.errors import NotFound
from core.models import (
    ChainHead,
    CheckoutSession,
    Currency,
    Customer,
    Payment,
    Subscription,
    User,
)
from core.money import base_units_to_tokens, normalize
from core.orgs.schemas import Principal
from core.pagination import decode_cursor, encode_cursor
from core.payments.schemas import (
    CombinedPaymentOut,
    PaymentOut,
    TransactionInfoOut,
)

DEFAULT_PAGE = 50


class PaymentNotFound(NotFound):
    def __init__(self, param: str = "uuid") -> None:
        super().__init__("Payment not found", param=param)


async def get_payment(session: AsyncSession, principal: Principal, uuid: str) -> Payment:
    payment = await session.scalar(tenancy.visible(Payment, principal).where(Payment.uuid == uuid))
    if payment is None:
        raise PaymentNotFound()
    return payment


async def page_payments(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int | None,
    cursor: str | None,
    one_time_only: bool,
) -> tuple[Sequence[Payment], str | None]:
    """Credited payments (not orphaned), newest first, cursor-paginated."""
    size = limit or DEFAULT_PAGE
    stmt = tenancy.visible(Payment, principal).where(Payment.status != PaymentStatus.ORPHANED.value)
    if one_time_only:
        stmt = stmt.where(Payment.subscription_id.is_(None))
    if cursor:
        stmt = stmt.where(Payment.id < decode_cursor("p", cursor))
    rows = (await session.scalars(stmt.order_by(Payment.id.desc()).limit(size + 1))).all()
    items = rows[:size]
    return items, (encode_cursor("p", items[-1].id) if len(rows) > size else None)


async def payment_views(
    session: AsyncSession, context: CheckoutContext, payments: Sequence[Payment]
) -> list[CombinedPaymentOut]:
    """The combined views of these payments; a page costs four queries, not four per payment."""
    checkouts = await _by_id(session, CheckoutSession, (p.session_id for p in payments))
    subscriptions = await _by_id(session, Subscription, (p.subscription_id for p in payments))
    customers = await _by_id(session, Customer, (c.customer_id for c in checkouts.values()))
    currencies = await _by_id(session, Currency, (p.currency_id for p in payments))
    views = []
    for payment in payments:
        checkout = checkouts.get(payment.session_id) if payment.session_id else None
        subscription = (
            subscriptions.get(payment.subscription_id) if payment.subscription_id else None
        )
        customer_id = checkout.customer_id if checkout else None
        customer = customers.get(customer_id) if customer_id else None
        currency = currencies[payment.currency_id]
        views.append(_payment_view(context, payment, checkout, subscription, customer, currency))
    return views


async def payment_view(
    session: AsyncSession, context: CheckoutContext, payment: Payment
) -> CombinedPaymentOut:
    return (await payment_views(session, context, [payment]))[0]


_Row = TypeVar("_Row", CheckoutSession, Subscription, Customer, Currency)


async def _by_id(
    session: AsyncSession, model: type[_Row], ids: Iterable[int | None]
) -> dict[int, _Row]:
    wanted = sorted({i for i in ids if i is not None})
    found: dict[int, _Row] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(
            (row.id, row) for row in await session.scalars(select(model).where(model.id.in_(chunk)))
        )
    return found


def _payment_view(
    context: CheckoutContext,
    payment: Payment,
    checkout: CheckoutSession | None,
    subscription: Subscription | None,
    customer: Customer | None,
    currency: Currency,
) -> CombinedPaymentOut:
    return CombinedPaymentOut(
        uuid=payment.uuid,
        created_at=payment.created_at,
        from_=payment.from_address,
        to=payment.to_address,
        name=checkout.product_name if checkout else "",
        description=checkout.description if checkout else "",
        amount=payment.amount_usd,
        currency_id=payment.currency_id,
        currency=checkout_service.currency_out(currency, context),
        test=payment.test,
        product_id=checkout.product_id if checkout else None,
        transaction_hash=payment.tx_hash,
        customer_uuid=customer.uuid if customer else "",
        chain_id=payment.chain_id,
        log_index=payment.log_index,
        block_number=payment.block_number,
        amount_base_units=str(payment.amount_base_units),
        status=payment.status,
        late=payment.late,
        session_uuid=checkout.uuid if checkout else None,
        source="subscription_history" if subscription else "payment",
        subscription_uuid=subscription.uuid if subscription else None,
    )


def plain_payment(view: CombinedPaymentOut) -> PaymentOut:
    return PaymentOut.model_validate(view.model_dump(exclude={"source", "subscription_uuid"}))


async def transaction_info(
    session: AsyncSession, principal: Principal, context: CheckoutContext, transaction_id: str
) -> TransactionInfoOut:
    """Everything we know of one payment, by its uuid or its transaction hash."""
    stmt = tenancy.visible(Payment, principal)
    if transaction_id.startswith("0x"):
        stmt = stmt.where(Payment.tx_hash == transaction_id.lower()).order_by(Payment.log_index)
    else:
        stmt = stmt.where(Payment.uuid == transaction_id)
    payment = await session.scalar(stmt.limit(1))
    if payment is None:
        raise PaymentNotFound(param="transactionId")
    checkout = (
        await session.get(CheckoutSession, payment.session_id) if payment.session_id else None
    )
    subscription = (
        await session.get(Subscription, payment.subscription_id)
        if payment.subscription_id
        else None
    )
    creator = (
        await session.get(User, checkout.created_by_user_id)
        if checkout and checkout.created_by_user_id
        else None
    )
    fee_bps = creator.organization_fee_bps if creator else 0
    fee = normalize(payment.amount_usd * Decimal(fee_bps) / Decimal(10_000))
    head = await session.get(ChainHead, payment.chain_id)
    chain = context.registry.get(payment.chain_id)
    confirmations = None
    if head is not None and payment.status != PaymentStatus.ORPHANED.value:
        confirmations = max(0, head.block_number - payment.block_number + 1)
    return TransactionInfoOut(
        uuid=payment.uuid,
        chain_id=payment.chain_id,
        chain_name=chain.name if chain else f"Chain {payment.chain_id}",
        token_symbol=payment.token_symbol,
        token_contract=payment.token_contract,
        decimals=payment.decimals,
        tx_hash=payment.tx_hash,
        log_index=payment.log_index,
        block_number=payment.block_number,
        block_hash=payment.block_hash,
        block_timestamp=payment.block_timestamp,
        confirmations=confirmations,
        required_confirmations=chain.confirmations if chain else None,
        finality=chain.finality if chain else None,
        status=payment.status,
        late=payment.late,
        from_=payment.from_address,
        to=payment.to_address,
        amount_base_units=str(payment.amount_base_units),
        amount=base_units_to_tokens(payment.amount_base_units, decimals=payment.decimals),
        amount_usd=payment.amount_usd,
        organization_fee_bps=fee_bps,
        organization_fee_usd=fee,
        merchant_amount_usd=normalize(payment.amount_usd - fee),
        session_uuid=checkout.uuid if checkout else None,
        subscription_uuid=subscription.uuid if subscription else None,
        test=payment.test,
        created_at=payment.created_at,
        confirmed_at=payment.confirmed_at,
    )


async def payments_of_subscription(
    session: AsyncSession, subscription: Subscription
) -> Sequence[Payment]:
    rows = await session.scalars(
        select(Payment)
        .where(
            or_(
                Payment.subscription_id == subscription.id,
                Payment.session_id == subscription.session_id,
            ),
            Payment.status != PaymentStatus.ORPHANED.value,
        )
        .order_by(Payment.id)
    )
    return rows.all()
