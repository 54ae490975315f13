"""Benchmark: the roles scaled out against one `chainpay serve`, the same scenario on PostgreSQL.

    python bench/scale_out.py [--sessions 500] [--runs 1] [--concurrency 16]
                              [--block-time 0.5] [--postgres URL] [--json PATH]

Two anvil chains (blocks every --block-time seconds) shared by every run, and per run a fresh
PostgreSQL database on the server of --postgres (default $CHAINPAY_TEST_POSTGRES_URL), and
one of two deployments, each behind the same round-robin HTTP proxy (tests/harness/proxy.py):
  roles: 2 `chainpay api`, 2 `chainpay worker`, 2 `chainpay watcher`;
  serve: 1 `chainpay serve` (everything in one process).
The scenario (tests/harness/scale_out.py, the same one tests/chainpay/test_scale_out.py
asserts): two webhook endpoints, --sessions checkout sessions created through the proxy by
--concurrency clients (QBitFlow `POST /v1/transaction/session-checkout`, a test key), each paid
in full on one chain (alternating), then waiting until every session is completed and every
event is at both endpoints. Figures per run:
  sessions created per second through the proxy (wall time of all creations);
  seconds from the last payment mined (its receipt seen) to the last delivery received;
and the ratios roles / serve of the medians. Every run also checks correctness (each session
completed once, each event delivered once per endpoint, no 5xx): a broken promise is printed
and makes the exit status 1.

The machine is shared: the CPU time the hypervisor took meanwhile ("steal") is printed with
each run, and the two deployments alternate so drift hits both alike. `--json PATH` writes the
figures machine-readably (for `python -m bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import steal_seconds  # noqa: E402  (bench/machine.py)

from chain.devnet import running_devnet  # noqa: E402
from tests.harness.scale_out import (  # noqa: E402
    CONFIRMATIONS,
    POLL_SECONDS,
    Mode,
    Outcome,
    postgres_database,
    run_scenario,
)

MODES: tuple[Mode, ...] = ("serve", "roles")


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return 0.0


def server_version(admin_url: str) -> str:
    import asyncpg

    async def go() -> str:
        connection = await asyncpg.connect(admin_url.replace("+asyncpg", "", 1))
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    return asyncio.run(go())


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=500, help="Sessions per run")
    parser.add_argument("--runs", type=int, default=1, help="Runs per deployment (median shown)")
    parser.add_argument("--concurrency", type=int, default=16, help="Clients creating sessions")
    parser.add_argument("--block-time", type=float, default=0.5, help="anvil seconds per block")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CHAINPAY_TEST_POSTGRES_URL"),
        help="A PostgreSQL server (postgresql://user@host:port/db): a fresh database per run "
        "(default $CHAINPAY_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--json", type=Path, default=None, help="Write the figures here (JSON)")
    args = parser.parse_args()
    if not args.postgres:
        parser.error(
            "give --postgres URL (or set CHAINPAY_TEST_POSTGRES_URL): roles need PostgreSQL"
        )

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {memory_gib()} GiB, "
        f"Python {platform.python_version()}, PostgreSQL {server_version(args.postgres)}"
    )
    print(
        f"scenario: {args.sessions} sessions, {args.concurrency} clients through a round-robin "
        f"proxy, 2 anvil chains at {args.block_time} s blocks, {CONFIRMATIONS} confirmations, "
        f"2 webhook endpoints, watcher and sender polls {POLL_SECONDS} s"
    )
    runs: list[dict[str, Any]] = []
    broken = False
    with running_devnet(block_time=args.block_time) as devnet, tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for mode in MODES:  # alternate, so drift hits both alike
                directory = Path(tmp) / f"{mode}-{run}"
                directory.mkdir()
                stolen = steal_seconds()
                with postgres_database(args.postgres) as database_url:
                    outcome: Outcome = run_scenario(
                        mode,
                        database_url,
                        devnet,
                        directory,
                        sessions=args.sessions,
                        concurrency=args.concurrency,
                    )
                stolen = steal_seconds() - stolen
                figures = outcome.figures
                print(
                    f"  {mode:<6} {figures['sessions_created_per_second']:7.1f} sessions/s created"
                    f"   last mined -> last delivery {figures['last_mined_to_last_delivery_seconds']:6.2f} s"
                    f"   {figures['deliveries_received']} deliveries   (steal {stolen:4.1f} s)"
                )
                for problem in outcome.problems:
                    broken = True
                    print(f"    BROKEN: {problem}")
                runs.append(
                    {
                        "mode": mode,
                        "run": run,
                        "steal_s": round(stolen, 2),
                        "problems": outcome.problems,
                        **{k: v for k, v in figures.items() if k not in ("leases",)},
                    }
                )

    def median(mode: Mode, key: str) -> float:
        return float(statistics.median(r[key] for r in runs if r["mode"] == mode))

    created = {mode: median(mode, "sessions_created_per_second") for mode in MODES}
    latency = {mode: median(mode, "last_mined_to_last_delivery_seconds") for mode in MODES}
    created_ratio = created["roles"] / created["serve"]
    latency_ratio = latency["roles"] / latency["serve"]
    print(f"median over {args.runs} run(s):")
    print(
        f"  sessions created/s: serve {created['serve']:.1f}, roles {created['roles']:.1f}, "
        f"roles/serve {created_ratio:.2f} (higher is better)"
    )
    print(
        f"  last mined -> last delivery: serve {latency['serve']:.2f} s, roles "
        f"{latency['roles']:.2f} s, roles/serve {latency_ratio:.2f} (lower is better)"
    )
    print(f"  correctness: {'BROKEN (see above)' if broken else 'every promise held in every run'}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "database": "postgresql",
                    "machine": {
                        "cores": os.cpu_count(),
                        "memory_gib": memory_gib(),
                        "python": platform.python_version(),
                        "postgresql": server_version(args.postgres),
                    },
                    "parameters": {
                        "sessions": args.sessions,
                        "runs": args.runs,
                        "concurrency": args.concurrency,
                        "block_time_s": args.block_time,
                        "confirmations": CONFIRMATIONS,
                        "poll_s": POLL_SECONDS,
                        "endpoints": 2,
                        "roles": {"api": 2, "worker": 2, "watcher": 2},
                    },
                    "median": {
                        "sessions_created_per_s": {m: round(v, 1) for m, v in created.items()},
                        "last_mined_to_last_delivery_s": {
                            m: round(v, 3) for m, v in latency.items()
                        },
                        "created_ratio_roles_over_serve": round(created_ratio, 3),
                        "latency_ratio_roles_over_serve": round(latency_ratio, 3),
                    },
                    "correct": not broken,
                    "runs": runs,
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
