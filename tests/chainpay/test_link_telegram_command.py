"""`chainpay user link-telegram EMAIL`: a one-time code for the bot's `/link`, made on the server
without an API key, printed once, in live mode unless --test."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from chainpay.cli import app
from core.db import create_engine, create_sessionmaker, transaction
from core.orgs.schemas import Principal, Role
from core.telegram import links
from core.telegram.exceptions import LinkCodeInvalid


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory and no CHAINPAY_ settings: the embedded SQLite default."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CHAINPAY_")]:
        monkeypatch.delenv(name)
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def as_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def local_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'chainpay.db'}"


def redeem(database_url: str, code: str, telegram_user_id: int) -> Principal | None:
    async def go() -> Principal | None:
        engine = create_engine(database_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await links.redeem_link_code(
                    session, code, telegram_user_id=telegram_user_id, now=datetime.now(UTC)
                )
                return await links.merchant_principal(session, telegram_user_id)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_the_code_links_the_users_telegram_account_once(workdir: Path) -> None:
    created = as_json(run("init", "--json"))

    plain = run("user", "link-telegram", "Owner@Example.com")
    assert plain.exit_code == 0, plain.output
    code = plain.stdout.strip().splitlines()[1].strip()
    assert len(code) == 10
    assert f"/link {code}" in plain.stdout
    assert "owner@example.com" in plain.stdout
    assert "live mode" in plain.stdout

    principal = redeem(local_url(workdir), code, 42)
    assert principal == Principal(
        0, created["organization_id"], created["owner_user_id"], Role.OWNER, False
    )
    with pytest.raises(LinkCodeInvalid):
        redeem(local_url(workdir), code, 43)


def test_test_flag_and_json_make_a_test_mode_code(workdir: Path) -> None:
    created = as_json(run("init", "--json"))
    before = datetime.now(UTC)

    made = as_json(run("user", "link-telegram", "owner@example.com", "--test", "--json"))

    assert set(made) == {
        "organization_id",
        "user_id",
        "user_email",
        "code",
        "expires_at",
        "test",
    }
    assert made["test"] is True
    assert made["user_id"] == created["owner_user_id"]
    expires_at = datetime.fromisoformat(made["expires_at"])
    assert before + timedelta(minutes=10) <= expires_at <= datetime.now(UTC) + timedelta(minutes=10)
    principal = redeem(local_url(workdir), made["code"], 7)
    assert principal is not None
    assert principal.test is True


def test_org_option_must_match_the_users_organization(workdir: Path) -> None:
    first = as_json(run("init", "--json"))
    second = as_json(
        run("org", "create", "Second", "--owner-email", "boss@second.example", "--json")
    )

    # The email names the user, so several organizations need no --org.
    made = as_json(run("user", "link-telegram", "boss@second.example", "--json"))
    assert made["organization_id"] == second["organization_id"]
    matching = run(
        "user", "link-telegram", "boss@second.example", "--org", str(second["organization_id"])
    )
    assert matching.exit_code == 0, matching.output

    mismatch = run(
        "user", "link-telegram", "boss@second.example", "--org", str(first["organization_id"])
    )
    assert mismatch.exit_code == 1
    assert "belongs to organization" in mismatch.stderr
    assert len(mismatch.stderr.strip().splitlines()) == 1
    assert mismatch.stdout == ""


def test_what_it_cannot_resolve_is_refused_in_one_line(workdir: Path) -> None:
    as_json(run("init", "--json"))
    cases = [
        (["nobody@shop.example"], 1, "No user with email nobody@shop.example"),
        (["owner@example.com", "--org", "999"], 1, "No organization #999"),
    ]
    for args, exit_code, message in cases:
        refused = run("user", "link-telegram", *args)
        assert refused.exit_code == exit_code, (args, refused.output)
        assert message in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert refused.stdout == ""

    bad_email = run("user", "link-telegram", "not-an-email")
    assert bad_email.exit_code == 2  # bad usage, said by the argument parser
    assert "EMAIL" in bad_email.stderr
    assert bad_email.stdout == ""
