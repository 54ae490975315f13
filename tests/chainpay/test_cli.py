"""The newcomer's path as real processes: `chainpay init` in an empty directory, then
`chainpay serve` answers with the printed key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from chainpay.cli import app
from tests.harness.server import free_port

CLI = [sys.executable, "-m", "chainpay"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")}


def chainpay(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextmanager
def serving(cwd: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`chainpay serve` as a real process until the block ends; yields base URL and process."""
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        cwd=cwd,
        env={**clean_env(), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"chainpay serve exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("chainpay serve did not come up within 60 s")
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_key(process: subprocess.Popen[str]) -> str:
    """The API key `serve` prints on its first start (it prints it before it serves)."""
    assert process.stdout is not None
    seen = []
    for _ in range(40):
        line = process.stdout.readline()
        seen.append(line)
        if line.strip().startswith(("cp_test_", "cp_live_")):
            return line.strip()
    raise AssertionError(f"serve printed no key: {seen}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, object]]]:
    init = chainpay(tmp_path, "init", "--json")
    assert init.returncode == 0, init.stderr
    no_chains = tmp_path / "no-chains.toml"
    no_chains.write_text("# chains configured elsewhere: no devnet\n")
    with serving(tmp_path, CHAINPAY_CHAINS_FILE=str(no_chains)) as (base, _process):
        yield base, json.loads(init.stdout)


def test_init_then_serve_answers_with_the_printed_key(
    served: tuple[str, dict[str, object]], tmp_path: Path
) -> None:
    base, created = served
    key = str(created["api_key"])
    assert key.startswith("cp_live_")
    assert (tmp_path / "chainpay.db").is_file()
    me = httpx.get(f"{base}/v1/user", headers={"X-API-Key": key})
    assert me.status_code == 200
    assert me.json()["email"] == "owner@example.com"
    assert me.json()["role"] == "owner"
    assert httpx.get(f"{base}/v1/user", headers={"X-API-Key": key + "x"}).status_code == 401


def test_init_prints_the_default_webhook_secret_that_serve_verifies_with(
    served: tuple[str, dict[str, object]], tmp_path: Path
) -> None:
    import hashlib
    import hmac
    import time

    base, created = served
    secret = str(created["webhook_secret"])
    assert secret.startswith("whsec_")
    # No CHAINPAY_SECRET_KEY here: the key at rest was generated beside the database, owner-only.
    key_file = tmp_path / "chainpay-secret.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert secret not in (tmp_path / "chainpay.db").read_bytes().decode("latin-1")
    payload = {"id": "evt_x", "type": "webhook.test", "data": {}}
    ts = str(int(time.time()))
    body = '{"data":{},"id":"evt_x","type":"webhook.test"}'
    signature = hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    check = {"payload": payload, "receivedTimestamp": ts}
    headers = {"X-API-Key": str(created["api_key"])}
    ok = httpx.post(
        f"{base}/v1/webhooks/verify",
        json={**check, "receivedSignature": "sha256=" + signature},
        headers=headers,
    )
    assert ok.status_code == 200, ok.text
    bad = httpx.post(
        f"{base}/v1/webhooks/verify",
        json={**check, "receivedSignature": "sha256=" + "0" * 64},
        headers=headers,
    )
    assert bad.status_code == 400
    assert signature not in bad.text


def test_serve_on_an_empty_directory_initializes_once_and_prints_the_key(tmp_path: Path) -> None:
    from tests.harness.chains import require_anvil

    require_anvil()  # with no chains configured, serve runs the devnet
    with serving(tmp_path) as (base, process):
        assert process.stdout is not None
        # No chains configured: serve runs the devnet, whose chains are test networks.
        key = read_key(process)
        assert key.startswith("cp_test_")
        assert httpx.get(f"{base}/v1/user", headers={"X-API-Key": key}).status_code == 200
    with serving(tmp_path) as (base, process):
        assert process.stdout is not None
        process.terminate()
        process.wait(timeout=15)
        assert "cp_test_" not in process.stdout.read()


def test_init_refuses_a_second_run_and_org_create_adds_tenants(tmp_path: Path) -> None:
    assert chainpay(tmp_path, "init").returncode == 0
    again = chainpay(tmp_path, "init")
    assert again.returncode == 1
    assert "already initialized" in again.stderr
    other = chainpay(
        tmp_path, "org", "create", "Second shop", "--owner-email", "boss@second.example"
    )
    assert other.returncode == 0, other.stderr
    assert "cp_live_" in other.stdout
    assert "Second shop" in other.stdout
    duplicate = chainpay(tmp_path, "org", "create", "Third", "--owner-email", "boss@second.example")
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr


@pytest.mark.parametrize("email", ["owner@localhost", "owner@shop.test", "not-an-email"])
def test_init_applies_the_sdks_email_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, email: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init", "--owner-email", email])
    assert result.exit_code == 2
    assert "owner-email" in result.output
    assert not (tmp_path / "chainpay.db").exists()


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["init"],
        ["org"],
        ["org", "create"],
        ["wallet"],
        ["wallet", "set-xpub"],
        ["devnet"],
        ["devnet", "pay"],
        ["watcher"],
        ["migrate"],
        ["serve"],
        ["api"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_dev_wallet_is_private_and_set_xpub_refuses_private_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CHAINPAY_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()
    result = runner.invoke(app, ["init", "--dev-wallet"])
    assert result.exit_code == 0, result.output
    assert "devnets ONLY" in result.output
    wallet_file = tmp_path / "chainpay-dev-wallet.txt"
    assert wallet_file.stat().st_mode & 0o777 == 0o600
    assert len(wallet_file.read_text().split()) == 12

    anvil_xpub = "xpub6Ce9NcJvTk36xtLSrJLZqE7wtgA5deCeYs7rSQtreh4cj6ByPtrg9sD7V2FNFLPnf8heNP3FGkeV9qwfzvZNSd54JoNXVsXFYSYwHsnJxqP"
    assert runner.invoke(app, ["wallet", "set-xpub", anvil_xpub]).exit_code == 0
    private = runner.invoke(
        app,
        [
            "wallet",
            "set-xpub",
            "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi",
        ],
    )
    assert private.exit_code == 1
    assert "private key" in private.output
    assert runner.invoke(app, ["wallet", "set-xpub", anvil_xpub, "--org", "99"]).exit_code == 1


@pytest.mark.slow
def test_serve_without_chains_runs_a_devnet_and_credits_a_payment(tmp_path: Path) -> None:
    """The newcomer's whole flow: serve (devnet mode), create a session, `devnet pay`, completed."""
    from tests.harness.chains import require_anvil

    require_anvil()
    with serving(tmp_path) as (base, process):
        assert process.stdout is not None
        key = read_key(process)
        api = httpx.Client(base_url=base + "/v1", headers={"X-API-Key": key}, timeout=30)
        created = api.post(
            "/transaction/session-checkout",
            json={"productName": "E2E", "description": "d", "price": "2.5"},
        )
        assert created.status_code == 200, created.text
        uuid = created.json()["uuid"]
        paid = chainpay(tmp_path, "devnet", "pay", uuid, "--chain", "31338")
        assert paid.returncode == 0, paid.stderr
        assert paid.stdout.strip().startswith("0x")
        deadline = time.monotonic() + 60
        status = ""
        while time.monotonic() < deadline:
            status = api.get(f"/transaction/session-checkout/{uuid}").json()["status"]
            if status == "completed":
                break
            time.sleep(0.5)
        assert status == "completed"
        assert (tmp_path / "chainpay-dev-wallet.txt").stat().st_mode & 0o777 == 0o600


def test_serve_runs_the_webhook_sender(tmp_path: Path) -> None:
    from standardwebhooks import Webhook

    from tests.harness.receiver import running_receiver

    init = chainpay(tmp_path, "init", "--test", "--json")
    assert init.returncode == 0, init.stderr
    key = json.loads(init.stdout)["api_key"]
    no_chains = tmp_path / "no-chains.toml"
    no_chains.write_text("# chains configured elsewhere: no devnet\n")
    with (
        running_receiver() as receiver,
        serving(
            tmp_path, CHAINPAY_CHAINS_FILE=str(no_chains), CHAINPAY_WEBHOOKS_ALLOW_PRIVATE="true"
        ) as (base, _process),
    ):
        api = httpx.Client(base_url=f"{base}/v1", headers={"X-API-Key": key})
        endpoint = api.post("/webhooks/endpoints", json={"url": receiver.url("/served")})
        assert endpoint.status_code == 201, endpoint.text
        queued = api.post(f"/webhooks/endpoints/{endpoint.json()['uuid']}/test")
        assert queued.status_code == 202
        deadline = time.monotonic() + 20
        while not receiver.at("/served") and time.monotonic() < deadline:
            time.sleep(0.05)
        [got] = receiver.at("/served")
        assert Webhook(endpoint.json()["secret"]).verify(got.body, got.headers)
        assert got.headers["webhook-id"] == queued.json()["eventId"]
