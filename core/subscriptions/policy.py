"""The lifecycle's defaults (settings), apart so that the checkout context can carry them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

DEFAULT_LEAD = timedelta(days=3)
DEFAULT_GRACE = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class Policy:
    """How long before a period end the renewal is asked for, and the grace after it (a product
    may set its own grace); each at most a third of the subscription's period."""

    lead: timedelta = DEFAULT_LEAD
    grace: timedelta = DEFAULT_GRACE
