"""`chainpay demo` and `chainpay dev webhook-listen` as a newcomer runs them: real processes in an
empty directory, the devnet (anvil), the printed pay command, signed deliveries verified."""

from __future__ import annotations

import re
import shlex
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.chainpay.test_cli import CLI, clean_env
from tests.harness.chains import require_anvil
from tests.harness.server import free_port

pytestmark = pytest.mark.slow

VERIFIED = re.compile(r"^(\S+)  (evt_\S+)  standardwebhooks: ok  qbitflow-v1: ok$")


class Running:
    """A chainpay process whose stdout is read line by line in the background."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [*CLI, *args],
            cwd=cwd,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 90) -> re.Match[str]:
        """The first line from index `after` on matching `pattern`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                found = re.search(pattern, line)
                if found:
                    return found
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r}: {self.lines}")

    def finish(self, timeout: float = 90) -> int:
        """Wait for the exit; returns the exit code."""
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)


@contextmanager
def running(cwd: Path, *args: str) -> Iterator[Running]:
    started = Running(cwd, *args)
    try:
        yield started
    finally:
        started.stop()


def test_demo_and_webhook_listen_show_a_paid_session_and_its_verified_webhooks(
    tmp_path: Path,
) -> None:
    require_anvil()
    with running(tmp_path, "demo", "--port", str(free_port())) as demo:
        # First start in an empty directory, then the session, its page and how to pay it.
        key_line = demo.wait_for(r"^  (cp_test_\S+)$")
        page = demo.wait_for(r"^Checkout page: (http://127\.0\.0\.1:\d+/pay/(\S+))$")
        command = demo.wait_for(r"^Pay it from another terminal: (chainpay devnet pay .+)$")
        link, uuid = page.groups()
        assert command.group(1).startswith(f"chainpay devnet pay {uuid} --chain 31337 ")
        assert httpx.get(link, timeout=10).status_code == 200

        with running(tmp_path, "dev", "webhook-listen") as listener:
            listener.wait_for(r"^Listening on http://127\.0\.0\.1:\d+/webhook: test endpoint ")
            # The exact command the demo printed pays the session.
            words = shlex.split(command.group(1))
            paid = subprocess.run(
                [*CLI, *words[1:]],
                cwd=tmp_path,
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert paid.returncode == 0, paid.stderr
            assert demo.finish() == 0, demo.lines
            assert "Status: completed (paid 19.99 of 19.99 USD)" in demo.lines
            listener.wait_for(
                r"^session\.completed  evt_\S+  standardwebhooks: ok  qbitflow-v1: ok$"
            )
            first_run = len(listener.lines)

            # `demo --pay` on the same directory: no first start, paid on the devnet, completed.
            again = subprocess.run(
                [*CLI, "demo", "--pay", "--port", str(free_port())],
                cwd=tmp_path,
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            assert again.returncode == 0, again.stdout + again.stderr
            assert "cp_test_" not in again.stdout  # the first start's key is printed once only
            assert "Status: completed (paid 19.99 of 19.99 USD)" in again.stdout
            assert re.search(r"^Sent 0x[0-9a-f]{64}$", again.stdout, re.MULTILINE)
            listener.wait_for(
                r"^session\.completed  evt_\S+  standardwebhooks: ok  qbitflow-v1: ok$",
                after=first_run,
            )
            deliveries = [line for line in listener.lines if line.split()[:1] != ["Listening"]]
            delivered = [line for line in deliveries if "  evt_" in line]
            assert delivered, listener.lines
            assert all(VERIFIED.match(line) for line in delivered), delivered
            listener.stop()
            assert listener.process.returncode == 0
            assert any(line.endswith(" removed.") for line in listener.lines)
            printed = "\n".join(listener.lines)
            assert "whsec_" not in printed

    # The demo's own keys were never printed and are revoked; the listener's endpoint is gone.
    database = sqlite3.connect(tmp_path / "chainpay.db")
    try:
        keys = database.execute(
            "SELECT revoked_at FROM api_keys WHERE name = 'chainpay demo'"
        ).fetchall()
        endpoints = database.execute("SELECT count(*) FROM webhook_endpoints").fetchone()
    finally:
        database.close()
    assert len(keys) == 2
    assert all(revoked is not None for (revoked,) in keys)
    assert endpoints == (0,)
    assert key_line.group(1) not in again.stdout
