"""Benchmark: the merchant API's hot path against a bare FastAPI endpoint, driven by wrk.

    python bench/api_hot_path.py [--duration 10] [--connections 1,16]
                                 [--database-url postgresql+asyncpg://user@host:port/db]
                                 [--json PATH]

Two servers, each a real subprocess under uvicorn on 127.0.0.1:
  (a) bare: a FastAPI app answering a constant JSON on GET and POST of the same paths;
  (b) `chainpay api` on a fresh database (SQLite file by default; with --database-url a
      PostgreSQL server, on which a fresh database is created and dropped afterwards), rate
      limit off, one organization with a test API key and an account xpub set up beforehand,
      one test chain configured with a dummy RPC URL (the `api` role never contacts a node: the
      token's decimals are given).
Three requests, each with the X-API-Key header (the bare app ignores it):
  POST /v1/transaction/session-checkout   {"productName":"Ebook","description":"PDF","price":"19.99"}
  GET  /v1/transaction/session-checkout/{uuid}   (a session made beforehand)
  GET  /v1/product/
`wrk -t1 -cN -dD --latency` per request and connection count, the bare server and chainpay
alternating so drift hits both alike. Prints requests/s, p50, p99, socket errors and timeouts,
non-2xx answers (wrk counts them; none are expected) and the ratio chainpay / bare of
requests/s, then checks that the deposit addresses handed out are unique and gap-free. Writes
the rows into bench/results.json under "api" -> the database kind (other keys are kept), or
with --json PATH that section alone into PATH (bench/results.json untouched; `python -m bench`).

Every figure is a ratio against the bare endpoint measured in the same run: the machine is
shared (the CPU time the hypervisor took meanwhile, "steal", is printed with each run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from machine import steal_seconds  # bench/machine.py

BODY = '{"productName":"Ebook","description":"PDF","price":"19.99"}'
RESULTS = Path(__file__).with_name("results.json")
CHAIN_ID = 31337
# Any address works: nothing reads the contract (decimals are given).
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

BARE_APP = """
from fastapi import FastAPI
from fastapi.responses import JSONResponse

app = FastAPI()
ANSWER = {"uuid": "00000000-0000-0000-0000-000000000000", "ok": True}


@app.api_route("/v1/transaction/session-checkout", methods=["GET", "POST"])
@app.api_route("/v1/transaction/session-checkout/{uuid}", methods=["GET", "POST"])
@app.api_route("/v1/product/", methods=["GET", "POST"])
async def constant() -> JSONResponse:
    return JSONResponse(ANSWER)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def fresh_postgres_database(url: str, prefix: str) -> tuple[str, str]:
    """CREATE DATABASE on the server of `url`: (its SQLAlchemy URL, its name)."""
    import asyncpg

    server = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    name = f"{prefix}{secrets.token_hex(4)}"
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}", name


async def drop_postgres_database(url: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def set_up_tenant(database_url: str, secret_key_file: Path) -> tuple[str, int]:
    """Organization, owner, test key and account xpub: (the raw key, the organization's id)."""
    from chainpay.bootstrap import create_organization
    from core.config import Settings
    from core.db import create_engine, create_sessionmaker, transaction
    from core.wallet import service as wallet_service
    from core.wallet.derivation import account_xpub_from_mnemonic, generate_dev_mnemonic

    settings = Settings(database_url=database_url, secret_key_file=secret_key_file)
    created = await create_organization(
        settings,
        name="Bench",
        owner_email=f"bench-{secrets.token_hex(4)}@shop.example",
        test_key=True,
        first=False,
    )
    engine = create_engine(database_url, pool=False)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            xpub = account_xpub_from_mnemonic(generate_dev_mnemonic())
            await wallet_service.set_xpub(session, created.organization_id, xpub)
    finally:
        await engine.dispose()
    return created.api_key, created.organization_id


async def address_check(database_url: str, organization_id: int) -> str:
    """Deposit addresses of the organization: unique and gap-free, or what is wrong."""
    from sqlalchemy import func, select

    from core.db import create_engine, create_sessionmaker
    from core.models import DepositAddress

    engine = create_engine(database_url, pool=False)
    try:
        async with create_sessionmaker(engine)() as session:
            count, distinct, low, high = (
                await session.execute(
                    select(
                        func.count(DepositAddress.id),
                        func.count(func.distinct(DepositAddress.address)),
                        func.min(DepositAddress.derivation_index),
                        func.max(DepositAddress.derivation_index),
                    ).where(DepositAddress.organization_id == organization_id)
                )
            ).one()
    finally:
        await engine.dispose()
    ok = count == distinct and (count == 0 or (low == 0 and high == count - 1))
    return (
        f"{'ok' if ok else 'BROKEN'}: {count} addresses, {distinct} distinct, indices {low}..{high}"
    )


def lua_script(directory: Path, key: str, method: str, body: str | None) -> Path:
    path = directory / f"{method.lower()}-{secrets.token_hex(2)}.lua"
    lines = [f'wrk.method = "{method}"', f'wrk.headers["X-API-Key"] = "{key}"']
    if body is not None:
        lines += [
            'wrk.headers["Content-Type"] = "application/json"',
            f"wrk.body = {json.dumps(body)}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """requests/s, p50/p99 in ms, socket errors (connect/read/write/timeout), non-2xx/3xx."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    connect, read, write, timeout = (int(g) for g in errors.groups()) if errors else (0, 0, 0, 0)
    return {
        "requests_per_s": rps,
        "requests": int(total.group(1)) if total else 0,
        "p50_ms": _ms(p50.group(1)) if p50 else None,
        "p99_ms": _ms(p99.group(1)) if p99 else None,
        "socket_errors": connect + read + write,
        "timeouts": timeout,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def run_wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, Any]:
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return parse_wrk(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="Seconds per wrk run")
    parser.add_argument(
        "--connections", default="1,16", help="Comma-separated wrk connection counts"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="postgresql+asyncpg://user@host:port/db: a fresh database on that server "
        "(dropped afterwards); default: a fresh SQLite file",
    )
    parser.add_argument(
        "--database-prefix", default="chainpay_bench_", help="Name prefix of the fresh database"
    )
    parser.add_argument("--keep", action="store_true", help="Keep the PostgreSQL database")
    parser.add_argument(
        "--only", default=None, help="Comma-separated subset of: create,get,products"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="Write this run's section here instead of into bench/results.json",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    connection_counts = [int(c) for c in args.connections.split(",")]
    python = sys.executable
    root = Path(__file__).resolve().parent.parent

    from chainpay.migrations import upgrade

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pg_name = None
        if args.database_url:
            database_url, pg_name = asyncio.run(
                fresh_postgres_database(args.database_url, args.database_prefix)
            )
            kind = "postgresql"
        else:
            database_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
            kind = "sqlite"
        processes: list[subprocess.Popen[bytes]] = []
        try:
            upgrade(database_url)
            secret_key_file = tmp / "secret.key"
            key, organization_id = asyncio.run(set_up_tenant(database_url, secret_key_file))
            chains = tmp / "chains.toml"
            chains.write_text(
                "[[chains]]\n"
                f"id = {CHAIN_ID}\n"
                'name = "Bench"\n'
                'rpc_urls = ["http://127.0.0.1:9"]\n'
                "confirmations = 1\n"
                "test = true\n"
                f'tokens = [{{ symbol = "USDT", contract = "{TOKEN}", decimals = 6 }}]\n'
            )
            (tmp / "bare_app.py").write_text(BARE_APP)

            bare_port, api_port = free_port(), free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")} | {
                "CHAINPAY_DATABASE_URL": database_url,
                "CHAINPAY_RATE_LIMIT_PER_MINUTE": "0",
                "CHAINPAY_CHAINS_FILE": str(chains),
                "CHAINPAY_SECRET_KEY_FILE": str(secret_key_file),
                "CHAINPAY_AUTO_MIGRATE": "false",
                "CHAINPAY_LOG_LEVEL": "warning",
            }
            bare_log, api_log = tmp / "bare.log", tmp / "api.log"
            with bare_log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [
                            python,
                            "-m",
                            "uvicorn",
                            "--app-dir",
                            str(tmp),
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(bare_port),
                            "--log-level",
                            "warning",
                            "--no-server-header",
                            "bare_app:app",
                        ],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=tmp,
                    )
                )
            with api_log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [
                            python,
                            "-m",
                            "chainpay",
                            "api",
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(api_port),
                        ],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=tmp,
                        env=env
                        | {
                            "PYTHONPATH": os.pathsep.join(
                                filter(None, [str(root), env.get("PYTHONPATH")])
                            )
                        },
                    )
                )
            wait_ready(bare_port, processes[0], bare_log)
            wait_ready(api_port, processes[1], api_log)
            (tmp / "api.pid").write_text(str(processes[1].pid))
            print(f"chainpay api pid {processes[1].pid} (for py-spy)", flush=True)

            api = f"http://127.0.0.1:{api_port}"
            made = httpx.post(
                f"{api}/v1/transaction/session-checkout",
                content=BODY,
                headers={"X-API-Key": key, "Content-Type": "application/json"},
                timeout=30,
            )
            made.raise_for_status()
            uuid = made.json()["uuid"]
            requests = {
                "create": (
                    "POST /v1/transaction/session-checkout",
                    "/v1/transaction/session-checkout",
                    lua_script(tmp, key, "POST", BODY),
                ),
                "get": (
                    "GET /v1/transaction/session-checkout/{uuid}",
                    f"/v1/transaction/session-checkout/{uuid}",
                    lua_script(tmp, key, "GET", None),
                ),
                "products": ("GET /v1/product/", "/v1/product/", lua_script(tmp, key, "GET", None)),
            }
            if args.only:
                requests = {k: v for k, v in requests.items() if k in args.only.split(",")}
            # One answer of each through chainpay, so that nothing below is a first request.
            for _, path, _ in requests.values():
                if path != "/v1/transaction/session-checkout":
                    httpx.get(api + path, headers={"X-API-Key": key}, timeout=30).raise_for_status()

            import sqlalchemy
            import uvicorn

            print(
                f"machine: {platform.machine()}, {os.cpu_count()} cores, "
                f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB, "
                f"Python {platform.python_version()}, uvicorn {uvicorn.__version__}, "
                f"SQLAlchemy {sqlalchemy.__version__}, "
                f"{subprocess.run(['wrk', '-v'], capture_output=True, text=True).stdout.split(' [')[0].strip()}"
            )
            print(
                f"database: {kind}; wrk -t1 -cN -d{args.duration}s --latency; "
                "rate limit off; one uvicorn worker each"
            )
            rows: list[dict[str, Any]] = []
            header = (
                f"{'request':<45} {'conn':>4} {'server':<8} {'req/s':>9} {'p50 ms':>8} "
                f"{'p99 ms':>8} {'err/to':>7} {'non2xx':>6} {'ratio':>6} {'steal s':>7}"
            )
            print(header)
            for connections in connection_counts:
                for name, (label, path, script) in requests.items():
                    bare: dict[str, Any] | None = None
                    for server, base in (("bare", bare_port), ("chainpay", api_port)):
                        stolen = steal_seconds()
                        result = run_wrk(
                            f"http://127.0.0.1:{base}{path}", script, connections, args.duration
                        )
                        stolen = steal_seconds() - stolen
                        if server == "bare":
                            bare = result
                            ratio = None
                        else:
                            assert bare is not None
                            ratio = result["requests_per_s"] / bare["requests_per_s"]
                        row = {
                            "database": kind,
                            "request": label,
                            "name": name,
                            "connections": connections,
                            "server": server,
                            **result,
                            "ratio": None if ratio is None else round(ratio, 4),
                            "steal_s": round(stolen, 2),
                        }
                        rows.append(row)
                        print(
                            f"{label:<45} {connections:>4} {server:<8} "
                            f"{result['requests_per_s']:>9,.0f} {result['p50_ms'] or 0:>8.2f} "
                            f"{result['p99_ms'] or 0:>8.2f} "
                            f"{result['socket_errors']:>3}/{result['timeouts']:<3} "
                            f"{result['non_2xx']:>6} "
                            f"{'' if ratio is None else f'{ratio:.3f}':>6} {stolen:>7.1f}",
                            flush=True,
                        )
            check = asyncio.run(address_check(database_url, organization_id))
            print(f"deposit addresses: {check}")
        finally:
            for process in processes:
                stop(process)
            if pg_name is not None and not args.keep:
                asyncio.run(drop_postgres_database(args.database_url, pg_name))

    section = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "arch": platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "parameters": {"duration_s": args.duration, "connections": connection_counts},
        "addresses": check,
        "rows": rows,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(section, indent=2) + "\n")
        print(f"written to {args.json}")
        return
    existing: dict[str, Any] = {}
    if RESULTS.exists():
        existing = json.loads(RESULTS.read_text())
    existing.setdefault("api", {})[kind] = section
    RESULTS.write_text(json.dumps(existing, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
