"""The bot's catalogs: every text the code asks for exists in English and Russian with the same
placeholders, and the compiled .mo files aiogram loads are the .po sources compiled."""

from __future__ import annotations

import gettext
import io
import re
import string
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.handlers.merchant import NEEDED_RIGHTS
from bot.runner import COMMANDS
from core.checkout.state import SessionStatus
from core.i18n import LANGUAGES, LOCALES_DIR

BOT_DIR = Path(__file__).resolve().parents[2] / "bot"
# The checkout page reads the same catalogs: its templates and code are scanned too.
PAGE_DIR = Path(__file__).resolve().parents[2] / "api" / "checkout_page"
SUBSCRIPTION_STATUSES = ("trial", "active", "past_due", "cancelled", "expired")
MERCHANT_EVENTS = (
    "session.completed",
    "subscription.created",
    "subscription.renewed",
    "subscription.cancelled",
    "subscription.expired",
    "webhook.endpoint_disabled",
)


def catalog(language: str) -> dict[str, str]:
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        parsed = read_po(source)
    return {str(m.id): str(m.string) for m in parsed if m.id}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def keys_in_code() -> set[str]:
    """Literal keys the bot's code and the checkout page pass to gettext, and the families
    they build from values."""
    prefixes = {key.split(".")[0] for key in catalog("en")}
    literal = re.compile(r'"((?:' + "|".join(sorted(prefixes)) + r')\.[A-Za-z_.]+)"')
    found = set()
    sources = [*BOT_DIR.rglob("*.py"), *PAGE_DIR.rglob("*.py"), *PAGE_DIR.rglob("*.html")]
    for path in sources:
        for key in literal.findall(path.read_text()):
            if not key.endswith((".", "_", ".html")):  # (a template's name is no key)
                found.add(key)
    found |= {f"status.{s.value}" for s in SessionStatus}
    found |= {f"card.subscription_{s}" for s in SUBSCRIPTION_STATUSES}
    found |= {f"subscription_status.{s}" for s in SUBSCRIPTION_STATUSES}
    found |= {f"language.name.{code}" for code in LANGUAGES}
    found |= {f"right.{right}" for right in NEEDED_RIGHTS}
    found |= {f"command.{name}" for name in COMMANDS}
    found |= {f"merchant.{event}" for event in MERCHANT_EVENTS}
    found |= {f"button.reminders_{state}" for state in ("on", "off")}
    found |= {f"answer.reminders_{state}" for state in ("on", "off")}
    found |= {f"subscriptions.reminders_{state}" for state in ("on", "off")}
    return found


def test_the_checkout_page_keys_are_scanned() -> None:
    used = keys_in_code()
    assert {"page.copy", "page.not_found_title", "card.status_partial", "card.warnings"} <= used


def test_every_key_the_code_uses_is_translated_in_every_language() -> None:
    used = keys_in_code()
    assert len(used) > 80  # the scan found the code's keys (not an empty set passing vacuously)
    for language in LANGUAGES:
        texts = catalog(language)
        missing = sorted(k for k in used if not texts.get(k))
        assert missing == [], f"{language}: {missing}"


def test_languages_have_the_same_keys_and_placeholders() -> None:
    english = catalog("en")
    for language in LANGUAGES:
        texts = catalog(language)
        assert set(texts) == set(english), language
        for key, text in texts.items():
            assert placeholders(text) == placeholders(english[key]), (language, key)
            # Formats with its own placeholders: no stray braces.
            text.format(**dict.fromkeys(placeholders(text), "x"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalogs_are_the_sources_compiled(language: str) -> None:
    directory = LOCALES_DIR / language / "LC_MESSAGES"
    with (directory / "messages.po").open("rb") as source:
        compiled = io.BytesIO()
        write_mo(compiled, read_po(source))
    expected = gettext.GNUTranslations(io.BytesIO(compiled.getvalue()))
    with (directory / "messages.mo").open("rb") as shipped:
        actual = gettext.GNUTranslations(shipped)
    # Stale .mo: run `pybabel compile -d core/locales -D messages` after editing a .po.
    assert actual._catalog == expected._catalog  # type: ignore[attr-defined]
