"""HTTP API benchmark: a main read and a main write over loopback, on each store.

For each store (a SQLite file; PostgreSQL when ZHUISU_BENCH_POSTGRES_URL or
ZHUISU_TEST_POSTGRES_URL is set, in a fresh schema dropped afterwards) it loads the small
demo county (``demo.build.build_demo``, 1,260 households with a year of history; ``--data
world`` for the test world alone), adds the test county of ``tests/factories.py`` with
``--households`` registered households and one funded township account per fund source,
then starts ``zhuisu serve`` (uvicorn, one worker, log level WARNING) in a subprocess on a
free port and measures, for each number of concurrent clients
(threads, each with its own keep-alive connection):

* health: ``GET /health`` (no token, one store query), the floor of the stack;
* read: ``GET /households/{id}`` of a random household (its status, history and signed
  events), as a county approver; ``read*`` the same as an inspector, so each read also
  appends to the access log (who looked at what);
* write: ``POST /commands`` with a signed ``FundAccount.Disbursed`` to a registered
  household (three Ed25519 signatures verified by the server, positions checked, one
  event stored) with an ``Idempotency-Key``, as a fund officer; the six paying accounts
  are shared out among the clients, so with up to six clients none shares an account;
* hot: the same writes, every client paying from one account: optimistic concurrency
  makes all but one of each race answer ``409 ConcurrentWrite``, retried with the same key
  (the count of retries is shown).

It prints throughput (requests/s) and p50/p95 latency (ms) per phase.  Every accepted
write is answered with a receipt (``runtime.followers``): after each write phase, ``receipt``
prints the time from the events being stored to the signed checkpoint that covers them (the
server's ``Server-Timing: receipt;dur=…``), p50/p95/max against the target (p95 ≤ 1 s),
how many checkpoints the phase's writes shared, how many receipts were pending, and that
every receipt verifies offline with the log's public key alone.  Before the server starts,
``append`` times the access log's hash chain alone: ``AccessLog.record`` (chained,
serialised on the chain's head row) against a plain insert of the same row (what an
append was before the chain), from 1 and N threads, interleaved.

    python bench/api.py [--clients 1,6] [--reads 2000] [--writes 600] [--appends 1000]
                         [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from access.tables import open_engine  # noqa: E402
from projections.directory import Directory  # noqa: E402
from access.roles import ApiRole  # noqa: E402
from store.settings import Settings, build_app, utc_now  # noqa: E402
from access.tokens import Tokens  # noqa: E402
from domain.money import FundSource  # noqa: E402
from factories import (  # noqa: E402
    COUNTY,
    TOWNSHIP,
    a_county_world,
    a_registered_household,
    household_payment,
    receipt,
    run,
    sign,
)

ACCOUNT_FUNDS = 10**11  # fen in each paying account: never the limit


@dataclass
class Loaded:
    households: list[str]  # ids to read
    commands: list[list[dict[str, Any]]]  # signed payments, one list per paying account
    reader: str  # tokens
    inspector: str
    writer: str


def load(url: str, pepper: Path, data: str, payees: int, writes: int) -> Loaded:
    app = build_app(Settings(database_url=url, id_pepper_file=pepper))
    try:
        if data == "demo":
            from demo.build import build_demo

            summary = build_demo(app, size="small")
            print(f"  demo (small): {summary.households} households, "
                  f"{summary.events_written:,} events in {summary.seconds:.1f} s")
        world = a_county_world(app)
        paid = [a_registered_household(world, f"B{i}") for i in range(payees)]
        accounts = []
        for source in FundSource:
            account = world.account(TOWNSHIP, source.value)
            if not app.exists(account):
                app.open_account(TOWNSHIP, source.value)
            run(world, "FundAccount.Received", account, receipt(ACCOUNT_FUNDS))
            accounts.append(account)
        commands: list[list[dict[str, Any]]] = [[] for _ in accounts]
        for n in range(writes):
            k = n % len(accounts)
            commands[k].append(sign(world, "FundAccount.Disbursed", accounts[k],
                                    household_payment(paid[n % len(paid)], 100)))
        directory = Directory()
        directory.catch_up(app)
        households = [str(h) for ids in directory.households.values() for h in ids]
        tokens = Tokens(open_engine(url))
        reader, _ = tokens.create(name="bench approver", role=ApiRole.COUNTY_APPROVER,
                                  region=None, created_by="bench", now=utc_now())
        inspector, _ = tokens.create(name="bench inspector", role=ApiRole.INSPECTOR,
                                     region=None, created_by="bench", now=utc_now())
        writer, _ = tokens.create(name="bench fund officer", role=ApiRole.FUND_OFFICER,
                                  region=app.region(COUNTY), created_by="bench", now=utc_now())
        tokens.engine.dispose()
        print(f"  store: {app.recorder.max_notification_id():,} events, "
              f"{len(households):,} households, {len(accounts)} paying accounts")
        return Loaded(households, commands, reader, inspector, writer)
    finally:
        app.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str, pepper: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The server in a subprocess; its log (warnings: refusals, lost races) goes to ``log``
    — never to a pipe nobody reads, which would stall the server once full."""
    port = free_port()
    env = {**os.environ, "ZHUISU_DATABASE_URL": url, "ZHUISU_ID_PEPPER_FILE": str(pepper),
           "ZHUISU_LOG_LEVEL": "WARNING", "ZHUISU_DEMO_ON_EMPTY": "false",
           "ZHUISU_BOOTSTRAP_ADMIN": "false", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys; from cli import app; sys.argv[0] = 'zhuisu'; "
         f"app(['serve', '--port', '{port}', '--no-demo', '--no-bootstrap-admin'])"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # a loaded machine: the first catch-up takes a while
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server stopped: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return server, base
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("the server did not answer /health within 300 s")


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]
    retries: int = 0

    def line(self, name: str, clients: int) -> str:
        if len(self.latencies) < 2:
            return f"  {name:<6} {clients:>2} clients  too few requests ({self.requests})"
        q = statistics.quantiles(self.latencies, n=100)
        retries = f", {self.retries} retried after 409" if self.retries else ""
        return (f"  {name:<6} {clients:>2} clients  {self.requests / self.seconds:>8,.0f} req/s  "
                f"p50 {q[49]:6.1f} ms  p95 {q[94]:6.1f} ms  ({self.requests} requests{retries})")


def load_test(base: str, clients: int, work: list[list[Callable[[httpx.Client], int]]]
              ) -> Result:
    """Run each client's list of requests on its own thread and connection."""
    latencies: list[float] = []
    retries = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(jobs: list[Callable[[httpx.Client], int]]) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            mine, again = [], 0
            start.wait()
            for job in jobs:
                t = time.perf_counter()
                again += job(http)
                mine.append((time.perf_counter() - t) * 1000)
        with lock:
            latencies.extend(mine)
            retries[0] += again

    threads = [threading.Thread(target=client, args=(jobs,)) for jobs in work]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return Result(len(latencies), time.perf_counter() - began, latencies, retries[0])


def read_job(path: str, token: str | None = None) -> Callable[[httpx.Client], int]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def job(http: httpx.Client) -> int:
        r = http.get(path, headers=headers)
        assert r.status_code == 200, r.text
        return 0
    return job


def write_job(command: dict[str, Any], token: str,
              receipts: list[tuple[float | None, dict[str, Any]]] | None = None
              ) -> Callable[[httpx.Client], int]:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}

    def job(http: httpx.Client) -> int:
        for attempt in range(20):
            r = http.post("/commands", json=command, headers=headers)
            if r.status_code != 409 or r.json()["rule"] != "ConcurrentWrite":
                assert r.status_code == 201, r.text
                if receipts is not None:
                    receipts.append((server_timing(r.headers.get("server-timing")),
                                     r.json().get("receipt") or {}))
                return attempt
        raise RuntimeError("still conflicting after 20 attempts")
    return job


def server_timing(header: str | None) -> float | None:
    """``receipt;dur=12.3`` → 12.3 (ms), or None."""
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        if name == "receipt" and params.startswith("dur="):
            return float(params[4:])
    return None


TARGET_MS = 1000.0


def latest_checkpoint(base: str, token: str) -> int:
    r = httpx.get(f"{base}/log/checkpoints/latest", headers={"Authorization": f"Bearer {token}"})
    return r.json()["id"] if r.status_code == 200 else 0


def receipt_line(clients: int, receipts: list[tuple[float | None, dict[str, Any]]],
                 checkpoints: int, key: str) -> str:
    """Stored → covering checkpoint, against the target; batching; offline verification."""
    from audit.proofs import verify_receipt_bundle

    waits = [ms for ms, r in receipts if ms is not None and r.get("checkpoint")]
    missing = sum(1 for _, r in receipts if not r)
    pending = sum(1 for _, r in receipts if r and not r["checkpoint"])
    verified = sum(1 for _, r in receipts if r.get("checkpoint")
                   and verify_receipt_bundle(r, [key]).entries)
    if len(waits) < 2:
        return f"  receipt {clients:>2} clients  too few complete receipts ({len(waits)})"
    q = statistics.quantiles(waits, n=100)
    verdict = "met" if q[94] <= TARGET_MS else "NOT met"
    return (f"  receipt {clients:>2} clients  stored → covering checkpoint p50 {q[49]:6.1f} ms  "
            f"p95 {q[94]:6.1f} ms  max {max(waits):6.1f} ms  (target p95 ≤ {TARGET_MS:.0f} ms: "
            f"{verdict}); {len(receipts)} writes shared {checkpoints} checkpoints, "
            f"{pending} pending, {missing} without a receipt, {verified} receipts verified "
            f"offline")


def append_cost(url: str, clients_list: list[int], appends: int) -> None:
    """The access log's hash chain alone: ``AccessLog.record`` (chained, serialised on the
    chain's head row) against a plain insert of the same row into a copy of the table (what
    it was before the chain), each from 1 and N threads, interleaved, before the server
    starts."""
    from sqlalchemy import Index, MetaData, Table, insert

    from access.reads import AccessLog, Read, region_key
    from access.roles import Principal
    from access.tables import access_log

    engine = open_engine(url)
    plain = Table("bench_plain_access_log", MetaData(),  # the same columns and indexes
                  *[c._copy() for c in access_log.columns],
                  Index("ix_bench_plain_subject", "subject_id"),
                  Index("ix_bench_plain_token", "token_id"))
    plain.create(engine)
    who = Principal("bench", "bench inspector", ApiRole.INSPECTOR, None, None)
    path = {"county": COUNTY, "township": TOWNSHIP}
    chained_log = AccessLog(engine)

    def chained(i: int) -> None:
        chained_log.record(who, [Read("household", f"h{i}", path)], method="GET",
                           route="/households/{household_id}", request_id=None, now=utc_now())

    def unchained(i: int) -> None:
        row = {"at": utc_now(), "token_id": "bench", "actor": who.name, "role": "inspector",
               "method": "GET", "route": "/households/{household_id}",
               "subject_kind": "household", "subject_id": f"h{i}",
               "subject_region": region_key(path), "request_id": None}
        with engine.begin() as conn:
            conn.execute(insert(plain), [row])

    def timed(append: Callable[[int], None], clients: int) -> Result:
        latencies: list[float] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            mine = []
            for i in range(k, appends, clients):
                t = time.perf_counter()
                append(i)
                mine.append((time.perf_counter() - t) * 1000)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return Result(len(latencies), time.perf_counter() - began, latencies)

    try:
        for clients in clients_list:
            runs: dict[str, list[Result]] = {"plain": [], "chained": []}
            for _ in range(2):  # interleaved: the machine's load falls on both alike
                runs["plain"].append(timed(unchained, clients))
                runs["chained"].append(timed(chained, clients))
            best = {k: max(v, key=lambda r: r.requests / r.seconds) for k, v in runs.items()}
            q = {k: statistics.quantiles(r.latencies, n=100) for k, r in best.items()}
            rate = {k: r.requests / r.seconds for k, r in best.items()}
            print(f"  append {clients:>2} clients  plain insert {rate['plain']:>6,.0f}/s p50 "
                  f"{q['plain'][49]:5.1f} ms p95 {q['plain'][94]:5.1f} ms; chained "
                  f"{rate['chained']:>6,.0f}/s p50 {q['chained'][49]:5.1f} ms p95 "
                  f"{q['chained'][94]:5.1f} ms ({rate['chained'] / rate['plain'] - 1:+.0%} "
                  f"throughput)")
    finally:
        plain.drop(engine)
        engine.dispose()


def run_store(kind: str, url: str, tmp: Path, args: argparse.Namespace) -> None:
    pepper = tmp / "pepper"
    loaded = load(url, pepper, args.data, args.households,
                  args.writes * (len(args.clients) + 2))
    if args.appends:
        append_cost(url, args.clients, args.appends)
    server, base = serve(url, pepper, tmp / "server.log")
    rng = random.Random(7)
    try:
        with httpx.Client(base_url=base) as warm:  # every household once: caches as in use
            for household in loaded.households:
                read_job(f"/households/{household}", loaded.reader)(warm)
        for name, token in [("health", None), ("read", loaded.reader),
                            ("read*", loaded.inspector)]:
            for clients in args.clients:
                reads = [[read_job(f"/households/{rng.choice(loaded.households)}", token)
                          if token else read_job("/health")
                          for _ in range(args.reads // clients)] for _ in range(clients)]
                print(load_test(base, clients, reads).line(name, clients))
        key = httpx.get(f"{base}/log/public-key").json()["public_key"]
        for clients in args.clients:  # each client pays from accounts of its own
            writes: list[list[Callable[[httpx.Client], int]]] = [[] for _ in range(clients)]
            receipts: list[tuple[float | None, dict[str, Any]]] = []
            for k, account_commands in enumerate(loaded.commands):
                batch = account_commands[:args.writes // len(loaded.commands)]
                del account_commands[:len(batch)]
                writes[k % clients] += [write_job(command, loaded.writer, receipts)
                                        for command in batch]
            before = latest_checkpoint(base, loaded.reader)
            print(load_test(base, clients, writes).line("write", clients))
            print(receipt_line(clients, receipts, latest_checkpoint(base, loaded.reader) - before,
                               key))
        clients = max(args.clients)  # every client pays from the same account
        hot = loaded.commands[0][:args.writes // len(loaded.commands) * 2]
        print(load_test(base, clients, [[write_job(c, loaded.writer) for c in hot[i::clients]]
                                        for i in range(clients)]).line("hot", clients))
    finally:
        server.terminate()
        server.wait(timeout=30)
        errors = [line for line in (tmp / "server.log").read_text(errors="replace").splitlines()
                  if "error" in line.lower()]
        if errors:
            print(f"  server log: {len(errors)} error lines, first: {errors[0][:300]}")


def new_pg_schema(url: str) -> tuple[str, str]:
    import psycopg

    schema = f"bench_api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url.split("?")[0], autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
    return f"{url.split('?')[0]}?schema={schema}", schema


def drop_pg_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url.split("?")[0], autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,6",
                        help="comma-separated numbers of concurrent clients")
    parser.add_argument("--reads", type=int, default=2000, help="reads per concurrency level")
    parser.add_argument("--writes", type=int, default=600, help="writes per concurrency level")
    parser.add_argument("--appends", type=int, default=1000,
                        help="access-log appends per run of the chained-vs-plain comparison "
                             "(0: skip it)")
    parser.add_argument("--households", type=int, default=60,
                        help="registered households the payments go to")
    parser.add_argument("--data", choices=["demo", "world"], default="demo")
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    pg_url = (os.environ.get("ZHUISU_BENCH_POSTGRES_URL")
              or os.environ.get("ZHUISU_TEST_POSTGRES_URL"))
    print(f"API benchmark over loopback: 1 uvicorn worker, {os.cpu_count()} cores, "
          f"clients {args.clients} (threads, one keep-alive connection each); "
          "read* = as an inspector (access-logged)")
    for kind in args.stores.split(","):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            schema = None
            if kind == "sqlite":
                url = f"sqlite:///{tmp}/zhuisu.db"
            elif pg_url:
                url, schema = new_pg_schema(pg_url)
            else:
                print("\n[postgres] skipped (set ZHUISU_BENCH_POSTGRES_URL)")
                continue
            print(f"\n[{kind}]")
            try:
                run_store(kind, url, tmp, args)
            finally:
                if schema is not None:
                    drop_pg_schema(pg_url, schema)


if __name__ == "__main__":
    main()
