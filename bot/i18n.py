"""The bot's languages: the gettext catalogs of core/locales (English, Russian), chosen per user.

Every user-visible text is a catalog entry whose msgid is a key (`card.pay_exactly`), so no
text lives in code; English is the fallback. A person's language is what they chose with
/language, else the `language_code` Telegram sends, else English.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware

from core.i18n import DEFAULT_LANGUAGE, DOMAIN, LANGUAGES, LOCALES_DIR, language_of

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "create_i18n", "in_language", "language_of"]



def create_i18n() -> I18n:
    return I18n(path=LOCALES_DIR, default_locale=DEFAULT_LANGUAGE, domain=DOMAIN)


class ChainpayI18nMiddleware(I18nMiddleware):
    """The person's chosen language (the database middleware loads it as `language`), else
    their Telegram client's."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        chosen = data.get("language")
        if isinstance(chosen, str) and chosen in LANGUAGES:
            return chosen
        user: User | None = data.get("event_from_user")
        return language_of(user.language_code if user is not None else None)


@contextmanager
def in_language(i18n: I18n, language: str) -> Iterator[None]:
    """Texts in `language` outside a handler too (the sender, start-up): aiogram's gettext
    needs the I18n instance set as current, which only its middleware does for handlers."""
    with i18n.context(), i18n.use_locale(language if language in LANGUAGES else DEFAULT_LANGUAGE):
        yield
