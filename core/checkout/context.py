"""What the checkout domain needs from configuration, resolved once per process."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from core.chains import ChainRegistry
from core.clock import Clock, SystemClock
from core.config import Settings
from core.subscriptions.policy import Policy
from core.webhooks.ssrf import Resolve, system_resolve


@dataclass(frozen=True)
class CreatedSession:
    """A session just created (its transaction committed), for `on_session_created`."""

    uuid: str
    link: str
    test: bool
    organization_id: int
    # (chain id, token symbol) of each accepted token, in the order the amounts are listed.
    accepted: tuple[tuple[int, str], ...]


SessionCreatedHook = Callable[[CreatedSession], None]


@dataclass(frozen=True)
class CheckoutContext:
    registry: ChainRegistry
    lifetime: timedelta
    tolerance_usd: Decimal
    public_url: str
    bot_username: str | None
    # Where a session's own webhookUrl may point (checked like a webhook endpoint's URL).
    webhooks_allow_private: bool = False
    resolve: Resolve = field(default=system_resolve, compare=False)
    # (chain id, lower-case contract) -> Currency id; ids never change once assigned.
    currency_ids: dict[tuple[int, str], int] = field(default_factory=dict, compare=False)
    # The process's one source of `now` for decisions (expiry, lateness, settlement times).
    clock: Clock = field(default_factory=SystemClock, compare=False)
    # Subscriptions on the clock: renewal lead time and grace (core/subscriptions/lifecycle.py).
    subscription_policy: Policy = field(default_factory=Policy)
    # Told of each new session once it is committed (the devnet's "how to pay it" log line);
    # set by the composition root, None in production.
    on_session_created: SessionCreatedHook | None = field(default=None, compare=False)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        decimals: Mapping[tuple[int, str], int] | None = None,
        bot_username: str | None = None,
        clock: Clock | None = None,
    ) -> CheckoutContext:
        """`decimals` and `bot_username` are what start-up learned from the chains and getMe."""
        return cls(
            registry=settings.chain_registry(decimals),
            lifetime=timedelta(minutes=settings.session_lifetime_minutes),
            tolerance_usd=settings.underpayment_tolerance_usd,
            public_url=settings.public_url,
            bot_username=(settings.telegram_bot_username or bot_username or "").lstrip("@") or None,
            webhooks_allow_private=settings.webhooks_allow_private,
            clock=clock or SystemClock(),
            subscription_policy=Policy(
                lead=timedelta(hours=settings.subscription_renewal_lead_hours),
                grace=timedelta(hours=settings.subscription_grace_hours),
            ),
        )

    def link(self, uuid: str) -> str:
        return f"{self.public_url}/pay/{uuid}"

    def bot_url(self, token: str) -> str | None:
        return f"https://t.me/{self.bot_username}?start={token}" if self.bot_username else None
