"""Checkout sessions: create (one-time or subscription), read, cancel; their quotes and views."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypedDict, Unpack

import simplejson
import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import tenancy
from core.catalog import service as catalog_service
from core.catalog.exceptions import CustomerNotFound, ProductNotFound
from core.checkout import repository as checkout_repository
from core.checkout.context import CheckoutContext, CreatedSession
from core.checkout.exceptions import (
    NoAcceptedTokens,
    SessionNotFound,
    SessionNotOpen,
    UnsupportedOption,
)
from core.checkout.schemas import (
    MAX_FREQUENCY_SECONDS,
    MAX_TRIAL_SECONDS,
    MIN_FREQUENCY_SECONDS,
    PAPAYA_PERIODS,
    CurrencyOut,
    Duration,
    InvoiceCreate,
    InvoiceDetailOut,
    LinkOut,
    SessionCreate,
    SessionOut,
    SubscriptionOptionsIn,
    SubscriptionOptionsOut,
    TokenAmountOut,
)
from core.checkout.state import OPEN_STATUSES, SessionStatus
from core.db import on_commit
from core.errors import InvalidInput
from core.events import service as events_service
from core.events.canonical import json_number
from core.logs import log_on_commit
from core.models import CheckoutSession, Currency, Customer, Organization, Product, SessionQuote
from core.money import base_units_to_tokens, normalize
from core.orgs.schemas import Principal
from core.wallet import service as wallet_service
from core.webhooks.ssrf import check_url

log = structlog.get_logger(__name__)

KIND_PAYMENT = "payment"
KIND_SUBSCRIPTION = "subscription"


def exact_json(data: Any) -> str:
    """Sorted, compact JSON with Decimals written digit for digit (stored metadata)."""
    return str(
        simplejson.dumps(
            data, sort_keys=True, separators=(",", ":"), use_decimal=True, ensure_ascii=False
        )
    )


async def sync_currencies(session: AsyncSession, context: CheckoutContext) -> None:
    """Give every configured (chain, token) its stable Currency id (idempotent, race-free)."""
    tokens = [t for c in context.registry.chains.values() for t in c.tokens]
    if not tokens:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    for token in tokens:
        chain = context.registry.chains[token.chain_id]
        stmt = (
            insert(Currency)
            .values(
                chain_id=token.chain_id,
                contract=token.contract,
                symbol=token.symbol,
                decimals=token.decimals,
                test=chain.test,
            )
            .on_conflict_do_nothing(index_elements=["chain_id", "contract"])
        )
        await session.execute(stmt)
    await session.flush()


async def currencies_by_token(session: AsyncSession) -> dict[tuple[int, str], Currency]:
    rows = await session.scalars(select(Currency))
    return {(c.chain_id, c.contract.lower()): c for c in rows}


_SYNCED_CURRENCIES = "chainpay.synced_currencies"


async def currency_id(
    session: AsyncSession, context: CheckoutContext, chain_id: int, contract: str
) -> int:
    """The Currency id of a configured token: read once per process (ids never change once
    assigned), the row made first where the token is new."""
    key = (chain_id, contract.lower())
    if key in context.currency_ids:
        return context.currency_ids[key]
    sync = session.sync_session
    currencies = await currencies_by_token(session)
    if key not in currencies:
        await sync_currencies(session, context)
        currencies = await currencies_by_token(session)
        sync.info[_SYNCED_CURRENCIES] = sync.get_transaction()
    ids = {k: c.id for k, c in currencies.items()}
    if sync.info.get(_SYNCED_CURRENCIES) is sync.get_transaction():
        # This transaction inserted currency rows: they vanish if it rolls back, and a cached id
        # of such a row would break every later step's foreign key. Cached once committed.
        on_commit(session, partial(context.currency_ids.update, ids))
    else:
        context.currency_ids.update(ids)  # all committed rows: one read per process
    return ids[key]


class CreateOptions(TypedDict, total=False):
    """Where a session comes from and what it carries besides the merchant's request."""

    source: str
    title: str | None
    message: str | None
    metadata: dict[str, Any] | None
    telegram_user_id: int | None


async def create_session(
    session: AsyncSession,
    principal: Principal,
    context: CheckoutContext,
    data: SessionCreate,
    **options: Unpack[CreateOptions],
) -> CheckoutSession:
    """A payable session with its own deposit address and exact per-token quotes."""
    checkout, _ = await _create_session(session, principal, context, data, **options)
    return checkout


async def _create_session(
    session: AsyncSession,
    principal: Principal,
    context: CheckoutContext,
    data: SessionCreate,
    *,
    source: str = "api",
    title: str | None = None,
    message: str | None = None,
    metadata: dict[str, Any] | None = None,
    telegram_user_id: int | None = None,
) -> tuple[CheckoutSession, list[SessionQuote]]:
    kind, frequency, trial, min_periods = _subscription_terms(data)
    if data.webhook_url is not None:
        # Deliveries to it are checked again at connect time; refusing here tells the merchant.
        await check_url(
            data.webhook_url,
            live=not principal.test,
            allow_private=context.webhooks_allow_private,
            resolve=context.resolve,
            param="webhookUrl",
        )
    product: Product | None = None
    if data.product_id is not None:
        try:
            product = await catalog_service.get_product(session, principal, data.product_id)
        except ProductNotFound as exc:
            raise ProductNotFound(param="productId") from exc
        if not product.is_active:
            raise InvalidInput(
                "This product is not active", param="productId", code="product_inactive"
            )
    customer: Customer | None = None
    if data.customer_uuid:
        try:
            customer = await catalog_service.get_customer(session, principal, data.customer_uuid)
        except CustomerNotFound as exc:
            raise CustomerNotFound(param="customerUUID") from exc

    price = product.price_usd if product is not None else data.price
    name = product.name if product is not None else data.product_name
    description = product.description if product is not None else data.description
    for param, value in (("productName", name), ("description", description), ("price", price)):
        if value is None:
            raise InvalidInput(f"{param} is required when no productId is given", param=param)
    assert price is not None
    assert name is not None
    assert description is not None
    if price <= 0:
        raise InvalidInput("price must be greater than 0", param="price")

    quotes = context.registry.quote(price, test=principal.test)
    if not quotes:
        mode = "test" if principal.test else "live"
        raise NoAcceptedTokens(
            f"No {mode} chains are configured: a {mode} session has nothing to accept",
            param=None,
        )
    if kind == KIND_SUBSCRIPTION and product is None:
        # A subscription always belongs to a product (the SDK's Subscription.productId).
        product = Product(
            organization_id=principal.organization_id,
            created_by_user_id=principal.user_id,
            test=principal.test,
            name=name,
            description=description,
            price_usd=price,
        )
        session.add(product)
        await session.flush()

    # Known before the address is allocated: from there to the commit the organization's address
    # counter is locked (PostgreSQL's row lock), and every other creation waits for it.
    currency_ids = [
        await currency_id(session, context, q.token.chain_id, q.token.contract) for q in quotes
    ]
    address = await wallet_service.allocate_address(session, principal.organization_id)
    now = context.clock.now()
    checkout = CheckoutSession(
        organization_id=principal.organization_id,
        created_by_user_id=principal.user_id,
        test=principal.test,
        kind=kind,
        product_id=product.id if product is not None else None,
        product_name=name,
        description=description,
        price_usd=price,
        success_url=data.success_url,
        cancel_url=data.cancel_url,
        webhook_url=data.webhook_url,
        customer_id=customer.id if customer is not None else None,
        telegram_user_id=telegram_user_id,
        frequency_seconds=frequency,
        trial_seconds=trial,
        min_periods=min_periods,
        # Pay-as-you-go (core/subscriptions/payg.py): the price is per unit.
        payg=data.options is not None and data.options.subscription_type == "payAsYouGo",
        free_credits_usd=data.options.free_credits if data.options is not None else None,
        source=source,
        title=title,
        message=message,
        metadata_json=exact_json(metadata) if metadata is not None else None,
        deposit_address_id=address.id,
        deposit_address=address.address,
        bot_token=secrets.token_urlsafe(24),
        status=SessionStatus.CREATED.value,
        paid_usd=Decimal(0),
        expires_at=now + context.lifetime,
        created_at=now,
    )
    session.add(checkout)
    await session.flush()
    rows = []
    for quote, currency in zip(quotes, currency_ids, strict=True):
        rows.append(
            SessionQuote(
                session_id=checkout.id,
                currency_id=currency,
                chain_id=quote.token.chain_id,
                token_contract=quote.token.contract,
                token_symbol=quote.token.symbol,
                decimals=quote.token.decimals,
                usd_peg=quote.token.usd_peg,
                amount_base_units=quote.amount_base_units,
            )
        )
    session.add_all(rows)
    await session.flush()
    if context.on_session_created is not None:
        created = CreatedSession(
            uuid=checkout.uuid,
            link=context.link(checkout.uuid),
            test=checkout.test,
            organization_id=checkout.organization_id,
            accepted=tuple((q.token.chain_id, q.token.symbol) for q in quotes),
        )
        on_commit(session, partial(context.on_session_created, created))
    return checkout, rows


async def create_link(
    session: AsyncSession, principal: Principal, context: CheckoutContext, data: SessionCreate
) -> LinkOut:
    """A new session as the API answers its creation (its quotes as just written)."""
    checkout, quotes = await _create_session(session, principal, context, data)
    return await link_view(session, context, checkout, quotes=quotes)


def _subscription_terms(data: SessionCreate) -> tuple[str, int | None, int | None, int | None]:
    options = data.options
    if options is None:
        return KIND_PAYMENT, None, None, None
    if options.subscription_type == "payAsYouGo" and options.trial_period is not None:
        # Pay-as-you-go starts without paying anyway; its free credits play the trial's part.
        raise UnsupportedOption(
            "Pay-as-you-go subscriptions take no trial period: give freeCredits instead",
            param="options.trialPeriod",
        )
    frequency = options.frequency.seconds
    if frequency < MIN_FREQUENCY_SECONDS:
        raise InvalidInput(
            "The billing frequency must be at least one day", param="options.frequency"
        )
    if frequency > MAX_FREQUENCY_SECONDS:
        raise InvalidInput(
            "The billing frequency must be at most five years", param="options.frequency"
        )
    trial = options.trial_period.seconds if options.trial_period is not None else None
    if trial is not None and trial > MAX_TRIAL_SECONDS:
        raise InvalidInput("A trial lasts at most one year", param="options.trialPeriod")
    return KIND_SUBSCRIPTION, frequency, trial, options.min_periods


async def get_session(session: AsyncSession, principal: Principal, uuid: str) -> CheckoutSession:
    checkout = await session.scalar(
        tenancy.visible(CheckoutSession, principal).where(CheckoutSession.uuid == uuid)
    )
    if checkout is None:
        raise SessionNotFound()
    return checkout


async def get_session_by_id(
    session: AsyncSession, principal: Principal, session_id: int
) -> CheckoutSession:
    checkout = await session.scalar(
        tenancy.visible(CheckoutSession, principal).where(CheckoutSession.id == session_id)
    )
    if checkout is None:
        raise SessionNotFound(param="id")
    return checkout


async def public_session(session: AsyncSession, *, uuid: str) -> CheckoutSession:
    """A session as its payer reaches it without an API key: by the uuid in its link."""
    checkout = await session.scalar(select(CheckoutSession).where(CheckoutSession.uuid == uuid))
    if checkout is None:
        raise SessionNotFound()
    return checkout


async def by_bot_token(session: AsyncSession, token: str) -> CheckoutSession:
    """A session as its payer reaches it in Telegram: by the token in its `botUrl` (`?start=`)."""
    checkout = await session.scalar(
        select(CheckoutSession).where(CheckoutSession.bot_token == token)
    )
    if checkout is None:
        raise SessionNotFound(param="token")
    return checkout


async def cancel_session(
    session: AsyncSession, principal: Principal, uuid: str, *, now: datetime
) -> CheckoutSession:
    """Cancel an open session (created or partly paid). Money arriving later is still recorded."""
    checkout = await get_session(session, principal, uuid)
    return await cancel_open_session(session, checkout, now=now)


async def cancel_open_session(
    session: AsyncSession, checkout: CheckoutSession, *, now: datetime
) -> CheckoutSession:
    """Cancel a session found by its merchant (above) or its payer (the bot)."""
    # Decided on the locked row: a payment settling at the same time is either seen here
    # (a completed session is not open) or comes after and sees the cancellation.
    checkout = (await checkout_repository.lock_sessions(session, [checkout.id]))[checkout.id]
    if SessionStatus(checkout.status) not in OPEN_STATUSES:
        raise SessionNotOpen(
            f"Only open sessions can be cancelled; this one is {checkout.status}", param="uuid"
        )
    if checkout.expires_at <= now:
        raise SessionNotOpen("This session has already expired", param="uuid")
    previous = checkout.status
    checkout.status = SessionStatus.CANCELLED.value
    checkout.cancelled_at = now
    checkout.updated_at = now
    await session.flush()
    log_status_change(session, checkout, previous, chain_id=None, tx_hash=None)
    await events_service.emit(
        session,
        organization_id=checkout.organization_id,
        test=checkout.test,
        type="session.cancelled",
        data=session_event_data(checkout),
        session_id=checkout.id,
        top_level=await webhook_fields(session, checkout, tx_hash=None),
        session_webhook_url=checkout.webhook_url,
    )
    return checkout


def log_status_change(
    session: AsyncSession,
    checkout: CheckoutSession,
    previous: str,
    *,
    chain_id: int | None,
    tx_hash: str | None,
) -> None:
    """The `session_status_changed` line (written if the transaction that changed it commits).

    `chain_id` and `tx_hash` are those of the session's latest live payment, when one is known.
    """
    log_on_commit(
        session,
        log,
        "info",
        "session_status_changed",
        session_uuid=checkout.uuid,
        organization_id=checkout.organization_id,
        test=checkout.test,
        previous=previous,
        status=checkout.status,
        chain_id=chain_id,
        tx_hash=tx_hash,
        price_usd=str(normalize(checkout.price_usd)),
        paid_usd=str(normalize(checkout.paid_usd)),
        underpaid=checkout.underpaid,
        overpaid=checkout.overpaid,
        late=checkout.late,
    )


def status_message(checkout: CheckoutSession) -> str | None:
    """The flags of a session as the status `message` QBitFlow's clients show."""
    flags = [name for name in ("underpaid", "overpaid", "late") if getattr(checkout, name)]
    if checkout.other_token:
        flags.append("paid in another accepted token")
    return ", ".join(flags) or None


def session_event_data(checkout: CheckoutSession) -> dict[str, object]:
    """`data` of session events: amounts as exact decimal strings."""
    return {
        "uuid": checkout.uuid,
        "status": checkout.status,
        "price": str(checkout.price_usd),
        "paidUsd": str(checkout.paid_usd),
        "underpaid": checkout.underpaid,
        "overpaid": checkout.overpaid,
        "late": checkout.late,
        "depositAddress": checkout.deposit_address,
        "telegramUserId": checkout.telegram_user_id,
        "test": checkout.test,
    }


async def webhook_fields(
    session: AsyncSession, checkout: CheckoutSession, *, tx_hash: str | None
) -> dict[str, Any]:
    """QBitFlow 1.1.0's SessionWebhookResponse (uuid, status, session) for session events."""
    organization = await session.get(Organization, checkout.organization_id)
    customer = await session.get(Customer, checkout.customer_id) if checkout.customer_id else None
    options = None
    if checkout.kind == KIND_SUBSCRIPTION:
        options = {
            "frequency": checkout.frequency_seconds,
            "trialPeriod": checkout.trial_seconds,
            "subscriptionType": "subscription",
            "minPeriods": checkout.min_periods,
        }
    return {
        "uuid": checkout.uuid,
        "status": {
            "type": "createSubscription" if checkout.kind == KIND_SUBSCRIPTION else "payment",
            "status": checkout.status,
            "txHash": tx_hash,
            "message": status_message(checkout),
        },
        "session": {
            "uuid": checkout.uuid,
            "productId": checkout.product_id,
            "productName": checkout.product_name,
            "description": checkout.description,
            "price": json_number(checkout.price_usd),
            "organizationName": organization.name if organization else "",
            "successUrl": checkout.success_url,
            "cancelUrl": checkout.cancel_url,
            "customerUUID": customer.uuid if customer else "",
            "options": options,
        },
    }


async def quotes_of(session: AsyncSession, checkout: CheckoutSession) -> Sequence[SessionQuote]:
    rows = await session.scalars(
        select(SessionQuote).where(SessionQuote.session_id == checkout.id).order_by(SessionQuote.id)
    )
    return rows.all()


def amounts_out(context: CheckoutContext, quotes: Sequence[SessionQuote]) -> list[TokenAmountOut]:
    out = []
    for quote in quotes:
        chain = context.registry.get(quote.chain_id)
        out.append(
            TokenAmountOut(
                currency_id=quote.currency_id,
                chain_id=quote.chain_id,
                chain_name=chain.name if chain else f"Chain {quote.chain_id}",
                symbol=quote.token_symbol,
                contract=quote.token_contract,
                decimals=quote.decimals,
                amount_base_units=str(quote.amount_base_units),
                amount=base_units_to_tokens(quote.amount_base_units, decimals=quote.decimals),
            )
        )
    return out


def currency_out(currency: Currency, context: CheckoutContext) -> CurrencyOut:
    chain = context.registry.get(currency.chain_id)
    chain_name = chain.name if chain else f"Chain {currency.chain_id}"
    return CurrencyOut(
        id=currency.id,
        name=f"{currency.symbol} on {chain_name}",
        symbol=currency.symbol,
        decimals=currency.decimals,
        address=currency.contract,
        test=currency.test,
        chain_id=currency.chain_id,
    )


async def link_view(
    session: AsyncSession,
    context: CheckoutContext,
    checkout: CheckoutSession,
    *,
    quotes: Sequence[SessionQuote] | None = None,
) -> LinkOut:
    return LinkOut(
        uuid=checkout.uuid,
        invoice_id=checkout.id,
        link=context.link(checkout.uuid),
        expires_at=int(checkout.expires_at.timestamp()),
        bot_url=context.bot_url(checkout.bot_token),
        deposit_address=checkout.deposit_address,
        amounts=amounts_out(
            context, quotes if quotes is not None else await quotes_of(session, checkout)
        ),
        test=checkout.test,
    )


async def session_view(
    session: AsyncSession, context: CheckoutContext, checkout: CheckoutSession
) -> SessionOut:
    """The SDK's Session plus chainpay's extras (status, flags, amounts, links)."""
    organization = await session.get(Organization, checkout.organization_id)
    customer = await session.get(Customer, checkout.customer_id) if checkout.customer_id else None
    quotes = await quotes_of(session, checkout)
    currency_ids = [q.currency_id for q in quotes]
    currencies = (
        (await session.scalars(select(Currency).where(Currency.id.in_(currency_ids)))).all()
        if currency_ids
        else []
    )
    by_id = {c.id: c for c in currencies}
    options = None
    if checkout.kind == KIND_SUBSCRIPTION:
        assert checkout.frequency_seconds is not None
        options = SubscriptionOptionsOut(
            frequency=checkout.frequency_seconds,
            trial_period=checkout.trial_seconds,
            free_credits=checkout.free_credits_usd,
            subscription_type="payAsYouGo" if checkout.payg else "subscription",
            min_periods=checkout.min_periods,
        )
    remaining = max(Decimal(0), checkout.price_usd - checkout.paid_usd)
    if checkout.status in (SessionStatus.COMPLETED.value, SessionStatus.WAITING_CONFIRMATION.value):
        remaining = Decimal(0)
    return SessionOut(
        uuid=checkout.uuid,
        product_id=checkout.product_id,
        product_name=checkout.product_name,
        description=checkout.description,
        price=checkout.price_usd,
        organization_name=organization.name if organization else "",
        success_url=checkout.success_url,
        cancel_url=checkout.cancel_url,
        customer_uuid=customer.uuid if customer else "",
        options=options,
        available_currencies=[currency_out(by_id[i], context) for i in currency_ids if i in by_id],
        invoice_id=checkout.id,
        status=checkout.status,
        underpaid=checkout.underpaid,
        overpaid=checkout.overpaid,
        late=checkout.late,
        other_token=checkout.other_token,
        paid_usd=checkout.paid_usd,
        remaining_usd=remaining,
        expires_at=int(checkout.expires_at.timestamp()),
        link=context.link(checkout.uuid),
        bot_url=context.bot_url(checkout.bot_token),
        deposit_address=checkout.deposit_address,
        amounts=amounts_out(context, quotes),
        telegram_user_id=checkout.telegram_user_id,
        test=checkout.test,
    )


# --- Papaya invoices: the same sessions seen through /api/invoice -------------------------------


async def create_invoice(
    session: AsyncSession, principal: Principal, context: CheckoutContext, data: InvoiceCreate
) -> CheckoutSession:
    if data.rate <= 0:
        raise InvalidInput("rate must be greater than 0", param="rate")
    name = data.title or ("Subscription" if data.period else "Invoice")
    options = None
    if data.period is not None:
        options = SubscriptionOptionsIn(
            subscription_type="subscription",
            frequency=Duration(value=PAPAYA_PERIODS[data.period], unit="seconds"),
        )
    request = SessionCreate(
        product_name=name, description=data.message or name, price=data.rate, options=options
    )
    return await create_session(
        session,
        principal,
        context,
        request,
        source="invoice",
        title=data.title,
        message=data.message,
        metadata=data.metadata,
    )


def invoice_view(context: CheckoutContext, checkout: CheckoutSession) -> InvoiceDetailOut:
    period = None
    if checkout.frequency_seconds is not None:
        period = next(
            (k for k, v in PAPAYA_PERIODS.items() if v == checkout.frequency_seconds), None
        )
    return InvoiceDetailOut(
        id=checkout.id,
        recipient=str(checkout.telegram_user_id) if checkout.telegram_user_id is not None else None,
        rate=checkout.price_usd,
        created_at=checkout.created_at,
        is_paid=checkout.status == SessionStatus.COMPLETED.value,
        metadata=json.loads(checkout.metadata_json, parse_float=Decimal)
        if checkout.metadata_json
        else None,
        bot_url=context.bot_url(checkout.bot_token),
        uuid=checkout.uuid,
        status=checkout.status,
        period=period,
        link=context.link(checkout.uuid),
    )


# --- token decimals read from contracts, cached with the currencies -----------------------------


async def cached_decimals(session: AsyncSession) -> dict[tuple[int, str], int]:
    rows = await session.scalars(select(Currency))
    return {(c.chain_id, c.contract.lower()): c.decimals for c in rows}


async def remember_decimals(
    session: AsyncSession, *, chain_id: int, contract: str, symbol: str, decimals: int, test: bool
) -> None:
    """Keep what a contract's decimals() answered, so later starts need no RPC for it."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(Currency)
        .values(chain_id=chain_id, contract=contract, symbol=symbol, decimals=decimals, test=test)
        .on_conflict_do_nothing(index_elements=["chain_id", "contract"])
    )
