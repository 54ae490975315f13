"""`AppError` mapped once to a friendly, translated message; anything else is logged and
answered with a generic apology."""

from __future__ import annotations

from typing import Final

import structlog
from aiogram import Router
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


async def _reply(event: ErrorEvent, text: str) -> None:
    update = event.update
    if update.callback_query is not None:
        await update.callback_query.answer(text[:200], show_alert=True)
    elif update.message is not None:
        await update.message.answer(text)


@router.error(ExceptionTypeFilter(AppError))
async def app_error(event: ErrorEvent) -> None:
    assert isinstance(event.exception, AppError)
    await _reply(event, message_for(event.exception))


@router.error()
async def unexpected(event: ErrorEvent) -> None:
    log.error("bot_handler_failed", error=repr(event.exception), update_id=event.update.update_id)
    await _reply(event, _("error.unexpected"))
