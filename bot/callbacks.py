"""Every inline button's data, as aiogram CallbackData factories (Telegram allows 64 bytes).

Buttons name sessions and subscriptions by id; every handler checks that the object belongs to
the person pressing (`core.telegram.payer.owned_session`), so a forged or forwarded button
does nothing for a stranger.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class PickChain(CallbackData, prefix="pc"):
    session_id: int
    chain_id: int


class PickToken(CallbackData, prefix="pt"):
    session_id: int
    chain_id: int
    symbol: str


class CardAction(CallbackData, prefix="ca"):
    """status, change (network), cancel, trial, fresh (a new session for an expired one)."""

    session_id: int
    action: str


class SetLanguage(CallbackData, prefix="lang"):
    code: str


class SubscriptionAction(CallbackData, prefix="sa"):
    """renew, cancel (at the period end), reminders_on, reminders_off."""

    subscription_id: int
    action: str


class InvoicesPage(CallbackData, prefix="ip"):
    page: int


class SubLinkProduct(CallbackData, prefix="sp"):
    product_id: int


class SubLinkPeriod(CallbackData, prefix="sq"):
    product_id: int
    days: int
