"""`AppError` mapped once to a friendly, translated message; Telegram's flood control (a 429
longer than the card code waits out itself) answered with when to try again; anything else is
logged and answered with a generic apology. An answer Telegram refuses is only logged."""

from __future__ import annotations

import contextlib
from typing import Final

import structlog
from aiogram import Router
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import gettext as _

from core.errors import AppError

router: Final = Router(name=__name__)
log = structlog.get_logger(__name__)


def message_for(error: AppError) -> str:
    """The catalog's `error.<code>.<param>`, else `error.<code>`, else the error's own text."""
    keys = [f"error.{error.code}.{error.param}"] if error.param else []
    for key in [*keys, f"error.{error.code}"]:
        text = _(key)
        if text != key:
            return text
    return error.message


async def _reply(event: ErrorEvent, text: str, *, message: bool = True) -> None:
    update = event.update
    with contextlib.suppress(TelegramAPIError):  # blocked, flooded, too old: nothing to do
        if update.callback_query is not None:
            await update.callback_query.answer(text[:200], show_alert=True)
        elif update.message is not None and message:
            await update.message.answer(text)


@router.error(ExceptionTypeFilter(AppError))
async def app_error(event: ErrorEvent) -> None:
    assert isinstance(event.exception, AppError)
    await _reply(event, message_for(event.exception))


@router.error(ExceptionTypeFilter(TelegramRetryAfter))
async def flood_control(event: ErrorEvent) -> None:
    """Telegram wants a pause: a pressed button is told how long (answering a callback query
    is not what is limited); a message gets no reply, which would hit the same limit."""
    assert isinstance(event.exception, TelegramRetryAfter)
    seconds = event.exception.retry_after
    log.warning("bot_handler_retry_after", seconds=seconds, update_id=event.update.update_id)
    await _reply(event, _("error.retry_after").format(seconds=seconds), message=False)


@router.error()
async def unexpected(event: ErrorEvent) -> None:
    log.error("bot_handler_failed", error=repr(event.exception), update_id=event.update.update_id)
    await _reply(event, _("error.unexpected"))
