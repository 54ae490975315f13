"""The README's first command on a clean virtualenv (`pip install -e .`, no dev extras).

Run by .ci/run with that virtualenv's python: imports every module of the packages, then runs
`chainpay init --json` in one empty directory and `chainpay serve` in another until `/health`
answers, stops it with SIGTERM and expects exit code 0. Anything a package on the CI machine
could stand in for (a dependency pyproject.toml forgot) fails here.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "api", "chain", "chainpay", "bot")
SERVE_TIMEOUT_S = 180.0


def import_everything() -> int:
    sys.path.insert(0, str(ROOT))
    count = 0
    for name in PACKAGES:
        package = importlib.import_module(name)
        count += 1
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if info.name.endswith(".__main__"):  # runs the CLI when imported
                continue
            importlib.import_module(info.name)
            count += 1
    return count


def chainpay_command() -> str:
    command = Path(sys.executable).with_name("chainpay")
    if not command.exists():
        raise SystemExit(f"`chainpay` is not installed next to {sys.executable}")
    return str(command)


def clean_env() -> dict[str, str]:
    """The caller's environment without any chainpay setting (a new user has none)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_init(chainpay: str, workdir: Path) -> None:
    done = subprocess.run(
        [chainpay, "init", "--json"],
        cwd=workdir,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"chainpay init --json failed ({done.returncode}):\n{done.stderr}")
    created = json.loads(done.stdout)
    if not str(created.get("api_key", "")).startswith("cp_live_"):
        raise SystemExit(f"chainpay init --json printed no live API key: {done.stdout}")


def check_serve(chainpay: str, workdir: Path) -> float:
    port = free_port()
    started = time.monotonic()
    log = (workdir / "serve.log").open("w")
    proc = subprocess.Popen(
        [chainpay, "serve", "--port", str(port)],
        cwd=workdir,
        env=clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(
                    f"chainpay serve exited with {proc.returncode} before /health answered:\n"
                    + (workdir / "serve.log").read_text()
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() - started > SERVE_TIMEOUT_S:
                raise SystemExit(
                    f"/health did not answer within {SERVE_TIMEOUT_S:.0f} s:\n"
                    + (workdir / "serve.log").read_text()
                )
            time.sleep(0.25)
        took = time.monotonic() - started
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        if code != 0:
            raise SystemExit(
                f"chainpay serve exited with {code} on SIGTERM (expected 0):\n"
                + (workdir / "serve.log").read_text()
            )
        return took
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def main() -> None:
    count = import_everything()
    print(f"imported {count} modules of {', '.join(PACKAGES)}")
    chainpay = chainpay_command()
    with tempfile.TemporaryDirectory(prefix="chainpay-init-") as init_dir:
        check_init(chainpay, Path(init_dir))
    print("chainpay init --json: ok")
    with tempfile.TemporaryDirectory(prefix="chainpay-serve-") as serve_dir:
        took = check_serve(chainpay, Path(serve_dir))
    print(f"chainpay serve in an empty directory: /health answered after {took:.1f} s, exit 0")


if __name__ == "__main__":
    main()
