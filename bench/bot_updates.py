"""Benchmark: updates per second through chainpay's bot against aiogram's minimal echo bot.

    python bench/bot_updates.py [--updates 2000] [--database-url URL] [--rounds 3] [--json PATH]

Both run the real aiogram polling loop against the fake Bot API server (tests/harness, real
HTTP on loopback), fed the same number of text updates from distinct users:
(a) baseline: a Dispatcher with one handler that answers every message with its text;
(b) chainpay: `bot.runner.run_bot` (database middleware, the person's row, i18n, the routers,
    the event consumer and the outbox sender beside it) answering `/help` from each user; the
    users write once untimed (first contact makes their row), then the timed pass.
Timed from the first update fed to the last answer recorded by the server; b/a per round and
the median. The fake server is shared by both and costs the same in each. `--json PATH` writes
the figures machine-readably (for `python -m bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import steal_seconds  # noqa: E402  (bench/machine.py)

from bot.runner import run_bot  # noqa: E402
from chainpay.migrations import upgrade  # noqa: E402
from core.checkout.context import CheckoutContext  # noqa: E402
from core.config import Settings  # noqa: E402
from core.db import create_engine, create_sessionmaker  # noqa: E402
from tests.harness.fake_telegram import FakeTelegram, fake_telegram  # noqa: E402

TOKEN = "4242:BENCH-TOKEN"


async def _drive(fake: FakeTelegram, updates: int, first_user: int, text: str) -> float:
    mark = fake.mark()
    users = [fake.user(first_user + n, f"U{n}") for n in range(updates)]
    started = time.perf_counter()
    for user in users:
        fake.send_text(user, text)
    await fake.await_count("sendMessage", updates, after=mark, timeout=600)
    return time.perf_counter() - started


async def echo_bot(base: str, fake: FakeTelegram, updates: int, first_user: int) -> float:
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base)))
    polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False))
    try:
        await fake.await_call("getUpdates")
        return await _drive(fake, updates, first_user, "hello")
    finally:
        await dispatcher.stop_polling()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
        await bot.session.close()


async def chainpay_bot(
    base: str, fake: FakeTelegram, database_url: str, updates: int, first_user: int
) -> float:
    settings = Settings(database_url=database_url, chains=[], telegram_bot_username="bench_bot")
    engine = create_engine(database_url)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_bot(
            TOKEN, base, create_sessionmaker(engine), CheckoutContext.from_settings(settings), stop
        )
    )
    try:
        await fake.await_call("getUpdates")
        # People who wrote before (their row exists): the usual case; first contact is a write.
        await _drive(fake, updates, first_user, "/help")
        return await _drive(fake, updates, first_user, "/help")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (JSON)")
    args = parser.parse_args()
    database_url = args.database_url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bot.db'}"
    await asyncio.to_thread(upgrade, database_url)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {database_url.split(':')[0]}, {args.updates} updates a run"
    )
    ratios = []
    rounds = []
    with fake_telegram(TOKEN) as (base, fake):
        for round_ in range(args.rounds):
            stolen = steal_seconds()
            a = await echo_bot(base, fake, args.updates, 10_000_000 + round_ * args.updates)
            b = await chainpay_bot(
                base, fake, database_url, args.updates, 20_000_000 + round_ * args.updates
            )
            stolen = steal_seconds() - stolen
            ratio = (args.updates / b) / (args.updates / a)
            ratios.append(ratio)
            rounds.append(
                {
                    "echo_updates_per_s": round(args.updates / a, 1),
                    "chainpay_updates_per_s": round(args.updates / b, 1),
                    "ratio": round(ratio, 4),
                    "steal_s": round(stolen, 2),
                }
            )
            print(
                f"round {round_ + 1}: (a) echo bot {args.updates / a:,.0f} updates/s, "
                f"(b) chainpay {args.updates / b:,.0f} updates/s, b/a = {ratio:.2f} "
                f"(steal {stolen:.2f} s)"
            )
    print(f"b/a median over {len(ratios)} rounds = {statistics.median(ratios):.2f}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "database": database_url.split(":")[0].split("+")[0],
                    "parameters": {"updates": args.updates, "rounds": args.rounds},
                    "echo_updates_per_s_median": statistics.median(
                        r["echo_updates_per_s"] for r in rounds
                    ),
                    "chainpay_updates_per_s_median": statistics.median(
                        r["chainpay_updates_per_s"] for r in rounds
                    ),
                    "ratio_median": round(statistics.median(ratios), 4),
                    "rounds": rounds,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    asyncio.run(main())
