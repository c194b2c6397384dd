"""Sweep benchmark: what the server's own re-verification costs, and how soon it notices.

For each store (a SQLite file; PostgreSQL when ZHUISU_BENCH_POSTGRES_URL or
ZHUISU_TEST_POSTGRES_URL is set, in a fresh schema dropped afterwards) it appends
``--events`` stored events in bulk (``store.bulk.append_verified``: region-sized records
under fresh aggregate ids), catches the tree up and signs a checkpoint every 10,000 leaves,
then runs the sweep (``audit.sweep.sweep_tick``) as the server does, ``--pages`` pages of
4,096 leaves a tick:

* tick: ms per tick (median, p95) and leaves checked per second;
* pass: ticks and seconds of CPU for the whole log, and the documented bound on the time to
  notice a change, ``(ceil(leaves / (pages × 4096)) + 1) × ZHUISU_SWEEP_EVERY`` (2 s);
* found: one byte of a random old event changed between two ticks, the ticks until the
  sweep reports it (at most the bound's tick count) and at which leaf.

    python bench/sweep.py [--events 200000] [--pages 2] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eventsourcing.persistence import StoredEvent

from audit import log, tree_store
from audit.scan import PAGE
from audit.store import AuditConfig, AuditStore
from audit.sweep import SweepState, sweep_tick
from store.bulk import append_verified
from store.settings import Settings, build_app

EVERY = 2.0  # ZHUISU_SWEEP_EVERY's default
TOPIC = "domain.region:Region.Created"


def events(n: int, rng: random.Random) -> list[StoredEvent]:
    out = []
    for i in range(n):
        state = json.dumps({"code": f"52{i:08d}", "name": f"村{i}委员会", "level": "village",
                            "parent_code": "522625100", "population": rng.randint(300, 3000),
                            "timestamp": "2025-01-05T08:00:00+00:00"},
                           ensure_ascii=False).encode()
        out.append(StoredEvent(uuid.UUID(int=rng.getrandbits(128)), 1, TOPIC, state))
    return out


def flip(audit: AuditStore, position: int) -> None:
    sqlite = audit.dialect == "sqlite"
    table = "stored_events" if sqlite else f'"{audit.schema}"."zhuisu_events"'
    pos, mark = ("rowid", "?") if sqlite else ("notification_id", "%s")
    with audit.engine.begin() as conn:
        state = bytes(conn.exec_driver_sql(f"SELECT state FROM {table} WHERE {pos} = {mark}",
                                           (position,)).scalar_one())
        changed = state[:-2] + bytes([state[-2] ^ 1]) + state[-1:]
        conn.exec_driver_sql(f"UPDATE {table} SET state = {mark} WHERE {pos} = {mark}",
                             (changed, position))


def run_store(url: str, tmp: Path, args: argparse.Namespace) -> None:
    rng = random.Random(7)
    app = build_app(Settings(database_url=url, id_pepper_file=tmp / "pepper"))
    audit = AuditStore(AuditConfig(url, tmp / "log-key"))
    try:
        began = time.perf_counter()
        for start in range(0, args.events, 10_000):
            append_verified(app, events(min(10_000, args.events - start), rng))
            tree_store.catch_up(audit)
            log.make_checkpoint(audit)
        size = tree_store.tree_state(audit).size
        print(f"  store: {size:,} events, tree and checkpoints in "
              f"{time.perf_counter() - began:.1f} s")

        state, ticks = SweepState(), []
        while True:
            t = time.perf_counter()
            assert sweep_tick(audit, state, args.pages) == [], "a clean log has findings"
            ticks.append((time.perf_counter() - t) * 1000)
            if state.done:
                break
        per_tick = args.pages * PAGE
        bound_ticks = -(-size // per_tick) + 1
        q = statistics.quantiles(ticks, n=20) if len(ticks) > 1 else [ticks[0]] * 19
        print(f"  tick   {args.pages} pages ({per_tick:,} leaves)  median "
              f"{statistics.median(ticks):7.1f} ms  p95 {q[18]:7.1f} ms  "
              f"{per_tick / statistics.median(ticks) * 1000:,.0f} leaves/s")
        print(f"  pass   {len(ticks)} ticks, {sum(ticks) / 1000:.2f} s of work; bound to notice "
              f"a change: ({-(-size // per_tick)} + 1) × {EVERY:.0f} s = "
              f"{bound_ticks * EVERY:.0f} s (CPU {sum(ticks) / 1000 / (len(ticks) * EVERY):.1%} "
              f"of one core at ZHUISU_SWEEP_EVERY={EVERY:.0f})")

        # a change between two ticks, somewhere the sweep already passed or not
        for _ in range(rng.randint(0, len(ticks) - 1)):
            sweep_tick(audit, state, args.pages)
        victim = rng.randint(1, size - 1)
        flip(audit, victim)
        found, n = [], 0
        while not found:
            found = sweep_tick(audit, state, args.pages)
            n += 1
            if n > bound_ticks:
                raise RuntimeError("the sweep did not find the change within its bound")
        print(f"  found  notification id {victim}: after {n} ticks (bound {bound_ticks}): "
              f"{found[0].kind} at leaf {found[0].leaf_index}")
    finally:
        audit.close()
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--pages", type=int, default=2)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    pg_url = (os.environ.get("ZHUISU_BENCH_POSTGRES_URL")
              or os.environ.get("ZHUISU_TEST_POSTGRES_URL"))
    print(f"Sweep benchmark: {args.events:,} events, {args.pages} pages a tick, "
          f"{os.cpu_count()} cores")
    for kind in args.stores.split(","):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            print(f"\n[{kind}]")
            if kind == "sqlite":
                run_store(f"sqlite:///{tmp}/zhuisu.db", tmp, args)
                continue
            if not pg_url:
                print("  skipped (set ZHUISU_BENCH_POSTGRES_URL)")
                continue
            import psycopg

            schema = f"bench_sweep_{uuid.uuid4().hex[:12]}"
            base = pg_url.split("?")[0]
            with psycopg.connect(base, autocommit=True) as con:
                con.execute(f'CREATE SCHEMA "{schema}"')
            try:
                run_store(f"{base}?schema={schema}", tmp, args)
            finally:
                with psycopg.connect(base, autocommit=True) as con:
                    con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
