"""`chainpay key create`: a key made on the server, for the owner by default, printed once; the
way back in when no key of the organization works any more."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from typer.testing import CliRunner, Result

from chainpay.cli import app
from core.db import create_engine, create_sessionmaker, transaction
from core.models import ApiKey
from core.models.base import utcnow
from core.orgs import service as orgs_service
from core.orgs.schemas import Role
from tests.harness.factories import Api, Tenant, make_member, unique_email


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory and no CHAINPAY_ settings: the embedded SQLite default."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CHAINPAY_")]:
        monkeypatch.delenv(name)
    return tmp_path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def as_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def local_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'chainpay.db'}"


def revoke_everything(database_url: str) -> None:
    async def go() -> None:
        engine = create_engine(database_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await session.execute(update(ApiKey).values(revoked_at=utcnow()))
        finally:
            await engine.dispose()

    asyncio.run(go())


def authenticate(database_url: str, raw_key: str) -> tuple[int, Role, bool]:
    async def go() -> tuple[int, Role, bool]:
        engine = create_engine(database_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                principal = await orgs_service.authenticate(session, raw_key, now=utcnow())
                return principal.user_id, principal.role, principal.test
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_key_create_lets_a_locked_out_owner_back_in(workdir: Path) -> None:
    created = as_json(run("init", "--json"))
    url = local_url(workdir)
    revoke_everything(url)  # e.g. the only key leaked and was revoked in the database

    plain = run("key", "create")
    assert plain.exit_code == 0, plain.output
    [raw] = [w for w in plain.stdout.split() if w.startswith("cp_live_")]
    assert "owner@example.com" in plain.stdout
    assert "shown only this once" in plain.stdout
    assert authenticate(url, raw) == (created["owner_user_id"], Role.OWNER, False)

    test_key = as_json(run("key", "create", "--test", "--name", "CI sandbox", "--json"))
    assert test_key["api_key"].startswith("cp_test_")
    assert test_key["name"] == "CI sandbox"
    assert test_key["role"] == "owner"
    assert test_key["organization_id"] == created["organization_id"]
    assert authenticate(url, test_key["api_key"]) == (created["owner_user_id"], Role.OWNER, True)


def test_key_create_refuses_what_it_cannot_resolve_in_one_line(workdir: Path) -> None:
    nothing = run("key", "create")
    assert nothing.exit_code == 1
    assert "chainpay init" in nothing.stderr

    as_json(run("init", "--json"))
    second = as_json(
        run("org", "create", "Second", "--owner-email", "boss@second.example", "--json")
    )

    ambiguous = run("key", "create")
    assert ambiguous.exit_code == 2  # bad usage: say which organization
    assert "--org" in ambiguous.stderr
    assert len(ambiguous.stderr.strip().splitlines()) == 1
    assert ambiguous.stdout == ""

    cases = [
        (["--org", "999"], "No organization #999"),
        (["--org", "1", "--user", "nobody@shop.example"], "nobody@shop.example"),
        (["--org", "1", "--user", "boss@second.example"], "belongs to organization"),
    ]
    for options, message in cases:
        refused = run("key", "create", *options)
        assert refused.exit_code == 1, (options, refused.output)
        assert message in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert "cp_" not in refused.output

    other = as_json(run("key", "create", "--org", str(second["organization_id"]), "--json"))
    assert other["user_email"] == "boss@second.example"

    bad_email = run("key", "create", "--user", "not-an-email")
    assert bad_email.exit_code == 2
    assert "--user" in bad_email.output


def test_key_create_for_a_user_of_an_organization_on_the_suite_database(
    database_url: str, base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    """On the suite's backend (PostgreSQL too), against the running API."""
    tenant = tenant_factory()
    tenant_factory()  # not the only organization: --org is needed
    owner = Api(base_url, tenant.key)
    email = unique_email("staff")
    member, _ = make_member(owner, "user", email=email.title())
    env = {"CHAINPAY_DATABASE_URL": database_url}

    created = as_json(
        run(
            "key",
            "create",
            "--org",
            str(tenant.organization_id),
            "--user",
            email.upper(),
            "--test",
            "--name",
            "support",
            "--json",
            env=env,
        )
    )
    assert created["user_id"] == member["id"]
    assert created["role"] == "user"
    me = httpx.get(f"{base_url}/v1/user", headers={"X-API-Key": created["api_key"]})
    assert me.status_code == 200
    assert me.json()["id"] == member["id"]
    [listed] = [k for k in owner.get(f"/api-key/user/{member['id']}").json() if k["test"]]
    assert listed["name"] == "support"
    assert listed["preview"] == created["api_key"][-8:]
    assert created["api_key"] not in owner.get(f"/api-key/user/{member['id']}").text


def test_key_commands_have_help() -> None:
    for command in (["key"], ["key", "create"]):
        result = run(*command, "--help")
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output
    assert "--user" in run("key", "create", "--help").output
