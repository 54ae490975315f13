"""Mini App initData: accepted exactly when Telegram's signature checks out (aiogram's own
checker is the second opinion), fresh, and naming a user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiogram.utils.web_app import check_webapp_signature

from core.telegram.mini_app import InitDataRefused, telegram_user_of
from tests.harness.mini_app import signed_init_data

TOKEN = "4242:MINI-APP-UNIT"


def test_signed_init_data_names_its_user_and_aiogram_agrees() -> None:
    init_data = signed_init_data(9001, token=TOKEN)
    assert check_webapp_signature(TOKEN, init_data)
    assert telegram_user_of(init_data, bot_token=TOKEN, now=datetime.now(UTC)) == 9001


@pytest.mark.parametrize(
    "init_data",
    [
        signed_init_data(9001, token="4242:ANOTHER-BOT"),
        signed_init_data(9001, token=TOKEN).replace("Ann", "Eve"),
        signed_init_data(9001, token=TOKEN).split("&hash=")[0],
        "",
        "no=hash",
        "%%%",
    ],
)
def test_forged_or_tampered_init_data_is_refused(init_data: str) -> None:
    assert not check_webapp_signature(TOKEN, init_data)
    with pytest.raises(InitDataRefused) as refused:
        telegram_user_of(init_data, bot_token=TOKEN, now=datetime.now(UTC))
    assert refused.value.param == "initData"


def test_stale_or_future_init_data_is_refused_and_no_token_refuses_all() -> None:
    now = datetime.now(UTC)
    for signed_at in (now - timedelta(hours=2), now + timedelta(hours=1)):
        init_data = signed_init_data(9001, token=TOKEN, signed_at=signed_at)
        with pytest.raises(InitDataRefused):
            telegram_user_of(init_data, bot_token=TOKEN, now=now)
    with pytest.raises(InitDataRefused):
        telegram_user_of(signed_init_data(9001, token=TOKEN), bot_token=None, now=now)
