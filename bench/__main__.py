"""Every benchmark in one run: one table of ratios against baselines measured in the same run.

    python -m bench [--only api,watcher,latency,webhooks,bot,scale-out] [--quick] [--large]
                    [--database-url postgresql+asyncpg://user@host:port/db] [--no-postgres]
                    [--output bench/results.json]

Runs each script of bench/ as a subprocess of its own (one that crashes does not hide the
others; its log is kept and named), collects the JSON each writes (`--json PATH`), writes them
all into bench/results.json (one key per benchmark, then one per database; the other keys of the
file are kept) and prints one Markdown table with the machine, the versions and every parameter
above it. The benchmarks (issue 16):
  api       bench/api_hot_path.py: session creation and two authenticated reads vs a bare
            FastAPI endpoint under wrk, 1 and 16 connections;
  watcher   bench/watcher_backfill.py --no-latency: the watcher's scan vs plain eth_getLogs of
            the same range, once per number of open deposit addresses: 1,000 and 100,000,
            with --large also 1,000,000 (inserting those alone takes minutes: opt-in);
  latency   bench/watcher_backfill.py --no-scan: block final -> session completed in the
            database, and -> `session.completed` webhook received and verified by a local
            receiver, 1 s blocks;
  webhooks  bench/webhook_delivery.py: deliveries/s with 1 and 50 endpoints, alone and beside
            an endpoint that never answers (SQLite);
  bot       bench/bot_updates.py: updates/s through chainpay's bot vs aiogram's echo bot on the
            same fake Bot API server (SQLite);
  scale-out bench/scale_out.py: 2 api (behind a round-robin proxy) + 2 worker + 2 watcher vs
            one `chainpay serve`: sessions created/s, last payment to last webhook (PostgreSQL
            only: skipped without a server).
api, watcher and latency run on SQLite and, when a PostgreSQL server is given (--database-url,
or else CHAINPAY_TEST_POSTGRES_URL), on a fresh database on it too (dropped afterwards).
`--quick` shrinks every duration and size so that the whole table appears in a few minutes: it
checks the runner, its figures mean nothing (the table says so), and it writes to a file in the
temporary directory unless --output is given. Needs wrk (`apt-get install -y wrk`) and anvil
(found or fetched by chain/devnet.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BENCHMARKS = ("api", "watcher", "latency", "webhooks", "bot", "scale-out")
FULL: dict[str, Any] = {
    "api": {"duration": 10, "connections": "1,16"},
    "watcher": {"logs": 20_000, "rounds": 5, "matching": 200, "open": [1_000, 100_000]},
    "large_open": 1_000_000,
    "latency": {"payments": 200},
    "webhooks": {"deliveries": 4000, "runs": 5},
    "bot": {"updates": 2000, "rounds": 3},
    "scale-out": {"sessions": 500, "runs": 1},
}
QUICK: dict[str, Any] = {
    "api": {"duration": 2, "connections": "1,16"},
    "watcher": {"logs": 2000, "rounds": 1, "matching": 20, "open": [1_000, 10_000]},
    "large_open": 100_000,
    "latency": {"payments": 20},
    "webhooks": {"deliveries": 200, "runs": 1},
    "bot": {"updates": 100, "rounds": 1},
    "scale-out": {"sessions": 50, "runs": 1},
}
API_LABELS = {
    "create": "POST session-checkout",
    "get": "GET session-checkout/{uuid}",
    "products": "GET product/",
}


def steal_seconds() -> float:
    """As bench/machine.py (a sibling module of the scripts, not importable from here)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class Job:
    benchmark: str
    database: str  # sqlite | postgresql
    case: str  # "" or the open-address count of a watcher run
    script: str
    arguments: list[str]
    fresh_postgres: bool = False  # the runner makes (and drops) a database for it
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return " ".join(filter(None, [self.benchmark, self.database, self.case]))


# --- PostgreSQL ------------------------------------------------------------------------------


def asyncpg_url(url: str) -> str:
    """postgresql[+driver]://... as SQLAlchemy's asyncpg URL."""
    scheme, rest = url.split("://", 1)
    if not scheme.startswith("postgres"):
        raise SystemExit(f"--database-url: not a PostgreSQL URL: {scheme}://...")
    return f"postgresql+asyncpg://{rest}"


def plain_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


async def _execute(server_url: str, statement: str) -> Any:
    import asyncpg

    connection = await asyncpg.connect(plain_url(server_url))
    try:
        return await connection.fetchval(statement)
    finally:
        await connection.close()


def create_database(server_url: str) -> tuple[str, str]:
    """A fresh database on the server of `server_url`: (its asyncpg URL, its name)."""
    name = f"chainpay_bench_{secrets.token_hex(4)}"
    asyncio.run(_execute(server_url, f'CREATE DATABASE "{name}"'))
    return f"{asyncpg_url(server_url).rsplit('/', 1)[0]}/{name}", name


def drop_database(server_url: str, name: str) -> None:
    asyncio.run(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- the machine -----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tool_version(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip().splitlines()
    if not text:
        return None
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright ...", "anvil Version: 1.7.1-..."
    words = text[0].split(" [")[0].split()
    return " ".join(w for w in words if w.lower() not in (Path(command[0]).name, "version:"))


def machine(postgres: str | None) -> dict[str, Any]:
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    for package in ("sqlalchemy", "fastapi", "uvicorn", "web3", "aiogram", "asyncpg"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["postgresql"] = (
        str(asyncio.run(_execute(postgres, "SHOW server_version"))) if postgres else None
    )
    versions["wrk"] = tool_version(["wrk", "-v"])
    anvil = shutil.which("anvil") or str(
        ROOT / ".cache" / "npm" / "node_modules" / ".bin" / "anvil"
    )
    versions["anvil"] = tool_version([anvil, "--version"])
    return {
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "versions": versions,
    }


# --- running ---------------------------------------------------------------------------------


def plan(args: argparse.Namespace, sizes: dict[str, Any], postgres: str | None) -> list[Job]:
    databases = ["sqlite"] + (["postgresql"] if postgres else [])
    jobs: list[Job] = []
    for benchmark in args.only:
        if benchmark == "api":
            api = sizes["api"]
            for database in databases:
                jobs.append(
                    Job(
                        "api",
                        database,
                        "",
                        "api_hot_path.py",
                        ["--duration", str(api["duration"]), "--connections", api["connections"]]
                        + (
                            ["--database-url", asyncpg_url(postgres)]
                            if postgres and database != "sqlite"
                            else []
                        ),
                    )
                )
        elif benchmark == "watcher":
            watcher = sizes["watcher"]
            counts = list(watcher["open"]) + ([sizes["large_open"]] if args.large else [])
            for database in databases:
                for count in counts:
                    # Each round pays its own `matching` sessions (5 more pay in the warm-up).
                    matching = min(watcher["matching"], (count - 5) // (2 * watcher["rounds"]))
                    jobs.append(
                        Job(
                            "watcher",
                            database,
                            str(count),
                            "watcher_backfill.py",
                            [
                                "--no-latency",
                                "--open",
                                str(count),
                                "--logs",
                                str(watcher["logs"]),
                                "--rounds",
                                str(watcher["rounds"]),
                                "--matching",
                                str(matching),
                            ],
                            fresh_postgres=database != "sqlite",
                        )
                    )
        elif benchmark == "latency":
            for database in databases:
                jobs.append(
                    Job(
                        "latency",
                        database,
                        "",
                        "watcher_backfill.py",
                        ["--no-scan", "--payments", str(sizes["latency"]["payments"])],
                        fresh_postgres=database != "sqlite",
                    )
                )
        elif benchmark == "webhooks":
            hooks = sizes["webhooks"]
            jobs.append(
                Job(
                    "webhooks",
                    "sqlite",
                    "",
                    "webhook_delivery.py",
                    ["--deliveries", str(hooks["deliveries"]), "--runs", str(hooks["runs"])],
                )
            )
        elif benchmark == "bot":
            bot = sizes["bot"]
            jobs.append(
                Job(
                    "bot",
                    "sqlite",
                    "",
                    "bot_updates.py",
                    ["--updates", str(bot["updates"]), "--rounds", str(bot["rounds"])],
                )
            )
        elif benchmark == "scale-out" and postgres:
            # The roles need PostgreSQL; the script makes a database per run on the server.
            out = sizes["scale-out"]
            jobs.append(
                Job(
                    "scale-out",
                    "postgresql",
                    "",
                    "scale_out.py",
                    [
                        "--sessions",
                        str(out["sessions"]),
                        "--runs",
                        str(out["runs"]),
                        "--postgres",
                        plain_url(postgres),
                    ],
                )
            )
    return jobs


def run(
    job: Job, number: int, total: int, logs: Path, postgres: str | None, timeout: float | None
) -> None:
    """One script in a subprocess; its JSON (or why there is none) into job.outcome."""
    slug = job.title.replace(" ", "-")
    log, output = logs / f"{slug}.log", logs / f"{slug}.json"
    arguments = [*job.arguments, "--json", str(output)]
    database_name = None
    if job.fresh_postgres:
        assert postgres is not None
        database_url, database_name = create_database(postgres)
        arguments += ["--database-url", database_url]
    command = [sys.executable, str(BENCH / job.script), *arguments]
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    }
    shown = shlex.join(["python", f"bench/{job.script}", *arguments])
    print(f"[{number}/{total}] {job.title}: {shown}", flush=True)
    started, stolen = time.monotonic(), steal_seconds()
    try:
        with log.open("wb") as out:
            # A directory of its own: scripts that make a secret key file make it there.
            workdir = logs / slug
            workdir.mkdir()
            returncode = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env, timeout=timeout
            ).returncode
        error = None if returncode == 0 else f"exit status {returncode}"
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout:.0f} s"
    finally:
        if database_name is not None:
            assert postgres is not None
            drop_database(postgres, database_name)
    elapsed, stolen = time.monotonic() - started, steal_seconds() - stolen
    if error is None and not output.exists():
        error = "wrote no JSON"
    job.outcome = {
        "command": shlex.join(["python", f"bench/{job.script}", *job.arguments]),
        "elapsed_s": round(elapsed, 1),
        "steal_s": round(stolen, 1),
        "log": str(log),
    }
    if error is None:
        job.outcome["result"] = json.loads(output.read_text())
        print(f"    done in {elapsed:.0f} s (steal {stolen:.1f} s)", flush=True)
    else:
        job.outcome["error"] = error
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"    FAILED ({error}) after {elapsed:.0f} s; log {log}:", flush=True)
        for line in tail:
            print(f"      {line}", flush=True)


# --- the table -------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2g}" if value < 1 else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def rows_of(job: Job) -> Iterator[list[str]]:
    """The table's rows of one job: case, baseline, chainpay, ratio, goal."""
    result = job.outcome.get("result")
    if result is None:
        yield [job.case or "", "–", f"FAILED: {job.outcome.get('error')}", "–", ""]
        return
    if job.benchmark == "api":
        by_key: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
        for row in result["rows"]:
            by_key.setdefault((row["name"], row["connections"]), {})[row["server"]] = row
        for (name, connections), pair in by_key.items():
            bare, ours = pair.get("bare"), pair.get("chainpay")
            if bare is None or ours is None:
                continue
            problems = ours["socket_errors"] + ours["timeouts"] + ours["non_2xx"]
            goal = (
                ("≥ 0.25, p99 ≤ 50 ms" if connections > 1 else "") if name == "create" else "≥ 0.4"
            )
            yield [
                f"{API_LABELS.get(name, name)}, {connections} conn.",
                f"bare {_num(bare['requests_per_s'])} req/s, p50/p99 {_ms(bare['p50_ms'])}/"
                f"{_ms(bare['p99_ms'])} ms",
                f"{_num(ours['requests_per_s'])} req/s, p50/p99 {_ms(ours['p50_ms'])}/"
                f"{_ms(ours['p99_ms'])} ms"
                + (f" ({problems} errors/timeouts/non-2xx)" if problems else ""),
                _ratio(ours["ratio"]),
                goal,
            ]
        yield ["deposit addresses", "", str(result.get("addresses")), "", "unique, gap-free"]
    elif job.benchmark == "watcher":
        scan = result["scan"]
        for way, figures in scan["ways"].items():
            yield [
                f"{int(job.case):,} open addresses, {way} (rounds: {len(figures['rounds'])})",
                f"eth_getLogs {_num(figures['baseline_logs_per_s_median'])} logs/s",
                f"scan {_num(figures['watcher_logs_per_s_median'])} logs/s",
                _ratio(figures["ratio_median"]),
                "≥ 0.6" if way == "one request" else "",
            ]
    elif job.benchmark == "latency":
        payments = result["latency"]["payments"]
        for label, key, goal in (
            ("to the session completed in the database", "to_database", ""),
            ("to the webhook received and verified", "to_webhook_verified", "p99 ≤ 0.5 s"),
        ):
            figures = result["latency"][key]
            yield [
                f"final block {label} ({figures['count']}/{payments} payments)",
                "–",
                f"p50/p99 {_num(figures['p50_s'], 3)}/{_num(figures['p99_s'], 3)} s",
                "–",
                goal,
            ]
    elif job.benchmark == "webhooks":
        for scenario in result["scenarios"]:
            endpoints = scenario["endpoints"]
            yield [
                f"{endpoints} endpoint{'s' if endpoints > 1 else ''}, beside a dead one",
                f"alone {_num(scenario['alone_per_s_median'])} deliveries/s",
                f"{_num(scenario['with_dead_per_s_median'])} deliveries/s",
                _ratio(scenario["ratio"]),
                "≥ 0.9",
            ]
    elif job.benchmark == "scale-out":
        median = result["median"]
        created, latency = median["sessions_created_per_s"], median["last_mined_to_last_delivery_s"]
        sessions = result["parameters"]["sessions"]
        correct = "every promise held" if result["correct"] else "BROKEN"
        yield [
            f"{sessions} sessions created through a proxy, 2 api + 2 worker + 2 watcher",
            f"serve {_num(created['serve'])} sessions/s",
            f"{_num(created['roles'])} sessions/s ({correct})",
            _ratio(median["created_ratio_roles_over_serve"]),
            "",
        ]
        yield [
            "last payment mined to last webhook received (lower is better)",
            f"serve {_num(latency['serve'], 2)} s",
            f"{_num(latency['roles'], 2)} s",
            _ratio(median["latency_ratio_roles_over_serve"]),
            "",
        ]
    elif job.benchmark == "bot":
        yield [
            f"{result['parameters']['updates']:,} /help updates from returning users",
            f"echo bot {_num(result['echo_updates_per_s_median'])} updates/s",
            f"{_num(result['chainpay_updates_per_s_median'])} updates/s",
            _ratio(result["ratio_median"]),
            "",
        ]


def table(jobs: list[Job]) -> list[str]:
    header = [
        "benchmark",
        "db",
        "case",
        "baseline (same run)",
        "chainpay",
        "ratio",
        "goal",
        "steal s",
    ]
    rows = [
        [job.benchmark, job.database, *row, _num(job.outcome.get("steal_s"), 1)]
        for job in jobs
        for row in rows_of(job)
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]


def parameters_text(sizes: dict[str, Any], args: argparse.Namespace) -> list[str]:
    watcher = sizes["watcher"]
    counts = list(watcher["open"]) + ([sizes["large_open"]] if args.large else [])
    text = {
        "api": f"wrk -t1 -c1/-c16 -d{sizes['api']['duration']}s --latency, one uvicorn worker "
        "each, rate limit off; ratio = chainpay req/s / bare FastAPI req/s",
        "watcher": f"{watcher['logs']:,} Transfer logs a range, rounds a way: {watcher['rounds']}, "
        f"up to {watcher['matching']} paying logs a round, open deposit addresses "
        f"{', '.join(f'{c:,}' for c in counts)}; ratio = scan logs/s / eth_getLogs+JSON logs/s "
        "(medians over rounds)",
        "latency": f"{sizes['latency']['payments']} payments, about 5 a block, 1 s blocks, "
        "2 confirmations, watcher and webhook sender in one process (as `chainpay serve`), "
        "receiver verifies with standardwebhooks",
        "webhooks": f"{sizes['webhooks']['deliveries']:,} healthy deliveries a run, "
        f"runs: {sizes['webhooks']['runs']} (medians); ratio = with / without the dead endpoint",
        "bot": f"{sizes['bot']['updates']:,} updates a round, rounds: {sizes['bot']['rounds']} "
        "(medians); ratio = chainpay updates/s / echo bot updates/s",
        "scale-out": f"{sizes['scale-out']['sessions']} sessions, 16 clients through a "
        "round-robin proxy, paid on 2 anvil chains (0.5 s blocks), 2 webhook endpoints, "
        "PostgreSQL only; ratio = scaled-out roles / one `chainpay serve`",
    }
    return [f"  {name}: {text[name]}" for name in args.only]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of: {','.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short durations and small sizes: checks the runner, figures not meaningful",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="the watcher also with 1,000,000 open deposit addresses (their set-up alone took "
        "2 minutes on SQLite and 6 on PostgreSQL on a busy 2-core machine)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server (postgresql[+asyncpg]://user@host:port/db): api, watcher and "
        "latency also run on fresh databases there (default: CHAINPAY_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="SQLite only, whatever the environment says"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results file (default: bench/results.json; with --quick one in the temporary "
        "directory)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds each benchmark may take (default: none; 900 with --quick)",
    )
    args = parser.parse_args()
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(unknown)}")
    args.only = [name for name in BENCHMARKS if name in args.only]
    if "api" in args.only and shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk (or leave out api: --only ...)")
    postgres = (
        None
        if args.no_postgres
        else (args.database_url or os.environ.get("CHAINPAY_TEST_POSTGRES_URL") or None)
    )
    if postgres:
        postgres = asyncpg_url(postgres)
    sizes = QUICK if args.quick else FULL
    output: Path = args.output or (
        Path(tempfile.gettempdir()) / "chainpay-bench-quick.json"
        if args.quick
        else BENCH / "results.json"
    )
    timeout = args.timeout or (900.0 if args.quick else None)

    host = machine(postgres)
    logs = Path(tempfile.mkdtemp(prefix="chainpay-bench-"))
    jobs = plan(args, sizes, postgres)
    print(f"{len(jobs)} benchmark runs; logs and per-run JSON in {logs}", flush=True)
    started, stolen = time.monotonic(), steal_seconds()
    for number, job in enumerate(jobs, 1):
        run(job, number, len(jobs), logs, postgres, timeout)
    elapsed, stolen = time.monotonic() - started, steal_seconds() - stolen

    measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    for job in jobs:
        section = results.setdefault(job.benchmark, {})
        if not isinstance(section, dict):
            section = results[job.benchmark] = {}
        if job.benchmark == "api":
            # The shape bench/api_hot_path.py writes.
            section[job.database] = job.outcome.get("result") or {"error": job.outcome["error"]}
            continue
        entry = {"measured_at": measured_at} | {
            key: value for key, value in job.outcome.items() if key != "log"
        }
        if job.benchmark == "watcher":
            section.setdefault(job.database, {})[job.case] = entry
        else:
            section[job.database] = entry
    versions = host["versions"]
    results["run"] = {
        "measured_at": measured_at,
        "quick": args.quick,
        "command": shlex.join(["python", "-m", "bench", *sys.argv[1:]]),
        "machine": host,
        "steal_s": round(stolen, 1),
        "elapsed_s": round(elapsed, 1),
        "parameters": {name: sizes[name] for name in args.only}
        | ({"large_open": sizes["large_open"]} if args.large else {}),
        "failed": [job.title for job in jobs if "error" in job.outcome],
    }
    output.write_text(json.dumps(results, indent=2) + "\n")

    print()
    if args.quick:
        print(
            "QUICK RUN (--quick): short durations, small sizes; checks the runner only, "
            "the figures below mean NOTHING."
        )
    print(
        f"chainpay benchmarks, {measured_at}: {host['cores']} cores "
        f"({host['cpu']}), {host['memory_gib']} GiB, {host['arch']}, Linux {host['kernel']}; "
        f"steal during the run {stolen:.1f} s of {elapsed:.0f} s"
    )
    print(
        "versions: "
        + ", ".join(f"{name} {version}" for name, version in versions.items() if version)
    )
    print("parameters (every ratio is against a baseline measured in the same run):")
    for text in parameters_text(sizes, args):
        print(text)
    print()
    for text in table(jobs):
        print(text)
    print()
    print(f"written to {output}")
    failed = results["run"]["failed"]
    if failed:
        print(f"FAILED: {', '.join(failed)} (logs in {logs})")
        sys.exit(1)


if __name__ == "__main__":
    main()
