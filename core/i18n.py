"""The languages payers read: gettext catalogs in core/locales (English, Russian).

The bot and the checkout page show the same texts, so the catalogs live here, beside the
domain both front doors share. Every user-visible text is a catalog entry whose msgid is a
key (`card.pay_exactly`); English is the fallback.
"""

from __future__ import annotations

from pathlib import Path

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"


def language_of(code: str | None) -> str:
    """One of LANGUAGES for a language tag (`ru`, `ru-RU`, `en-GB`, None)."""
    base = (code or "").split("-")[0].strip().lower()
    return base if base in LANGUAGES else DEFAULT_LANGUAGE
