"""Configuration mistakes are errors that name the file or variable, the key and the fix:
a misspelt key is not silently ignored, a chain without RPC URLs is not silently unwatched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.chains import ConfigurationError
from core.config import load_settings, unknown_environment_variables


@pytest.fixture(autouse=True)
def in_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CHAINPAY_")]:
        monkeypatch.delenv(name)
    return tmp_path


def problem(toml: str) -> str:
    Path("chainpay.toml").write_text(toml)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    return caught.value.message


def test_toml_syntax_error_names_the_file_line_and_column(in_empty_directory: Path) -> None:
    said = problem('port = 8000\ndatabase_url = "unterminated\n')
    assert said.startswith(f"{in_empty_directory / 'chainpay.toml'}: not valid TOML")
    assert "line 2" in said


def test_misspelt_keys_suggest_the_right_one_at_every_level() -> None:
    assert "unknown key `databse_url` (did you mean `database_url`?)" in problem(
        'databse_url = "sqlite+aiosqlite:///x.db"\n'
    )
    assert "unknown key `rpc_url` in chains #1 (did you mean `rpc_urls`?)" in problem(
        '[[chains]]\nid = 1\nrpc_url = ["http://127.0.0.1:9"]\n'
    )
    in_token = problem(
        '[[chains]]\nid = 1\nrpc_urls = ["http://127.0.0.1:9"]\n'
        'tokens = [{ symbol = "USDT", contrct = "0x5FbDB2315678afecb367f032d93F642f64180aa3" }]\n'
    )
    assert "unknown key `contrct` in chains #1, tokens #1 (did you mean `contract`?)" in in_token


def test_a_chain_without_rpc_urls_is_an_error() -> None:
    assert "chain 5 has no rpc_urls: add rpc_urls" in problem("[[chains]]\nid = 5\n")


def test_chains_file_problems_name_that_file(in_empty_directory: Path) -> None:
    Path("devnet.toml").write_text("[[chains]]\nid = 5\n")
    Path("chainpay.toml").write_text('chains_file = "devnet.toml"\n')
    with pytest.raises(ConfigurationError, match=r"^devnet.toml: chain 5 has no rpc_urls"):
        load_settings().chain_configs()
    Path("chainpay.toml").write_text('chains_file = "missing.toml"\n')
    with pytest.raises(ConfigurationError, match=r"^missing.toml: no such file"):
        load_settings().chain_configs()


def test_registry_errors_name_where_the_chain_is_configured(
    in_empty_directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("chainpay.toml").write_text('[[chains]]\nid = 999\nrpc_urls = ["http://127.0.0.1:9"]\n')
    with pytest.raises(ConfigurationError) as caught:
        load_settings().chain_registry()
    assert caught.value.message == (
        f"{in_empty_directory / 'chainpay.toml'}: chain 999 is not a well-known chain: "
        "list its tokens"
    )
    monkeypatch.setenv("CHAINPAY_CHAINS", '[{"id": 999, "rpc_urls": ["http://127.0.0.1:9"]}]')
    with pytest.raises(ConfigurationError, match=r"^CHAINPAY_CHAINS: chain 999"):
        load_settings().chain_registry()


def test_bad_values_name_the_variable_and_never_echo_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAINPAY_PORT", "eighty")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert caught.value.message.startswith("CHAINPAY_PORT: Input should be a valid integer")
    assert "(got 'eighty')" in caught.value.message
    monkeypatch.delenv("CHAINPAY_PORT")
    monkeypatch.setenv("CHAINPAY_TELEGRAM_BOT_TOKEN", '{"not": "a string"}')
    monkeypatch.setenv("CHAINPAY_WEBHOOK_TIMEOUT_SECONDS", "0")
    said = problem("")
    assert "not" not in said.replace("not valid", "")  # the token's value is not repeated
    assert "CHAINPAY_WEBHOOK_TIMEOUT_SECONDS: Input should be greater than 0" in said


def test_unknown_chainpay_variables_are_reported_with_a_suggestion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAINPAY_DATABSE_URL", "sqlite+aiosqlite:///x.db")
    monkeypatch.setenv("CHAINPAY_TEST_BACKEND", "sqlite")  # the test suite's own, not a setting
    assert unknown_environment_variables() == [
        "CHAINPAY_DATABSE_URL is not a chainpay setting "
        "(did you mean `CHAINPAY_DATABASE_URL`?); ignored"
    ]
