"""Every event type chainpay emits, with the description `GET /v1/webhooks/event-types` shows."""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "session.completed": "A checkout session is fully paid with final payments.",
    "session.expired": "A checkout session passed expiresAt without being fully paid.",
    "session.cancelled": "A checkout session was cancelled by the merchant.",
    "session.underpaid": "Final payments to a session add up to less than its price.",
    "session.overpaid": "A completed session received more than its price.",
    "payment.detected": "A transfer to a deposit address was seen on chain (not final yet).",
    "payment.confirmed": "A payment reached the chain's finality and is credited.",
    "payment.orphaned": "A detected payment was removed by a chain reorganization.",
    "payment.late": "A payment arrived after its session expired or was cancelled; recorded.",
    "subscription.created": "A subscription started (first payment or trial).",
    "subscription.renewed": "A payment extended a subscription by one or more periods.",
    "subscription.renewal_due": "A subscription's next billing date is near.",
    "subscription.past_due": "A subscription's billing date passed without payment.",
    "subscription.expired": "A subscription ended after its grace period.",
    "subscription.cancelled": "A subscription was cancelled.",
    "webhook.test": "A test delivery requested for one endpoint.",
    "webhook.endpoint_disabled": "An endpoint was disabled (410 Gone or retries kept exhausting).",
}

SESSION_EVENT_PREFIXES = ("session.", "payment.")
