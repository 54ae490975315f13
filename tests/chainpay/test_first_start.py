"""What the first start shows a newcomer: the curl it prints works, a devnet session's log line
says how to pay it, and `chainpay dev webhook-listen` prints verified deliveries."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from chainpay import devnet
from chainpay.cli import app
from chainpay.webhook_listen import check_delivery
from core.checkout.context import CheckoutContext
from core.config import Settings
from core.webhooks.crypto import new_secret
from core.webhooks.signing import delivery_headers
from tests.chainpay.test_cli import CLI, chainpay, clean_env, serving
from tests.harness.factories import TEST_SECRET_KEY, Api, Tenant, make_tenant
from tests.harness.logs import captured_logs, lines_of
from tests.harness.server import live_server
from tests.webhooks.conftest import send_due

# One live chain whose node never answers: sessions are quoted from configuration alone.
LIVE_CHAIN = """\
[[chains]]
id = 1
name = "Ethereum"
rpc_urls = ["http://127.0.0.1:9"]
test = false
tokens = [{ symbol = "USDT", contract = "0xdAC17F958D2ee523a2206206994597C13D831ec7", decimals = 6 }]
"""

# anvil's public "test test ... junk" account xpub (m/44'/60'/0').
ANVIL_XPUB = "xpub6Ce9NcJvTk36xtLSrJLZqE7wtgA5deCeYs7rSQtreh4cj6ByPtrg9sD7V2FNFLPnf8heNP3FGkeV9qwfzvZNSd54JoNXVsXFYSYwHsnJxqP"


def _curl_request(line: str) -> httpx.Request:
    """The request a printed `curl -s -H ... -d ... URL` line makes (parsed, not run by a shell)."""
    words = shlex.split(line)
    assert words[:2] == ["curl", "-s"], line
    headers: dict[str, str] = {}
    body = None
    rest = words[2:]
    while len(rest) > 1:
        flag, value, *rest = rest
        if flag == "-H":
            name, _sep, text = value.partition(": ")
            headers[name] = text
        else:
            assert flag == "-d", line
            body = value
    [url] = rest
    return httpx.Request("POST", url, headers=headers, content=body)


def test_first_start_prints_a_curl_that_creates_a_session_on_the_served_port(
    tmp_path: Path,
) -> None:
    chains = tmp_path / "chains.toml"
    chains.write_text(LIVE_CHAIN)
    with serving(tmp_path, CHAINPAY_CHAINS_FILE=str(chains)) as (base, process):
        assert process.stdout is not None
        printed: list[str] = []
        while not printed or not printed[-1].strip().startswith("curl "):
            assert len(printed) < 20, printed
            printed.append(process.stdout.readline())
        curls = [line.strip() for line in printed if line.strip().startswith("curl ")]
        key = next(line.strip() for line in printed if line.strip().startswith("cp_live_"))
        request = _curl_request(curls[0])
        assert str(request.url) == f"{base}/v1/transaction/session-checkout"
        assert request.headers["X-API-Key"] == key
        # Off the devnet there is no dev wallet: the printed line says to set an xpub first.
        assert "chainpay wallet set-xpub" in printed[-2]
        assert chainpay(tmp_path, "wallet", "set-xpub", ANVIL_XPUB).returncode == 0
        answer = httpx.Client(timeout=30).send(request)
        assert answer.status_code == 200, answer.text
        # Links follow the port serve listens on (CHAINPAY_PUBLIC_URL is not set).
        assert answer.json()["link"] == f"{base}/pay/{answer.json()['uuid']}"
        seen = httpx.get(
            f"{base}/v1/transaction/session-checkout/{answer.json()['uuid']}",
            headers={"X-API-Key": key},
        )
        assert seen.json()["status"] == "created"


def test_devnet_session_log_line_names_its_link_and_the_pay_command(
    settings: Settings, database_url: str
) -> None:
    context = dataclasses.replace(
        CheckoutContext.from_settings(settings), on_session_created=devnet.log_session_created
    )
    test_tenant = make_tenant(database_url, test=True)
    live_tenant = make_tenant(database_url, test=False)
    body = {"productName": "Ebook", "description": "PDF", "price": "19.99"}
    with live_server(settings, checkout_context=context) as base, captured_logs() as lines:
        created = Api(base, test_tenant.key).post("/transaction/session-checkout", json=body)
        assert created.status_code == 200, created.text
        live = Api(base, live_tenant.key).post("/transaction/session-checkout", json=body)
        assert live.status_code == 200, live.text
    session = created.json()
    first = session["amounts"][0]
    [line] = lines_of(lines, "devnet_session_created")
    assert line["session_uuid"] == session["uuid"]
    assert line["link"] == session["link"]
    assert line["pay_command"] == (
        f"chainpay devnet pay {session['uuid']} --chain {first['chainId']} "
        f"--token {first['symbol']}"
    )
    assert test_tenant.key not in json.dumps(line)  # no secrets in the line


def _signed(secret: str, body: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    headers = delivery_headers(
        event_id="evt_1",
        event_type=str(body["type"]),
        body=text,
        timestamp=int(time.time()),
        secrets=[secret],
    )
    return text.encode(), headers


def test_a_signed_delivery_verifies_by_both_schemes() -> None:
    secret = new_secret()
    body, headers = _signed(secret, {"type": "session.completed", "uuid": "u-1", "price": 12.5})
    verdict = check_delivery(secret, body, headers, now=int(time.time()))
    assert (verdict.event_type, verdict.event_id) == ("session.completed", "evt_1")
    assert verdict.line() == "session.completed  evt_1  standardwebhooks: ok  qbitflow-v1: ok"


def test_a_changed_body_or_another_secret_fails_both_schemes() -> None:
    secret = new_secret()
    body, headers = _signed(secret, {"type": "session.completed", "uuid": "u-1", "price": 12.5})
    changed = body.replace(b"12.5", b"1.25")
    for candidate, sent in ((secret, changed), (new_secret(), body)):
        verdict = check_delivery(candidate, sent, headers, now=int(time.time()))
        assert verdict.standard_error is not None
        assert verdict.qbitflow_error is not None
        assert "standardwebhooks: FAILED" in verdict.line()
        assert "qbitflow-v1: FAILED" in verdict.line()
    unsigned = check_delivery(secret, body, {"content-type": "application/json"}, now=0)
    assert unsigned.standard_error == "Missing required headers"
    assert unsigned.qbitflow_error is not None


@contextmanager
def listening(
    tmp_path: Path, database_url: str, *args: str, **env: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`chainpay dev webhook-listen` as a real process; yields it and its first line."""
    process = subprocess.Popen(
        [*CLI, "dev", "webhook-listen", *args],
        cwd=tmp_path,
        env={
            **clean_env(),
            "CHAINPAY_DATABASE_URL": database_url,
            "CHAINPAY_SECRET_KEY": TEST_SECRET_KEY,
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        yield process, first
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_line(process: subprocess.Popen[str], pattern: str) -> str:
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"no line matching {pattern!r} in {seen}")


def test_webhook_listen_prints_a_verified_test_delivery_and_removes_its_endpoint(
    tmp_path: Path, settings: Settings, database_url: str, base_url: str
) -> None:
    tenant: Tenant = make_tenant(database_url, test=True)
    sandbox = Api(base_url, tenant.key)
    chains = tmp_path / "chains.toml"
    chains.write_text(LIVE_CHAIN)
    with listening(
        tmp_path,
        database_url,
        "--org",
        str(tenant.organization_id),
        CHAINPAY_CHAINS_FILE=str(chains),
        CHAINPAY_WEBHOOKS_ALLOW_PRIVATE="true",
    ) as (process, first):
        found = re.search(r"Listening on (\S+): test endpoint (\S+) of organization", first)
        assert found, first
        url, endpoint_uuid = found.groups()
        assert url.startswith("http://127.0.0.1:")
        endpoint = sandbox.get(f"/webhooks/endpoints/{endpoint_uuid}")
        assert endpoint.status_code == 200, endpoint.text
        assert endpoint.json()["url"] == url
        assert endpoint.json()["test"] is True
        queued = sandbox.post(f"/webhooks/endpoints/{endpoint_uuid}/test")
        assert queued.status_code == 202, queued.text
        assert send_due(database_url, settings) >= 1
        line = _wait_for_line(process, r"^webhook\.test ")
        assert line.split() == [
            "webhook.test",
            queued.json()["eventId"],
            "standardwebhooks:",
            "ok",
            "qbitflow-v1:",
            "ok",
        ]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert f"Endpoint {endpoint_uuid} removed." in out
        assert "whsec_" not in out + err  # the secret is never printed
    assert sandbox.get(f"/webhooks/endpoints/{endpoint_uuid}").status_code == 404


def test_webhook_listen_refuses_loopback_when_the_server_would_not_deliver_there(
    tmp_path: Path, database_url: str
) -> None:
    chains = tmp_path / "chains.toml"
    chains.write_text(LIVE_CHAIN)
    done = subprocess.run(
        [*CLI, "dev", "webhook-listen"],
        cwd=tmp_path,
        env={
            **clean_env(),
            "CHAINPAY_DATABASE_URL": database_url,
            "CHAINPAY_SECRET_KEY": TEST_SECRET_KEY,
            "CHAINPAY_CHAINS_FILE": str(chains),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "CHAINPAY_WEBHOOKS_ALLOW_PRIVATE=true" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2


@pytest.mark.parametrize("command", [["demo"], ["dev"], ["dev", "webhook-listen"]])
def test_demo_and_dev_commands_have_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
