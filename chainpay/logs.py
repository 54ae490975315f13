"""structlog set-up: one line per event, never secrets (keys and passwords are not logged)."""

from __future__ import annotations

import logging

import structlog


def configure_logging(level: str) -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, format="%(message)s")
    # Libraries that narrate every request or migration step speak only when something is wrong.
    for noisy in ("httpx", "httpcore", "alembic", "web3"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
    )
