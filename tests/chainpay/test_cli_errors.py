"""Errors a person can read: the real `chainpay` command, run in an empty directory, says what
is wrong with the configuration (exit 2) or which URL did not answer (exit 1) in a line or two;
`--debug` brings the traceback back. And the help it prints is current and quick to come."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from chainpay import devnet
from chainpay.cli import app
from chainpay.problems import explain
from core.errors import AppError
from tests.harness.factories import DEVNET_A_USDT, test_settings
from tests.harness.server import free_port

CLI = [sys.executable, "-m", "chainpay"]
ANVIL_XPUB = "xpub6Ce9NcJvTk36xtLSrJLZqE7wtgA5deCeYs7rSQtreh4cj6ByPtrg9sD7V2FNFLPnf8heNP3FGkeV9qwfzvZNSd54JoNXVsXFYSYwHsnJxqP"


def chainpay(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")}
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env={**clean, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def short_error(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The error text, checked to be one or two lines without a traceback."""
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, result.stderr
    return result.stderr


def test_malformed_toml_names_the_file_and_line_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "chainpay.toml").write_text('database_url = "sqlite+aiosqlite:///x.db\n')
    said = short_error(chainpay(tmp_path, "migrate"), 2)
    assert str(tmp_path / "chainpay.toml") in said
    assert "line 1" in said


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--debug", "migrate"], {}), (["migrate"], {"CHAINPAY_LOG_LEVEL": "debug"})],
)
def test_debug_shows_the_traceback(tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
    (tmp_path / "chainpay.toml").write_text('database_url = "x\n')
    result = chainpay(tmp_path, *args, **env)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "chainpay.toml: not valid TOML" in result.stderr


def test_misspelt_key_is_an_error_that_suggests_the_right_one(tmp_path: Path) -> None:
    (tmp_path / "chainpay.toml").write_text('databse_url = "sqlite+aiosqlite:///other.db"\n')
    said = short_error(chainpay(tmp_path, "migrate"), 2)
    assert "unknown key `databse_url`" in said
    assert "did you mean `database_url`?" in said
    assert not (tmp_path / "chainpay.db").exists()  # the default database was not used


def test_chain_without_rpc_urls_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "chainpay.toml").write_text("[[chains]]\nid = 1\n")
    said = short_error(chainpay(tmp_path, "migrate"), 2)
    assert "chain 1 has no rpc_urls" in said
    assert str(tmp_path / "chainpay.toml") in said


def test_unknown_chain_without_tokens_is_a_short_error(tmp_path: Path) -> None:
    (tmp_path / "chainpay.toml").write_text(
        '[[chains]]\nid = 999\nrpc_urls = ["http://127.0.0.1:9"]\n'
    )
    said = short_error(chainpay(tmp_path, "devnet", "pay", "x", "--chain", "999"), 2)
    assert "chain 999 is not a well-known chain: list its tokens" in said
    assert str(tmp_path / "chainpay.toml") in said


def test_serve_reports_a_chain_mistake_before_its_first_start_writes_anything(
    tmp_path: Path,
) -> None:
    (tmp_path / "chainpay.toml").write_text(
        '[[chains]]\nid = 999\nrpc_urls = ["http://127.0.0.1:9"]\n'
    )
    said = short_error(chainpay(tmp_path, "serve"), 2)
    assert "chain 999 is not a well-known chain: list its tokens" in said
    assert not (tmp_path / "chainpay.db").exists()  # no organization made, no key printed


def test_devnet_pay_with_nothing_running_names_the_rpc_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "chainpay-devnet.toml").write_text(
        f'[[chains]]\nid = 31337\nrpc_urls = ["{url}"]\ntest = true\n'
        f'tokens = [{{ symbol = "USDT", contract = "{DEVNET_A_USDT}", decimals = 6 }}]\n'
    )
    said = short_error(chainpay(tmp_path, "devnet", "pay", "some-uuid", "--chain", "31337"), 1)
    assert url in said
    assert "chainpay devnet" in said


def test_devnet_pay_says_what_is_wrong_with_a_negative_amount(tmp_path: Path) -> None:
    (tmp_path / "chainpay-devnet.toml").write_text(
        '[[chains]]\nid = 31337\nrpc_urls = ["http://127.0.0.1:9"]\ntest = true\n'
        f'tokens = [{{ symbol = "USDT", contract = "{DEVNET_A_USDT}", decimals = 6 }}]\n'
    )
    result = chainpay(tmp_path, "devnet", "pay", "u", "--chain", "31337", "--amount", "-1")
    said = short_error(result, 1)
    assert "--amount must be more than 0 USDT (got -1)" in said
    assert "base units" not in said


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "must be more than 0 USDT"),
        ("Infinity", "must be more than 0 USDT"),
        ("abc", "'abc' is not a number"),
        ("1.0000001", "more decimal places than USDT on chain 31337 has (6)"),
    ],
)
def test_devnet_pay_checks_the_amount_before_anything_else(
    database_url: str, amount: str, message: str
) -> None:
    with pytest.raises(AppError, match=re.escape(message)):
        asyncio.run(devnet.pay_session(test_settings(database_url), "u", 31337, "USDT", amount))


def test_set_xpub_says_what_is_wrong_in_the_users_terms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CHAINPAY_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    cases = {
        "hello": "expected the 111-character xpub",
        "": "nothing was given",
        ANVIL_XPUB[:-1]: "a character is wrong, missing or extra",
    }
    for xpub, message in cases.items():
        result = runner.invoke(app, ["wallet", "set-xpub", xpub])
        assert result.exit_code == 1, result.output
        assert "not a valid extended public key: " + message in result.output
        assert "substring" not in result.output
        assert "checksum (expected" not in result.output.lower()


def test_unreachable_database_names_the_url_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://chainpay:hunter2@127.0.0.1:{free_port()}/chainpay"
    said = short_error(chainpay(tmp_path, "migrate", CHAINPAY_DATABASE_URL=url), 1)
    assert "hunter2" not in said
    assert f"chainpay:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in said
    assert "CHAINPAY_DATABASE_URL" in said


def test_unknown_chainpay_variables_are_warned_about_not_refused(tmp_path: Path) -> None:
    result = chainpay(tmp_path, "migrate", CHAINPAY_DATABSE_URL="sqlite+aiosqlite:///x.db")
    assert result.returncode == 0, result.stderr
    assert "CHAINPAY_DATABSE_URL is not a chainpay setting" in result.stderr
    assert "did you mean `CHAINPAY_DATABASE_URL`?" in result.stderr


def _buggy_handler() -> None:
    try:
        raise AppError("no such session")
    except AppError:
        {}["missing"]  # a bug in the handler  # noqa: B018


def test_a_bug_raised_while_handling_an_error_keeps_its_traceback() -> None:
    with pytest.raises(KeyError) as bug:
        _buggy_handler()
    assert explain(bug.value) is None
    grouped = ExceptionGroup("tasks", [ValueError("bug"), AppError("no such session")])
    problem = explain(grouped)
    assert problem is not None
    assert problem.lines == ("no such session",)


def _commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_help_is_current_and_has_no_placeholders() -> None:
    runner = CliRunner()
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 10
    for path, _command in commands:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "later release" not in result.output, path
        usage = next(line for line in result.output.splitlines() if "Usage:" in line)
        assert "{" not in usage, (path, usage)
    serve = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    assert "a watcher per chain" in serve
    assert "webhook sender" in serve
    pay = runner.invoke(app, ["devnet", "pay", "--help"], env={"COLUMNS": "200"}).output
    assert "SESSION_UUID" in pay


HEAVY = ("web3", "fastapi", "sqlalchemy", "uvicorn", "alembic", "pydantic", "aiohttp")


def test_starting_the_command_imports_nothing_heavy() -> None:
    """`import chainpay.cli` and `chainpay --help` load no database, chain or web stack (that
    is what made every command take seconds to start); checked by module, not by the clock."""
    script = (
        "import json, sys\n"
        "import chainpay.cli\n"
        "after_import = sorted(m for m in sys.modules)\n"
        "sys.argv = ['chainpay', '--help']\n"
        "try:\n"
        "    chainpay.cli.app(prog_name='chainpay')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps([after_import, sorted(sys.modules)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    after_import, after_help = json.loads(result.stdout.strip().splitlines()[-1])
    for loaded in (after_import, after_help):
        heavy = sorted({m.split(".")[0] for m in loaded} & set(HEAVY))
        assert heavy == [], heavy
