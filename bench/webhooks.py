"""Webhook throughput: instructions pushed per second to a receiver on loopback (prints figures; not a test).

    python -m bench.webhooks [--instructions 5000] [--database-url URL] [--repeat 3]

A fresh installation (an SQLite file in a temporary directory, or with a PostgreSQL URL a schema of its own,
kodex_bench_<random>, dropped at the end) gets --instructions pending instructions for KNTB, written as the nightly
run writes them (retention.outbox.instruction_row, store.repositories.writes.add_instructions). A receiver in a
process of its own (http.server, HTTP/1.1 keep-alive, answering 204 at once) listens on 127.0.0.1; the webhook is
set to it (services.delivery.set_webhook), and services.delivery.deliver pushes everything due in one pass, as
`kodex instructions deliver` does: per instruction it reads the row, signs the body (Standard Webhooks), POSTs it
and records the attempt in a transaction of its own. Reports instructions delivered per second (the median of
--repeat passes, each over a fresh set of pending instructions), and signing alone per second.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench.timing import cpu_model
from kodex.config import load_settings
from kodex.retention.outbox import instruction_row
from kodex.services.delivery import deliver, set_webhook, signed_request, webhook_body
from kodex.services.instructions import Instruction, list_instructions
from kodex.services.policy_source import load_ruleset
from kodex.services.setup import initialise, open_workspace
from kodex.services.tenants import Agreement, onboard
from kodex.store.repositories.writes import add_instructions

LIBRARY = "kntb"
POLICY = Path(__file__).resolve().parents[1] / "policies.yaml"


class _Quick(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection for the whole pass, as the relay's client keeps

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _serve(port: multiprocessing.Queue[int]) -> None:  # pragma: no cover - a child process
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quick)
    port.put(server.server_address[1])
    server.serve_forever()


def _instructions(work: Any, ruleset: Any, n: int) -> None:
    compiled = ruleset.library(LIBRARY)
    at = datetime.now(UTC) - timedelta(seconds=1)
    rows = [
        instruction_row(
            work.master, compiled, subject_type="reader", subject_id=f"KN-{i:07d}", action="anonymise",
            decision_id=str(uuid.uuid4()), rule="kntb.bench", cite="čl. 1", day=date.today(), at=at,
        )
        for i in range(n)
    ]  # fmt: skip
    with work.engine.begin() as connection:
        for start in range(0, n, 2000):
            add_instructions(connection, rows[start : start + 2000])


def _signing_rate(sample: Instruction, secret: str, n: int = 20_000) -> float:
    """Bodies made and signed per second, alone."""
    raw = base64.b64decode(secret.removeprefix("whsec_"))
    start = time.perf_counter()
    for _ in range(n):
        at = datetime.now(UTC)
        signed_request(raw, sample.id, at, webhook_body(sample, at))
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instructions", type=int, default=5000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, {sys.platform}")
    context = multiprocessing.get_context("spawn")
    port_queue: multiprocessing.Queue[int] = context.Queue()
    receiver = context.Process(target=_serve, args=(port_queue,), daemon=True)
    receiver.start()
    url = f"http://127.0.0.1:{port_queue.get(timeout=30)}/kodex/instructions"
    schema = None
    with tempfile.TemporaryDirectory() as home:
        database = args.database_url or f"sqlite:///{home}/kodex.sqlite3"
        if args.database_url:
            schema = f"kodex_bench_{uuid.uuid4().hex[:10]}"
            with create_engine(args.database_url).begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            database = f"{args.database_url}{'&' if '?' in database else '?'}options=-csearch_path%3D{schema}"
        os.environ.update(
            KODEX_HOME=f"{home}/home", KODEX_DATABASE_URL=database, KODEX_MASTER_KEY_FILE=f"{home}/home/master.key"
        )
        os.environ.pop("KODEX_CONFIG", None)
        ruleset = load_ruleset(POLICY)
        initialise(load_settings(), ruleset)
        work = open_workspace(load_settings())
        try:
            onboard(work.engine, ruleset, LIBRARY, Agreement(date(2026, 1, 5), "DPA-BENCH"))
            secret = set_webhook(work.engine, work.master, LIBRARY, url, private=True)
            rates = []
            with httpx.Client(timeout=10.0) as client:
                for _ in range(args.repeat):
                    _instructions(work, ruleset, args.instructions)
                    start = time.perf_counter()
                    summary = deliver(
                        work.engine, ruleset, work.master, LIBRARY, client=client, limit=args.instructions
                    )
                    took = time.perf_counter() - start
                    if summary.delivered != args.instructions:
                        raise SystemExit(f"delivered {summary.delivered} of {args.instructions}: {summary.as_json()}")
                    rates.append(summary.delivered / took)
                    print(f"  pass: {summary.delivered} delivered in {took:.2f} s ({rates[-1]:,.0f}/s)")
            signing = _signing_rate(list_instructions(work.engine, ruleset, work.master, LIBRARY, limit=1)[0], secret)
        finally:
            work.engine.dispose()
            if schema is not None:
                with create_engine(args.database_url).begin() as connection:
                    connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    receiver.terminate()
    engine = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"{engine}: {statistics.median(rates):,.0f} instructions delivered/s (median of {args.repeat} passes of "
        f"{args.instructions}); body + signature alone: {signing:,.0f}/s"
    )


if __name__ == "__main__":
    main()
