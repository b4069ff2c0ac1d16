"""The web service under load: a real `kodex serve` process on loopback (prints figures; not a test).

    python -m bench.http_service [--entries 1000000] [--database-url URL] [--requests 5000] [--concurrency 16]
                                 [--workers 1] [--rate 300] [--time-limit 120] [--keep DIR]

Builds an installation as an operator would: `kodex init` (services.setup.initialise),
every library of the policy onboarded with a data-processing agreement, a seeded
synthetic population imported (--readers, bench/synthetic.py: a third of them SVK PK's,
so `explain` has real subjects), and the decision log filled to --entries entries the
way bench/decision_log.py fills it (real decisions of the policy, appended in
transactions of --batch entries with a signed checkpoint every 100,000), spread over
the 365 nights before 2026-11-22 so that date ranges select something. Without --keep
the installation lives in a temporary directory (and, with --database-url, in a
PostgreSQL schema of its own, kodex_bench_<random>) removed at the end. With --keep DIR
it is built in DIR (and its schema kept) the first time and reused as it is afterwards,
so a 1,000,000-entry store is built once; DIR must then have been built with the same
--entries, --readers, --seed and --database-url. On PostgreSQL the tables are analysed
once built, as autovacuum would have done by the time a real log is that long (kodex
itself analyses only the subjects' tables, after a full sweep; on SQLite nothing is done,
as in a real installation).

Then it starts `kodex serve --no-scheduler --host 127.0.0.1 --port <free>` (the console
script next to this Python, with the installation's KODEX_* environment; --workers N is
passed on only when `kodex serve --help` offers it, and the output says so otherwise),
waits for GET /health to answer 200, and drives it from this process with asyncio and
a minimal HTTP/1.1 client on asyncio streams (--concurrency keep-alive connections; httpx cost more CPU per
request than the server). Two workloads,
each with a DPO or auditor token of SVK PK (services.users.add_user):

- explain: GET /v1/libraries/svkpk/readers/{id}/explanation?as_of=2026-11-22 over
  random SVK PK readers of the store;
- decisions: GET /v1/libraries/svkpk/decisions?limit=100, a random one of six
  queries an auditor makes: no filter; rule=<SVK PK's most common rule>;
  action=anonymise; from/to a range of 1-7 days; after=<a random position> (a deep
  page); kind=decision&outcome=applied.

Each workload runs closed-loop (--concurrency requests always in flight: the
throughput the service reaches; latency then includes queueing at saturation), after
--warmup requests whose figures are dropped; then open-loop at a fixed offered rate
(--rate requests/s, at most --concurrency in flight), where a request's latency counts
from the moment it was due to be sent, so a server that falls behind shows it in p99.
The target is p99 under 20 ms at 300 requests/s or more. Latency is measured in the
client, response body read; the client shares the machine with the server (its CPU is
shown, and the server's own time per request, from kodex's access log). The client's garbage
collector is off while a run is measured, so its own pauses do not count as the server's. A run sends
no more requests after --time-limit seconds (the table says so), so a slow endpoint
cannot keep the benchmark going for hours; an answer that takes over 60 s is an error. Exit status 1 when any request did not answer 200 (the first such answer is
printed), else 0. The server is stopped (SIGTERM) in every case.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, make_url, select, text

from bench.decision_log import CHECKPOINT_EVERY, PROGRESS_EVERY, _batches, _progress
from bench.synthetic import population
from bench.timing import cpu_model
from kodex.audit.entries import decision_entry, now
from kodex.audit.log import append, checkpoint
from kodex.config import load_settings
from kodex.services.importing import import_records
from kodex.services.policy_source import load_ruleset
from kodex.services.setup import initialise, open_workspace
from kodex.services.tenants import Agreement, onboard
from kodex.services.users import add_user
from kodex.store.crypto import MasterKey
from kodex.store.database import connect
from kodex.store.schema import decision_log, metadata, readers

AS_OF = date(2026, 11, 22)
LIBRARY = "svkpk"
LOG_DAYS = 365  # the filled log spans the nights of a year, up to AS_OF
TARGET_P99 = 0.020  # seconds
MANIFEST = "http_service.json"  # in --keep DIR: what the installation there was built with
HEALTH_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 60.0  # seconds an answer may take; a request that takes longer counts as an error
ACCESS = re.compile(r"kodex\.access: GET (?P<route>\S+) (?P<status>\d{3}) (?P<ms>[\d.]+)ms")  # api.web._AccessLog
EXPLAIN = f"/v1/libraries/{LIBRARY}/readers/{{}}/explanation"
DECISIONS = f"/v1/libraries/{LIBRARY}/decisions"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http_service", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000, help="decision log entries (default 1,000,000)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL URL to run on, in a schema of its own; default: an SQLite file in the installation",
    )
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per workload and run")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at most (and connections)")
    parser.add_argument("--workers", type=int, default=1, help="server processes, if `kodex serve` has --workers")
    parser.add_argument("--rate", type=float, default=300.0, help="offered requests/s of the open-loop runs")
    parser.add_argument("--warmup", type=int, default=200, help="requests before each closed-loop run, not counted")
    parser.add_argument(
        "--time-limit", type=float, default=120.0, help="seconds after which a run sends no more requests (default 120)"
    )
    parser.add_argument("--readers", type=int, default=6000, help="synthetic readers imported (a third of SVK PK)")
    parser.add_argument("--batch", type=int, default=500, help="entries per transaction when filling the log")
    parser.add_argument("--seed", type=int, default=7, help="seed of the population, the log and the requests")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build the installation in DIR, or reuse it there")
    args = parser.parse_args()
    if min(args.entries, args.requests, args.concurrency, args.workers, args.readers, args.batch) < 1:
        parser.error("--entries, --requests, --concurrency, --workers, --readers and --batch must be at least 1")
    if args.rate <= 0 or args.time_limit <= 0 or args.warmup < 0:
        parser.error("--rate and --time-limit must be positive, --warmup not negative")
    kodex = Path(sys.executable).parent / "kodex"
    if not kodex.exists():
        raise SystemExit(f"no kodex console script at {kodex}: install the project in this environment")

    failed = False
    with _installation(args) as installation:
        target = _target(installation, args.seed)
        workers, workers_note = _workers(kodex, installation.env, args.workers)
        _machine(installation, target, workers, args)
        if workers_note:
            print(f"  note: {workers_note}", flush=True)
        with _server(kodex, installation, workers) as server:
            runs = asyncio.run(_drive(server, target, args))
        failed = _report(runs, args)
    sys.exit(1 if failed else 0)


# -- the installation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Installation:
    directory: Path
    env: dict[str, str]  # the server's environment: KODEX_HOME, KODEX_DATABASE_URL, KODEX_MASTER_KEY_FILE
    database_url: str
    built: str | None  # how long building took, when this run built it


@contextmanager
def _installation(args: argparse.Namespace) -> Iterator[Installation]:
    """A built installation: a temporary one, or the one in --keep DIR (built there first if DIR is empty)."""
    identity = {
        "entries": args.entries,
        "readers": args.readers,
        "seed": args.seed,
        "days": LOG_DAYS,
        "database": args.database_url or "sqlite",
    }
    if args.keep is None:
        with tempfile.TemporaryDirectory(prefix="kodex-http-bench-") as tmp, _database(Path(tmp), args, False) as url:
            yield _build(Path(tmp), url, args)
        return
    directory: Path = args.keep.expanduser().resolve()
    manifest = directory / MANIFEST
    if manifest.exists():
        stored = json.loads(manifest.read_text(encoding="utf-8"))
        if stored.get("identity") != identity:
            raise SystemExit(f"{directory} holds an installation built otherwise ({_options(stored.get('identity'))}); "
                             "give the same options, or another --keep directory")  # fmt: skip
        _progress(f"reusing the installation in {directory}")
        url = stored["database_url"]
        yield Installation(directory, _env(directory, url), url, None)
        return
    if directory.exists() and any(directory.iterdir()):
        raise SystemExit(f"{directory} is neither empty nor an installation this benchmark built ({MANIFEST})")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with _database(directory, args, True) as url:
            installation = _build(directory, url, args)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # it was empty: leave no half-built installation behind
        raise
    manifest.write_text(json.dumps({"identity": identity, "database_url": url}, indent=2) + "\n", encoding="utf-8")
    yield installation


def _options(identity: Any) -> str:
    """The options an installation's identity stands for, as given on the command line."""
    if not isinstance(identity, dict):
        return "by another version of this benchmark"
    where = (
        "on SQLite"
        if identity.get("database") == "sqlite"
        else f"--database-url {_hidden(str(identity.get('database')))}"
    )
    days = "" if identity.get("days") == LOG_DAYS else f", its log over {identity.get('days')} days"
    return f"--entries {identity.get('entries')} --readers {identity.get('readers')} --seed {identity.get('seed')} {where}{days}"


def _hidden(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _database(directory: Path, args: argparse.Namespace, keep: bool) -> Iterator[str]:
    """The store's URL: an SQLite file in the installation, or a fresh PostgreSQL schema (dropped unless kept)."""
    if args.database_url is None:
        yield f"sqlite:///{directory / 'home' / 'kodex.sqlite3'}"
        return
    admin = connect(args.database_url)
    if admin.dialect.name != "postgresql":
        raise SystemExit("--database-url names a PostgreSQL database (the default store is an SQLite file)")
    schema = f"kodex_bench_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in args.database_url else "?"
    dropped = False
    try:
        yield f"{args.database_url}{separator}options=-csearch_path%3D{schema}"
    except BaseException:
        _drop(admin, schema)
        dropped = True
        raise
    finally:
        if not keep and not dropped:
            _drop(admin, schema)
        admin.dispose()


def _drop(admin: Engine, schema: str) -> None:
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def _env(directory: Path, database_url: str) -> dict[str, str]:
    home = directory / "home"
    env = {name: value for name, value in os.environ.items() if not name.startswith("KODEX_")}
    env.update(
        KODEX_HOME=str(home), KODEX_DATABASE_URL=database_url, KODEX_MASTER_KEY_FILE=str(home / "master.key")
    )  # fmt: skip
    return env


def _build(directory: Path, url: str, args: argparse.Namespace) -> Installation:
    env = _env(directory, url)
    settings = load_settings(env)
    ruleset = load_ruleset(settings.policy)
    started = time.perf_counter()
    for line in initialise(settings, ruleset):
        _progress(f"init: {line}")
    work = open_workspace(settings)
    try:
        for library in ruleset.libraries:
            onboard(work.engine, ruleset, library, Agreement(date(2026, 1, 5), "DPA-BENCH-1"))
        lines = [json.dumps(r, ensure_ascii=False) for r in population(args.readers, seed=args.seed, as_of=AS_OF)]
        summary = import_records(
            lambda: iter(lines), work.engine, ruleset, work.master, AS_OF, recordings=settings.recordings
        )
        imported = time.perf_counter() - started
        _progress(f"imported {sum(summary.added.values()):,} records in {imported:.1f} s")
        with work.engine.connect() as connection:
            logged = connection.execute(select(func.count()).select_from(decision_log)).scalar_one()
        filled, filling = _fill(work.engine, work.master, args.entries - logged, args.batch, args.seed)
        if work.engine.dialect.name == "postgresql":  # the statistics autovacuum would have gathered by now
            with work.engine.begin() as connection:
                for table in metadata.sorted_tables:
                    connection.execute(text(f'ANALYZE "{table.name}"'))
    finally:
        work.engine.dispose()
    total = time.perf_counter() - started
    rate = f", {filled / filling:,.0f} entries/s" if filled else ""
    built = (f"built in {total:,.1f} s: init and import {imported:.1f} s, {filled:,} log entries appended in "
             f"{filling:,.1f} s{rate}")  # fmt: skip
    _progress(built)
    return Installation(directory, env, url, built)


def _fill(engine: Engine, master: MasterKey, n: int, batch: int, seed: int) -> tuple[int, float]:
    """Append `n` decisions as bench/decision_log.py does, their days spread over LOG_DAYS nights; (n, seconds)."""
    if n <= 0:
        return 0, 0.0
    rng = random.Random(seed)
    first_day = AS_OF - timedelta(days=LOG_DAYS - 1)
    done, started = 0, time.perf_counter()
    grown: set[str] = set()
    for library, decisions in _batches(n, batch, 0, rng, []):
        day = first_day + timedelta(days=done * LOG_DAYS // n)
        for decision in decisions:
            decision["as_of"] = day.isoformat()
        entries = [decision_entry(decision, now()) for decision in decisions]
        with engine.begin() as connection:
            append(connection, library, day, entries)
        done += len(entries)
        grown.add(library)
        if done % CHECKPOINT_EVERY < len(entries) or done == n:
            for name in sorted(grown):
                with engine.begin() as connection:
                    checkpoint(connection, name, master, now())
            grown.clear()
        if done % PROGRESS_EVERY < len(entries) or done == n:
            _progress(f"appended {done:,} of {n:,} ({done / (time.perf_counter() - started):,.0f} entries/s)")
    return done, time.perf_counter() - started


# -- what the requests ask for -----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The installation as the requests see it: tokens, SVK PK's readers and what its log holds."""

    dpo: str
    auditor: str
    reader_ids: list[str]
    entries: int  # in the whole log
    library_entries: int  # in SVK PK's
    max_seq: int
    first_day: date
    last_day: date
    common_rule: str
    engine_name: str


def _target(installation: Installation, seed: int) -> Target:
    settings = load_settings(installation.env)
    work = open_workspace(settings)
    try:
        _, dpo = add_user(work.engine, work.master, LIBRARY, "dpo", f"bench dpo {seed}")
        _, auditor = add_user(work.engine, work.master, LIBRARY, "auditor", f"bench auditor {seed}")
        c = decision_log.c
        with work.engine.connect() as connection:
            ids = connection.execute(
                select(readers.c.id)
                .where(readers.c.library == LIBRARY, readers.c.state != "anonymised")
                .order_by(readers.c.id)
            ).scalars()
            reader_ids = [str(i) for i in ids]
            entries, max_seq = connection.execute(select(func.count(), func.max(c.seq))).one()
            mine, first, last = connection.execute(
                select(func.count(), func.min(c.day), func.max(c.day)).where(c.library == LIBRARY)
            ).one()
            common = connection.execute(
                select(c.rule)
                .where(c.library == LIBRARY, c.kind == "decision")
                .group_by(c.rule)
                .order_by(func.count().desc(), c.rule)
                .limit(1)
            ).scalar_one()
        engine_name = _engine_name(work.engine)
    finally:
        work.engine.dispose()
    if not reader_ids:
        raise SystemExit(f"the store holds no {LIBRARY} reader to explain")
    return Target(dpo, auditor, reader_ids, int(entries), int(mine), int(max_seq), _day(first), _day(last), str(common),
                  engine_name)  # fmt: skip


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _engine_name(engine: Engine) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            version = connection.execute(text("SHOW server_version")).scalar_one()
            return f"PostgreSQL {version} (psycopg {package_version('psycopg')})"
        version = connection.execute(text("SELECT sqlite_version()")).scalar_one()
        return f"SQLite {version} (WAL, synchronous=NORMAL)"


@dataclass(frozen=True)
class Call:
    label: str  # the query, for the breakdown
    path: str
    params: dict[str, str]
    headers: dict[str, str]


def _explain_calls(target: Target, count: int, rng: random.Random) -> list[Call]:
    headers = {"Authorization": f"Bearer {target.dpo}"}
    params = {"as_of": AS_OF.isoformat()}
    return [Call("explain", EXPLAIN.format(rng.choice(target.reader_ids)), params, headers) for _ in range(count)]


def _decision_calls(target: Target, count: int, rng: random.Random) -> list[Call]:
    headers = {"Authorization": f"Bearer {target.auditor}"}
    span = (target.last_day - target.first_day).days
    calls = []
    for _ in range(count):
        params = {"limit": "100"}
        choice = rng.randrange(6)
        if choice == 0:
            label = "no filter"
        elif choice == 1:
            label, params["rule"] = "rule=<most common>", target.common_rule
        elif choice == 2:
            label, params["action"] = "action=anonymise", "anonymise"
        elif choice == 3:
            length = rng.randint(0, min(6, span))
            start = target.first_day + timedelta(days=rng.randint(0, span - length))
            label = "from/to (1-7 days)"
            params["from"], params["to"] = start.isoformat(), (start + timedelta(days=length)).isoformat()
        elif choice == 4:
            label, params["after"] = "after=<random> (deep page)", str(rng.randint(0, target.max_seq))
        else:
            label, params["kind"], params["outcome"] = "kind=decision&outcome=applied", "decision", "applied"
        calls.append(Call(label, DECISIONS, params, headers))
    return calls


# -- the server --------------------------------------------------------------------------------------


def _workers(kodex: Path, env: dict[str, str], wanted: int) -> tuple[int, str | None]:
    """The --workers to pass (1: pass none), and a note when more were asked for than `kodex serve` offers."""
    if wanted == 1:
        return 1, None
    shown = subprocess.run(
        [str(kodex), "serve", "--help"], env={**env, "COLUMNS": "200"}, capture_output=True, text=True, check=False
    )
    if "--workers" in shown.stdout:
        return wanted, None
    return 1, f"`kodex serve` has no --workers option: the server ran as one process, not {wanted}"


@dataclass(frozen=True)
class Server:
    base: str  # http://127.0.0.1:<port>
    pid: int
    log: Path  # its standard output and error: uvicorn's lines and kodex's access log


@contextmanager
def _server(kodex: Path, installation: Installation, workers: int) -> Iterator[Server]:
    """`kodex serve` on a free loopback port, answering /health; stopped afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(kodex), "serve", "--no-scheduler", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    log_path = installation.directory / "server.log"
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=installation.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        _wait_healthy(process, base, log_path)
        _progress(f"server up: {' '.join(command[1:])} (pid {process.pid})")
        yield Server(base, process.pid, log_path)
    finally:
        _stop(process)


def _wait_healthy(process: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"kodex serve exited with {process.returncode} before answering:\n{_tail(log_path)}")
        try:
            answer = httpx.get(f"{base}/health", timeout=2.0)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text[:300]}"
        except httpx.HTTPError as error:
            last = type(error).__name__
        time.sleep(0.1)
    raise SystemExit(f"GET /health did not answer 200 within {HEALTH_TIMEOUT:.0f} s ({last}):\n{_tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _progress(f"kodex serve did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM: killed")
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process and its children now alive, from /proc; None where there is none."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry.name) == pid or int(fields[1]) == pid:  # fields: state, ppid, ..., utime (12), stime (13)
                total += int(fields[11]) + int(fields[12])
        return total / tick
    except (OSError, ValueError, IndexError):
        return None


# -- driving it --------------------------------------------------------------------------------------


@dataclass
class Run:
    """One measured run: each request's label, latency (s) and status (0: no answer)."""

    name: str
    offered: float | None  # requests/s of an open-loop run; None: closed-loop
    planned: int  # requests it was to send; fewer when the time limit stopped it
    labels: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    first_error: str | None = None
    wall: float = 0.0
    server_cpu: float | None = None
    in_server: list[float] = field(default_factory=list)  # seconds, from the access log: request in to answer out
    in_server_statuses: list[int] = field(default_factory=list)
    client_cpu: float = 0.0


async def _drive(server: Server, target: Target, args: argparse.Namespace) -> list[Run]:
    rng = random.Random(args.seed)
    n, warm, concurrency = args.requests, args.warmup, args.concurrency
    runs: list[Run] = []

    def deadline() -> float:
        return time.perf_counter() + float(args.time_limit)

    async with _Pool(server.base, concurrency) as client:
        workloads = (("explain", _explain_calls), ("decisions", _decision_calls))
        for name, calls in workloads:
            _progress(f"{name}: {warm} warm-up and {n:,} requests, concurrency {concurrency}")
            warming = Run("warm-up", None, warm)
            await _measured(warming, server, _closed(client, calls(target, warm, rng), concurrency, deadline()))
            run = Run(f"{name}, concurrency {concurrency}", None, n)
            runs.append(
                await _measured(run, server, _closed(client, calls(target, n, rng), concurrency, deadline(), run))
            )
        for name, calls in workloads:
            _progress(f"{name}: {n:,} requests at {args.rate:g}/s offered, at most {concurrency} in flight")
            run = Run(f"{name}, {args.rate:g}/s offered", args.rate, n)
            paced = _paced(client, calls(target, n, rng), args.rate, concurrency, deadline(), run)
            runs.append(await _measured(run, server, paced))
    return runs


async def _measured(run: Run, server: Server, work: Any) -> Run:
    logged = server.log.stat().st_size
    # the client's own pauses are not the server's latency: no collection in this process while it measures
    gc.collect()
    gc.disable()
    cpu, client, start = _cpu_seconds(server.pid), time.process_time(), time.perf_counter()
    try:
        await work
    finally:
        gc.enable()
    run.wall = time.perf_counter() - start
    run.client_cpu = time.process_time() - client
    after = _cpu_seconds(server.pid)
    run.server_cpu = after - cpu if after is not None and cpu is not None else None
    await asyncio.sleep(0.05)  # the last access lines reach the log
    with server.log.open("rb") as log:
        log.seek(logged)
        lines = log.read().decode("utf-8", errors="replace")
    logged_requests = [found for found in ACCESS.finditer(lines) if found["route"] != "/health"]
    run.in_server = [float(found["ms"]) / 1e3 for found in logged_requests]
    run.in_server_statuses = [int(found["status"]) for found in logged_requests]
    return run


async def _closed(
    client: _Pool, calls: Sequence[Call], concurrency: int, deadline: float, run: Run | None = None
) -> None:
    """`concurrency` requests in flight until every call is answered, none sent after `deadline`."""
    pending = iter(calls)

    async def worker() -> None:
        for call in pending:
            if time.perf_counter() > deadline:
                return
            latency, status, error = await _send(client, call, time.perf_counter())
            if run is not None:
                _record(run, call, latency, status, error)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _paced(
    client: _Pool, calls: Sequence[Call], rate: float, concurrency: int, deadline: float, run: Run
) -> None:
    """Call i is due at i/rate s; sent then, or when one of the `concurrency` slots frees; timed from when due.

    None is sent after `deadline`.
    """
    slots = asyncio.Semaphore(concurrency)
    tasks: list[asyncio.Task[None]] = []

    async def one(call: Call, due: float) -> None:
        try:
            latency, status, error = await _send(client, call, due)
            _record(run, call, latency, status, error)
        finally:
            slots.release()

    start = time.perf_counter()
    for i, call in enumerate(calls):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        if time.perf_counter() > deadline:
            slots.release()
            break
        tasks.append(asyncio.create_task(one(call, due)))
    await asyncio.gather(*tasks)


async def _send(client: _Pool, call: Call, since: float) -> tuple[float, int, str | None]:
    """(seconds from `since` to the whole answer, status (0: none), what went wrong or None)."""
    try:
        status, body = await asyncio.wait_for(client.get(call), REQUEST_TIMEOUT)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as error:
        return time.perf_counter() - since, 0, f"{type(error).__name__}: {error}"
    latency = time.perf_counter() - since
    if status != 200:
        text = body[:500].decode("utf-8", errors="replace")
        return latency, status, f"{status} on GET {call.path} {call.label}: {text}"
    return latency, 200, None


class _Pool:
    """Keep-alive HTTP/1.1 connections on asyncio streams, one request on each at a time: a client light enough
    to share two cores with the server (httpx spent ~4 ms of CPU a request here, more than the server).

    It speaks only what the benchmark needs: GET, a status line, headers, a body by Content-Length or chunked.
    """

    def __init__(self, base: str, size: int) -> None:
        parsed = urllib.parse.urlsplit(base)
        self.host, self.port, self.size = parsed.hostname or "127.0.0.1", parsed.port or 80, size
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def __aenter__(self) -> _Pool:
        for _ in range(self.size):
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()

    async def get(self, call: Call) -> tuple[int, bytes]:
        reader, writer = await self.idle.get()
        try:
            target = f"{call.path}?{urllib.parse.urlencode(call.params)}" if call.params else call.path
            head = "".join(f"{name}: {value}\r\n" for name, value in call.headers.items())
            writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n{head}\r\n".encode())
            status, body = await _answer(reader)
        except BaseException:
            writer.close()  # the connection's state is unknown: a fresh one takes its place
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))
            raise
        self.idle.put_nowait((reader, writer))
        return status, body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status = int((await reader.readline()).split()[1])
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    if not chunked:
        return status, await reader.readexactly(length)
    parts = []
    while size := int((await reader.readline()).split(b";")[0], 16):
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
    await reader.readline()  # the empty line after the last chunk
    return status, b"".join(parts)


def _record(run: Run, call: Call, latency: float, status: int, error: str | None) -> None:
    run.labels.append(call.label)
    run.latencies.append(latency)
    run.statuses.append(status)
    if error is not None and run.first_error is None:
        run.first_error = error


# -- printing ----------------------------------------------------------------------------------------


def _machine(installation: Installation, target: Target, workers: int, args: argparse.Namespace) -> None:
    where = _hidden(installation.database_url)
    print(f"kodex HTTP service — {target.entries:,} log entries ({target.library_entries:,} of {LIBRARY}), "
          f"{len(target.reader_ids):,} {LIBRARY} readers to explain")  # fmt: skip
    print(f"  {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print(f"  {target.engine_name}: {where}")
    print(f"  server: kodex serve --no-scheduler, {workers} process{'es' if workers > 1 else ''} "
          f"(uvicorn {package_version('uvicorn')}); client: HTTP/1.1 on asyncio streams in this process, "
          f"{args.concurrency} connections kept alive")  # fmt: skip
    print(f"  installation: {installation.built or 'reused from ' + str(installation.directory)}", flush=True)


HEADER = (
    f"  {'':<38}{'requests':>9}{'errors':>7}{'req/s':>8}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}   CPU server/client"
)


def _report(runs: list[Run], args: argparse.Namespace) -> bool:
    """Print the table of figures; True when any request failed."""
    print()
    print(HEADER + "\n" + f"  {'':<38}{'':>32}{'ms':>8}{'ms':>8}{'ms':>8}{'ms':>8}")
    failed = False
    for run in runs:
        _line(run.name, run.latencies, run.statuses, len(run.latencies) / run.wall, _cpu(run))
        if len(run.latencies) < run.planned:
            print(
                f"    stopped at the time limit ({args.time_limit:g} s): {len(run.latencies):,} of {run.planned:,} sent"
            )
        if run.in_server:
            _line("  in the server (its access log)", run.in_server, run.in_server_statuses, None, "")
        if run.name.startswith("decisions"):
            for label in sorted(set(run.labels)):
                picked = [i for i, mine in enumerate(run.labels) if mine == label]
                latencies = [run.latencies[i] for i in picked]
                _line("  " + label, latencies, [run.statuses[i] for i in picked], None, "")
        if run.first_error is not None:
            failed = True
            print(f"    first error: {run.first_error}")
    print()
    print("  closed-loop: the throughput the service reaches; its latencies include queueing at saturation.")
    print(f"  open-loop: latency counted from when each request was due, so falling behind shows; target p99 < "
          f"{TARGET_P99 * 1e3:.0f} ms at ≥ 300 req/s")  # fmt: skip
    for run in runs:
        if run.offered is None:
            continue
        p99 = _percentile(sorted(run.latencies), 99)
        achieved = len(run.latencies) / run.wall
        met = p99 < TARGET_P99 and achieved >= 300 * 0.99 and all(status == 200 for status in run.statuses)
        print(f"  {run.name}: p99 {p99 * 1e3:.1f} ms at {achieved:,.0f} req/s achieved — "
              f"{'target met' if met else 'target NOT met'}")  # fmt: skip
    return failed


def _line(label: str, latencies: list[float], statuses: list[int], rate: float | None, cpu: str) -> None:
    ordered = sorted(latencies)
    errors = sum(status != 200 for status in statuses)
    per_second = f"{rate:>8,.0f}" if rate is not None else f"{'':>8}"
    figures = "".join(f"{_percentile(ordered, p) * 1e3:>8.1f}" for p in (50, 90, 99, 100))
    print(f"  {label:<38}{len(ordered):>9,}{errors:>7,}{per_second}{figures}   {cpu}", flush=True)


def _cpu(run: Run) -> str:
    server = f"{run.server_cpu / run.wall:.0%}" if run.server_cpu is not None else "?"
    return f"{server} / {run.client_cpu / run.wall:.0%}"


def _percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the server is stopped and a temporary installation removed by then
        _progress("interrupted")
        sys.exit(130)
