"""What the checkout page reads and the one thing it writes (a Telegram claim token), through
the core services the bot uses: the payer's card (core/telegram/payer.py), the outbox, claims."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.checkout_page.view import PageData, PageQuery, render_live
from core.checkout.context import CheckoutContext
from core.checkout.state import SessionStatus
from core.events.wakeup import WAKEUP
from core.models import CheckoutSession, Event, Subscription
from core.telegram import claims, mini_app
from core.telegram import payer as payer_service

# How often the stream looks again without a wake-up (commits of other processes, the
# confirmations count growing with the chain head), and how long one stream lasts before
# the browser's EventSource reconnects (a proxy or a replica going away costs nothing then).
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 300.0


async def _claimable_subscription(
    session: AsyncSession, context: CheckoutContext, checkout: CheckoutSession
) -> Subscription | None:
    """The session's paid subscription, when a bot can bind it and nobody has yet."""
    if (
        context.bot_username is None
        or checkout.kind != "subscription"
        or checkout.status != SessionStatus.COMPLETED.value
    ):
        return None
    subscription = await session.scalar(
        select(Subscription).where(Subscription.session_id == checkout.id)
    )
    if subscription is None or subscription.telegram_user_id is not None:
        return None
    return subscription


async def page_data(
    session: AsyncSession, context: CheckoutContext, checkout: CheckoutSession, *, now: datetime
) -> PageData:
    """The session as its payer's page shows it now."""
    card = await payer_service.card(session, context, checkout, now=now)
    return PageData(
        card=card,
        bot_url=context.bot_url(checkout.bot_token),
        cancel_url=checkout.cancel_url,
        claimable=await _claimable_subscription(session, context, checkout) is not None,
    )


async def claim_link(
    session: AsyncSession, context: CheckoutContext, checkout: CheckoutSession, *, now: datetime
) -> str | None:
    """A one-time `https://t.me/<bot>?start=claim-<token>` binding the session's paid
    subscription to whoever opens it; None when there is nothing to bind."""
    subscription = await _claimable_subscription(session, context, checkout)
    if subscription is None:
        return None
    token = await claims.create(session, subscription, now=now)
    return context.bot_url(f"claim-{token}")


async def live_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    context: CheckoutContext,
    session_id: int,
    query: PageQuery,
    *,
    last_event_id: int = 0,
) -> AsyncIterator[str]:
    """Server-Sent Events for one session's page: `status` whenever what it shows changes
    (woken by this process's commits, else every POLL_SECONDS: the session's events after the
    last seen id and the payer's progress are read again), `end` once the state is final."""
    sent: str | None = None
    quiet_since = started = time.monotonic()
    with WAKEUP.listen() as listener:
        while True:
            listener.clear()
            async with sessionmaker() as session:
                checkout = await session.get(CheckoutSession, session_id)
                if checkout is None:
                    return
                newest = await session.scalar(
                    select(func.max(Event.id)).where(
                        Event.session_id == session_id, Event.id > last_event_id
                    )
                )
                data = await page_data(session, context, checkout, now=context.clock.now())
            last_event_id = newest or last_event_id
            live = render_live(data, query, context.clock.now())
            if live.fingerprint != sent:
                sent = live.fingerprint
                quiet_since = time.monotonic()
                yield f"id: {last_event_id}\nevent: status\ndata: {_json(live.payload())}\n\n"
            elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            if live.final:
                yield "event: end\ndata: {}\n\n"
                return
            if time.monotonic() - started >= STREAM_SECONDS:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.wait(), POLL_SECONDS)


def _json(payload: dict[str, object]) -> str:
    # One line: SSE data may not hold a raw newline (the HTML's are escaped as \n).
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


async def bind_telegram(
    session: AsyncSession,
    checkout: CheckoutSession,
    init_data: str,
    *,
    bot_token: str | None,
    now: datetime,
) -> int:
    """Bind the session to the Telegram user of a Mini App's initData (signed with the bot
    token, fresh), exactly as `/start` with its botUrl token does. Returns the user id."""
    user_id = mini_app.telegram_user_of(init_data, bot_token=bot_token, now=now)
    await payer_service.touch_user(session, user_id, now=now)
    await payer_service.open_by_token(session, checkout.bot_token, telegram_user_id=user_id)
    return user_id
