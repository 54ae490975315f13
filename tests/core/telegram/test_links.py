"""Linking a merchant's Telegram account: a one-time code, stored hashed, valid 10 minutes,
redeemed once (also when two redeems race on PostgreSQL), carrying the mode it was made in.

On the suite's database (SQLite or PostgreSQL); each test makes its own organization.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db import create_engine, create_sessionmaker, transaction
from core.models import TelegramLinkCode, TelegramMerchant, User
from core.orgs import service as orgs_service
from core.orgs.schemas import Principal, Role, UserCreate
from core.telegram import links
from core.telegram.exceptions import LinkCodeInvalid
from tests.harness.databases import suite_backend
from tests.harness.factories import Tenant, make_tenant, unique_email

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
_telegram_ids = count(7_000_000_001)


def telegram_user() -> int:
    return next(_telegram_ids)


@dataclass
class Db:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    tenant: Tenant

    async def code(self, *, test: bool = False, user_id: int | None = None) -> str:
        async with transaction(self.sessionmaker) as session:
            link = await links.create_link_code(
                session,
                organization_id=self.tenant.organization_id,
                user_id=user_id or self.tenant.owner_id,
                test=test,
                now=NOW,
            )
        return link.code

    async def redeem(
        self, code: str, telegram_user_id: int, *, now: datetime = NOW
    ) -> TelegramMerchant:
        async with transaction(self.sessionmaker) as session:
            return await links.redeem_link_code(
                session, code, telegram_user_id=telegram_user_id, now=now
            )

    async def merchant(self, telegram_user_id: int) -> TelegramMerchant | None:
        async with self.sessionmaker() as session:
            return await links.merchant_of(session, telegram_user_id)

    async def member(self, role: Role = Role.USER) -> int:
        owner = Principal(0, self.tenant.organization_id, self.tenant.owner_id, Role.OWNER, False)
        async with transaction(self.sessionmaker) as session:
            user = await orgs_service.create_user(
                session,
                owner,
                UserCreate(
                    name="Member",
                    last_name="M",
                    email=unique_email("member"),
                    password="long enough password",
                    role=role,
                ),
            )
            return user.id


@pytest.fixture
def tenant(database_url: str) -> Tenant:
    return make_tenant(database_url, wallet=False)


@pytest.fixture
async def db(database_url: str, tenant: Tenant) -> AsyncIterator[Db]:
    engine = create_engine(database_url)
    try:
        yield Db(engine, create_sessionmaker(engine), tenant)
    finally:
        await engine.dispose()


async def test_a_code_links_the_account_to_its_user_and_organization(db: Db) -> None:
    code = await db.code()
    telegram_id = telegram_user()

    merchant = await db.redeem(code, telegram_id)

    assert (merchant.telegram_user_id, merchant.organization_id, merchant.user_id) == (
        telegram_id,
        db.tenant.organization_id,
        db.tenant.owner_id,
    )
    assert merchant.test is False
    assert merchant.linked_at == NOW
    stored = await db.merchant(telegram_id)
    assert stored is not None
    assert stored.user_id == db.tenant.owner_id


async def test_a_code_is_ten_unambiguous_characters_valid_ten_minutes(db: Db) -> None:
    async with transaction(db.sessionmaker) as session:
        link = await links.create_link_code(
            session,
            organization_id=db.tenant.organization_id,
            user_id=db.tenant.owner_id,
            test=False,
            now=NOW,
        )
    assert len(link.code) == 10
    assert set(link.code) <= set(links.LINK_CODE_ALPHABET)
    assert not set(link.code) & set("0O1IL")
    assert link.expires_at == NOW + timedelta(minutes=10)


async def test_a_code_typed_in_lower_case_with_spaces_still_works(db: Db) -> None:
    code = await db.code()
    typed = f" {code[:5].lower()} {code[5:].lower()} "
    merchant = await db.redeem(typed, telegram_user())
    assert merchant.user_id == db.tenant.owner_id


async def test_a_code_works_once_even_for_the_same_telegram_user(db: Db) -> None:
    code = await db.code()
    first, second = telegram_user(), telegram_user()
    await db.redeem(code, first)

    for telegram_id in (first, second):
        with pytest.raises(LinkCodeInvalid):
            await db.redeem(code, telegram_id)
    assert await db.merchant(second) is None


async def test_an_expired_code_is_refused_and_links_nothing(db: Db) -> None:
    code = await db.code()
    telegram_id = telegram_user()

    with pytest.raises(LinkCodeInvalid):
        await db.redeem(code, telegram_id, now=NOW + links.LINK_CODE_TTL)
    assert await db.merchant(telegram_id) is None
    # One second before the end it still works (the refused attempt did not use it up).
    merchant = await db.redeem(
        code, telegram_id, now=NOW + links.LINK_CODE_TTL - timedelta(seconds=1)
    )
    assert merchant.telegram_user_id == telegram_id


async def test_unknown_used_and_expired_codes_get_the_same_answer(db: Db) -> None:
    used = await db.code()
    await db.redeem(used, telegram_user())
    expired = await db.code()
    answers = []
    for code, now in [
        ("ABCDEFGHJK", NOW),
        ("", NOW),
        ("x" * 500, NOW),
        ("ÄÖÜ", NOW),
        (used, NOW),
        (expired, NOW + timedelta(hours=1)),
    ]:
        with pytest.raises(LinkCodeInvalid) as refused:
            await db.redeem(code, telegram_user(), now=now)
        answers.append((refused.value.status_code, refused.value.code, refused.value.message))
    assert len(set(answers)) == 1
    assert answers[0][:2] == (400, "link_code_invalid")


async def test_only_the_codes_hash_is_stored(db: Db) -> None:
    code = await db.code()
    async with db.sessionmaker() as session:
        rows = (await session.execute(text("SELECT * FROM telegram_link_codes"))).all()
        mine = await session.scalar(
            select(TelegramLinkCode).where(
                TelegramLinkCode.code_hash == hashlib.sha256(code.encode()).hexdigest()
            )
        )
    assert mine is not None
    assert mine.user_id == db.tenant.owner_id
    for row in rows:
        for value in row:
            assert code.lower() not in str(value).lower()


async def test_a_test_mode_code_makes_a_test_merchant(db: Db) -> None:
    telegram_id = telegram_user()
    merchant = await db.redeem(await db.code(test=True), telegram_id)
    assert merchant.test is True

    async with db.sessionmaker() as session:
        principal = await links.merchant_principal(session, telegram_id)
        test_merchants = await links.merchants_of_organization(
            session, db.tenant.organization_id, test=True
        )
        live_merchants = await links.merchants_of_organization(
            session, db.tenant.organization_id, test=False
        )
    assert principal is not None
    assert principal.test is True
    assert [m.telegram_user_id for m in test_merchants] == [telegram_id]
    assert telegram_id not in [m.telegram_user_id for m in live_merchants]


async def test_relinking_moves_the_account_to_the_new_user_and_mode(db: Db) -> None:
    telegram_id = telegram_user()
    await db.redeem(await db.code(), telegram_id)
    member_id = await db.member()

    moved = await db.redeem(
        await db.code(test=True, user_id=member_id), telegram_id, now=NOW + timedelta(minutes=1)
    )

    assert (moved.user_id, moved.test, moved.linked_at) == (
        member_id,
        True,
        NOW + timedelta(minutes=1),
    )
    async with db.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(TelegramMerchant).where(TelegramMerchant.telegram_user_id == telegram_id)
            )
        ).all()
    assert [(r.user_id, r.test) for r in rows] == [(member_id, True)]


async def test_relinking_moves_the_account_to_another_organization(
    db: Db, database_url: str
) -> None:
    telegram_id = telegram_user()
    await db.redeem(await db.code(), telegram_id)
    other = make_tenant_in_thread(database_url)
    async with transaction(db.sessionmaker) as session:
        link = await links.create_link_code(
            session,
            organization_id=other.organization_id,
            user_id=other.owner_id,
            test=False,
            now=NOW,
        )
    moved = await db.redeem(link.code, telegram_id)
    assert (moved.organization_id, moved.user_id) == (other.organization_id, other.owner_id)
    async with db.sessionmaker() as session:
        left = await links.merchants_of_organization(session, db.tenant.organization_id, test=False)
    assert telegram_id not in [m.telegram_user_id for m in left]


def make_tenant_in_thread(database_url: str) -> Tenant:
    """make_tenant runs its own event loop; from inside a test's loop it needs a thread."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(make_tenant, database_url, wallet=False).result()


async def test_the_bot_acts_as_the_linked_user_with_its_current_role(db: Db) -> None:
    member_id = await db.member(Role.ADMIN)
    telegram_id = telegram_user()
    await db.redeem(await db.code(user_id=member_id), telegram_id)

    async with db.sessionmaker() as session:
        principal = await links.merchant_principal(session, telegram_id)
    assert principal == Principal(
        api_key_id=0,
        organization_id=db.tenant.organization_id,
        user_id=member_id,
        role=Role.ADMIN,
        test=False,
    )

    async with transaction(db.sessionmaker) as session:
        user = await session.get(User, member_id)
        assert user is not None
        user.role = Role.USER.value
    async with db.sessionmaker() as session:
        demoted = await links.merchant_principal(session, telegram_id)
    assert demoted is not None
    assert demoted.role is Role.USER
    assert not demoted.is_admin


async def test_a_deleted_users_link_acts_as_nobody(db: Db) -> None:
    member_id = await db.member()
    telegram_id = telegram_user()
    await db.redeem(await db.code(user_id=member_id), telegram_id)

    async with transaction(db.sessionmaker) as session:
        await session.execute(delete(User).where(User.id == member_id))
    async with db.sessionmaker() as session:
        assert await links.merchant_principal(session, telegram_id) is None
        assert await links.merchant_of(session, telegram_id) is None  # cascaded


async def test_unlink_forgets_the_account_once(db: Db) -> None:
    telegram_id = telegram_user()
    await db.redeem(await db.code(), telegram_id)

    async with transaction(db.sessionmaker) as session:
        assert await links.unlink(session, telegram_id) is True
    async with transaction(db.sessionmaker) as session:
        assert await links.unlink(session, telegram_id) is False
        assert await links.merchant_principal(session, telegram_id) is None
    assert await db.merchant(telegram_id) is None


async def test_principal_for_takes_the_links_mode_and_the_given_role(db: Db) -> None:
    merchant = await db.redeem(await db.code(test=True), telegram_user())
    principal = links.principal_for(merchant, Role.OWNER)
    assert principal == Principal(
        0, db.tenant.organization_id, db.tenant.owner_id, Role.OWNER, True
    )


async def test_two_concurrent_redeems_of_one_code_link_exactly_one_account(
    db: Db, database_url: str
) -> None:
    if suite_backend() != "postgresql":
        pytest.skip("SQLite runs one writer at a time (BEGIN IMMEDIATE): no race to lose")
    code = await db.code()
    first, second = telegram_user(), telegram_user()
    other_engine = create_engine(database_url)
    try:
        one, two = db.sessionmaker, create_sessionmaker(other_engine)
        async with one() as a, two() as b:
            # The first redeems and keeps its transaction open; the second runs into its lock.
            await links.redeem_link_code(a, code, telegram_user_id=first, now=NOW)
            pid = await b.scalar(text("SELECT pg_backend_pid()"))
            racing = asyncio.create_task(
                links.redeem_link_code(b, code, telegram_user_id=second, now=NOW)
            )
            assert await waits_on_a_lock(db.sessionmaker, pid, racing)
            await a.commit()
            with pytest.raises(LinkCodeInvalid):
                await racing
            await b.rollback()

        # And with both started at once, from fresh connections: still exactly one.
        code = await db.code()
        third, fourth = telegram_user(), telegram_user()

        async def attempt(
            maker: async_sessionmaker[AsyncSession], telegram_id: int
        ) -> TelegramMerchant | LinkCodeInvalid:
            try:
                async with transaction(maker) as session:
                    return await links.redeem_link_code(
                        session, code, telegram_user_id=telegram_id, now=NOW
                    )
            except LinkCodeInvalid as refused:
                return refused

        results = await asyncio.gather(attempt(one, third), attempt(two, fourth))
    finally:
        await other_engine.dispose()

    assert await db.merchant(first) is not None
    assert await db.merchant(second) is None
    assert sum(isinstance(r, TelegramMerchant) for r in results) == 1
    assert sum(isinstance(r, LinkCodeInvalid) for r in results) == 1
    linked = [await db.merchant(t) for t in (third, fourth)]
    assert sum(m is not None for m in linked) == 1


async def waits_on_a_lock(
    sessionmaker: async_sessionmaker[AsyncSession], pid: int, task: asyncio.Task[object]
) -> bool:
    """True once the backend `pid` waits on a lock (False if `task` ended or 5 s passed)."""
    deadline = asyncio.get_running_loop().time() + 5
    while not task.done() and asyncio.get_running_loop().time() < deadline:
        async with sessionmaker() as watch:
            waiting = await watch.scalar(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            )
        if waiting == "Lock":
            return True
        await asyncio.sleep(0.005)
    return False
