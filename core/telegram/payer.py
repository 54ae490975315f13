"""The payer's side in Telegram: open a session from its bot link, pick a network and token,
see what to pay and how far it got, start a trial, cancel, get a fresh session.

Everything here is plain data for the bot to render (`PaymentCard`); the bot never reads
models itself. A session belongs to the first Telegram account that opens its link: another
account pressing its buttons (or opening a forwarded link) is refused.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.checkout import repository as checkout_repository
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.checkout.schemas import SessionCreate, SubscriptionOptionsIn
from core.checkout.state import OPEN_STATUSES, PaymentStatus, SessionStatus
from core.models import (
    ChainHead,
    CheckoutSession,
    Customer,
    Organization,
    Payment,
    Product,
    SessionQuote,
    Subscription,
    TelegramUser,
    User,
)
from core.money import base_units_to_tokens
from core.orgs.schemas import Principal, Role
from core.subscriptions import service as subscriptions_service
from core.telegram.exceptions import NotYourSession, PairNotAccepted


@dataclass(frozen=True, slots=True)
class CardQuote:
    chain_id: int
    chain_name: str
    symbol: str
    contract: str
    decimals: int
    amount_base_units: int
    amount: Decimal  # token units, exact


@dataclass(frozen=True, slots=True)
class Progress:
    """Payments to the session's address: what is final and what is still confirming."""

    confirmed_usd: Decimal
    confirming_usd: Decimal
    # The least-confirmed payment still confirming: (confirmations so far, needed); None if none.
    confirmations: tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class PaymentCard:
    """What a payer sees of a session in Telegram, decided from the database at one moment."""

    session_id: int
    uuid: str
    organization: str
    product: str
    description: str
    price_usd: Decimal
    kind: str  # "payment" or "subscription"
    frequency_seconds: int | None
    trial_seconds: int | None
    trial_available: bool
    status: str
    paid_usd: Decimal
    remaining_usd: Decimal
    overpaid: bool
    late: bool
    expires_at: datetime
    deposit_address: str
    link: str
    success_url: str | None
    quotes: tuple[CardQuote, ...]
    chosen: CardQuote | None
    progress: Progress
    subscription_status: str | None
    subscription_period_end: datetime | None
    test: bool
    # Pay-as-you-go: started without paying (`payg_start_available` offers that start), billed
    # in arrears; its price is per unit.
    payg: bool = False
    payg_start_available: bool = False
    free_credits_usd: Decimal | None = None
    # The subscription's open bill (a renewal request, a pay-as-you-go bill): USD still owed and
    # its deadline; None when nothing is owed.
    bill_usd: Decimal | None = None
    bill_due_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return SessionStatus(self.status) in OPEN_STATUSES

    @property
    def payment_uri(self) -> str | None:
        """EIP-681: a wallet that scans it fills in the token transfer (token, chain, to, amount)."""
        if self.chosen is None:
            return None
        return self.uri_for(self.chosen)

    def amount_due(self, quote: CardQuote) -> int:
        """Base units of `quote`'s token still to send: all of it until something was paid,
        then the rest of the price in this token, rounded up to the token's last digit. With a
        bill open on the subscription: that bill in this token (the quote is of the price)."""
        if self.bill_usd is not None and self.price_usd > 0:
            return math.ceil(
                Fraction(quote.amount_base_units)
                * Fraction(self.bill_usd)
                / Fraction(self.price_usd)
            )
        if self.price_usd <= 0 or not 0 < self.remaining_usd < self.price_usd:
            return quote.amount_base_units
        return math.ceil(
            Fraction(quote.amount_base_units)
            * Fraction(self.remaining_usd)
            / Fraction(self.price_usd)
        )

    def uri_for(self, quote: CardQuote) -> str:
        """The EIP-681 URI of paying what is still due in `quote`'s token."""
        return (
            f"ethereum:{quote.contract}@{quote.chain_id}/transfer"
            f"?address={self.deposit_address}&uint256={self.amount_due(quote)}"
        )

    @property
    def success_redirect(self) -> str | None:
        """successUrl with QBitFlow's `{{UUID}}` and `{{TRANSACTION_TYPE}}` filled in."""
        if not self.success_url:
            return None
        kind = "subscription" if self.kind == "subscription" else "payment"
        return self.success_url.replace("{{UUID}}", self.uuid).replace("{{TRANSACTION_TYPE}}", kind)

    def fingerprint(self, language: str) -> str:
        """Changes exactly when what the card shows changes (then the message is edited)."""
        parts = [
            language,
            self.status,
            str(self.paid_usd),
            str(self.progress),
            repr(self.chosen),
            str(self.overpaid),
            str(self.late),
            str(self.subscription_status),
            str(self.subscription_period_end),
            str(self.trial_available),
            str(self.payg_start_available),
            str(self.bill_usd),
            str(self.bill_due_at),
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


async def touch_user(
    session: AsyncSession, telegram_user_id: int, *, now: datetime
) -> TelegramUser:
    """The person's row (made on first contact); writing to the bot again unblocks them."""
    user = await session.get(TelegramUser, telegram_user_id)
    if user is None:
        user = TelegramUser(telegram_user_id=telegram_user_id, created_at=now, updated_at=now)
        session.add(user)
        await session.flush()
    elif user.blocked_at is not None:
        user.blocked_at = None
        user.updated_at = now
    return user


async def set_language(
    session: AsyncSession, telegram_user_id: int, language: str | None, *, now: datetime
) -> None:
    user = await touch_user(session, telegram_user_id, now=now)
    user.language = language
    user.updated_at = now


async def set_reminders(
    session: AsyncSession, telegram_user_id: int, enabled: bool, *, now: datetime
) -> None:
    user = await touch_user(session, telegram_user_id, now=now)
    user.reminders = enabled
    user.updated_at = now


async def open_by_token(
    session: AsyncSession, token: str, *, telegram_user_id: int
) -> CheckoutSession:
    """The session behind a `botUrl`'s start token, bound to this payer on first open.

    Binding records the payer's Telegram id on the session (and on its customer when that
    has none), where the API, Papaya's `recipient` and webhooks show it.
    """
    checkout = await checkout_service.by_bot_token(session, token)
    if checkout.telegram_user_id is None:
        checkout = (await checkout_repository.lock_sessions(session, [checkout.id]))[checkout.id]
    if checkout.telegram_user_id is None:
        checkout.telegram_user_id = telegram_user_id
        if checkout.customer_id is not None:
            customer = await session.get(Customer, checkout.customer_id)
            if customer is not None and customer.telegram_user_id is None:
                customer.telegram_user_id = telegram_user_id
        await session.flush()
    elif checkout.telegram_user_id != telegram_user_id:
        raise NotYourSession()
    return checkout


async def owned_session(
    session: AsyncSession, session_id: int, *, telegram_user_id: int
) -> CheckoutSession:
    """A session a button refers to, only for the payer it belongs to."""
    checkout = await session.get(CheckoutSession, session_id)
    if checkout is None or checkout.telegram_user_id != telegram_user_id:
        raise NotYourSession()
    return checkout


async def choose_pair(
    session: AsyncSession, checkout: CheckoutSession, chain_id: int, contract: str
) -> None:
    """Record the network and token the payer picked (only the session's accepted pairs)."""
    quotes = await checkout_service.quotes_of(session, checkout)
    if not any(
        q.chain_id == chain_id and q.token_contract.lower() == contract.lower() for q in quotes
    ):
        raise PairNotAccepted()
    checkout.chosen_chain_id = chain_id
    checkout.chosen_token_contract = contract
    await session.flush()


async def clear_pair(session: AsyncSession, checkout: CheckoutSession) -> None:
    checkout.chosen_chain_id = None
    checkout.chosen_token_contract = None
    await session.flush()


async def cancel(session: AsyncSession, checkout: CheckoutSession, *, now: datetime) -> None:
    """The payer gives up an open session (as the merchant's cancel: money sent later is kept)."""
    await checkout_service.cancel_open_session(session, checkout, now=now)


async def start_trial(
    session: AsyncSession,
    context: CheckoutContext,
    checkout: CheckoutSession,
    *,
    telegram_user_id: int,
    now: datetime,
) -> Subscription:
    return await subscriptions_service.start_trial(
        session,
        checkout,
        now=now,
        telegram_user_id=telegram_user_id,
        policy=context.subscription_policy,
    )


async def fresh_session(
    session: AsyncSession, context: CheckoutContext, expired: CheckoutSession
) -> CheckoutSession:
    """A new session on the same terms as an expired one, for the same payer."""
    creator = (
        await session.get(User, expired.created_by_user_id)
        if expired.created_by_user_id is not None
        else None
    )
    principal = Principal(
        api_key_id=0,
        organization_id=expired.organization_id,
        user_id=creator.id if creator is not None else 0,
        role=Role(creator.role) if creator is not None else Role.USER,
        test=expired.test,
    )
    options = None
    if expired.kind == "subscription" and expired.frequency_seconds:
        trial = expired.trial_seconds
        options = SubscriptionOptionsIn.model_validate(
            {
                "subscriptionType": "subscription",
                "frequency": {"value": expired.frequency_seconds, "unit": "seconds"},
                "trialPeriod": {"value": trial, "unit": "seconds"} if trial else None,
                "minPeriods": expired.min_periods,
            }
        )
    data = SessionCreate(
        product_id=expired.product_id,
        product_name=None if expired.product_id else expired.product_name,
        description=None if expired.product_id else expired.description,
        price=None if expired.product_id else expired.price_usd,
        success_url=expired.success_url,
        cancel_url=expired.cancel_url,
        webhook_url=expired.webhook_url,
        options=options,
    )
    customer_uuid = None
    if expired.customer_id is not None:
        customer = await session.get(Customer, expired.customer_id)
        customer_uuid = customer.uuid if customer is not None else None
    if customer_uuid is not None:
        data = data.model_copy(update={"customer_uuid": customer_uuid})
    return await checkout_service.create_session(
        session,
        principal,
        context,
        data,
        source=expired.source,
        title=expired.title,
        message=expired.message,
        telegram_user_id=expired.telegram_user_id,
    )


async def progress(
    session: AsyncSession, context: CheckoutContext, checkout: CheckoutSession
) -> Progress:
    payments = list(
        await session.scalars(
            select(Payment).where(
                Payment.session_id == checkout.id,
                Payment.status != PaymentStatus.ORPHANED.value,
            )
        )
    )
    confirmed = sum(
        (p.amount_usd for p in payments if p.status == PaymentStatus.CONFIRMED.value), Decimal(0)
    )
    confirming = [p for p in payments if p.status == PaymentStatus.SEEN.value]
    least: tuple[int, int] | None = None
    for payment in confirming:
        chain = context.registry.get(payment.chain_id)
        head = await session.get(ChainHead, payment.chain_id)
        needed = (chain.confirmations if chain is not None else None) or 1
        have = max(
            0,
            (head.block_number if head is not None else payment.block_number)
            - payment.block_number
            + 1,
        )
        have = min(have, needed)
        if least is None or have < least[0]:
            least = (have, needed)
    return Progress(
        confirmed_usd=confirmed,
        confirming_usd=sum((p.amount_usd for p in confirming), Decimal(0)),
        confirmations=least,
    )


async def card(
    session: AsyncSession, context: CheckoutContext, checkout: CheckoutSession, *, now: datetime
) -> PaymentCard:
    """The session as its payer's card shows it now."""
    organization = await session.get(Organization, checkout.organization_id)
    quotes: list[CardQuote] = []
    for q in await checkout_service.quotes_of(session, checkout):
        chain = context.registry.get(q.chain_id)
        quotes.append(_card_quote(q, chain.name if chain is not None else str(q.chain_id)))
    chosen = next(
        (
            q
            for q in quotes
            if q.chain_id == checkout.chosen_chain_id
            and checkout.chosen_token_contract is not None
            and q.contract.lower() == checkout.chosen_token_contract.lower()
        ),
        None,
    )
    subscription = await session.scalar(
        select(Subscription).where(Subscription.session_id == checkout.id)
    )
    trial_available = bool(
        checkout.kind == "subscription"
        and checkout.trial_seconds
        and subscription is None
        and SessionStatus(checkout.status) in OPEN_STATUSES
        and checkout.expires_at > now
        and checkout.paid_usd == 0
        # One trial per Telegram user per product: not offered to someone who had one.
        and not await _payer_had(session, checkout, Subscription.trial_ends_at.is_not(None))
    )
    payg_start_available = bool(
        checkout.payg
        and subscription is None
        and SessionStatus(checkout.status) in OPEN_STATUSES
        and checkout.expires_at > now
        # One pay-as-you-go start per Telegram user per product.
        and not await _payer_had(session, checkout, Subscription.payg.is_(True))
    )
    bill_usd: Decimal | None = None
    bill_due_at: datetime | None = None
    if subscription is not None:
        owed = await subscriptions_service.amount_due(session, subscription)
        if owed > 0:
            bill_usd = owed
            bill_due_at = subscription.bill_due_at or subscription.current_period_end
    remaining = max(Decimal(0), checkout.price_usd - checkout.paid_usd)
    return PaymentCard(
        session_id=checkout.id,
        uuid=checkout.uuid,
        organization=organization.name if organization is not None else "",
        product=checkout.product_name,
        description=checkout.description,
        price_usd=checkout.price_usd,
        kind=checkout.kind,
        frequency_seconds=checkout.frequency_seconds,
        trial_seconds=checkout.trial_seconds,
        trial_available=trial_available,
        status=checkout.status,
        paid_usd=checkout.paid_usd,
        remaining_usd=remaining,
        overpaid=checkout.overpaid,
        late=checkout.late,
        expires_at=checkout.expires_at,
        deposit_address=checkout.deposit_address,
        link=context.link(checkout.uuid),
        success_url=checkout.success_url,
        quotes=tuple(quotes),
        chosen=chosen,
        progress=await progress(session, context, checkout),
        subscription_status=subscription.status if subscription is not None else None,
        subscription_period_end=subscription.current_period_end if subscription else None,
        test=checkout.test,
        payg=checkout.payg,
        payg_start_available=payg_start_available,
        free_credits_usd=checkout.free_credits_usd,
        bill_usd=bill_usd,
        bill_due_at=bill_due_at,
    )


async def _payer_had(
    session: AsyncSession, checkout: CheckoutSession, kind: ColumnElement[bool]
) -> bool:
    """Whether the session's Telegram payer already had a subscription of this kind (a trial,
    pay-as-you-go) to the session's product."""
    if checkout.telegram_user_id is None or checkout.product_id is None:
        return False
    found = await session.scalar(
        select(Subscription.id)
        .where(
            Subscription.organization_id == checkout.organization_id,
            Subscription.product_id == checkout.product_id,
            Subscription.telegram_user_id == checkout.telegram_user_id,
            kind,
        )
        .limit(1)
    )
    return found is not None


def _card_quote(quote: SessionQuote, chain_name: str) -> CardQuote:
    return CardQuote(
        chain_id=quote.chain_id,
        chain_name=chain_name,
        symbol=quote.token_symbol,
        contract=quote.token_contract,
        decimals=quote.decimals,
        amount_base_units=int(quote.amount_base_units),
        amount=base_units_to_tokens(int(quote.amount_base_units), decimals=quote.decimals),
    )


async def subscriptions_of(
    session: AsyncSession, telegram_user_id: int
) -> list[tuple[Subscription, str]]:
    """The person's subscriptions, newest first, with their product's name."""
    rows = await session.execute(
        select(Subscription, Product.name)
        .join(Product, Product.id == Subscription.product_id)
        .where(Subscription.telegram_user_id == telegram_user_id)
        .order_by(Subscription.id.desc())
        .limit(20)
    )
    return [(subscription, name) for subscription, name in rows]


async def owned_subscription(
    session: AsyncSession, subscription_id: int, *, telegram_user_id: int
) -> Subscription:
    subscription = await session.get(Subscription, subscription_id)
    if subscription is None or subscription.telegram_user_id != telegram_user_id:
        raise NotYourSession()
    return subscription


async def cancel_subscription(
    session: AsyncSession, subscription_id: int, *, telegram_user_id: int, now: datetime
) -> Subscription:
    """The subscriber stops renewing, as the merchant's end-of-period cancel does: no more
    renewal requests, access kept until the paid period ends (a trial or a past-due one has no
    paid time left: it ends now); `minPeriods` is honoured. Only the subscriber may."""
    subscription = await owned_subscription(
        session, subscription_id, telegram_user_id=telegram_user_id
    )
    # The subscriber is no merchant: the service is asked on behalf of the subscription's own
    # organization and mode, the ownership having been checked above.
    principal = Principal(
        api_key_id=0,
        organization_id=subscription.organization_id,
        user_id=subscription.created_by_user_id or 0,
        role=Role.ADMIN,
        test=subscription.test,
    )
    return await subscriptions_service.cancel(
        session, principal, subscription.uuid, force=False, now=now, at_period_end=True
    )
