"""Projection benchmark: full rebuild rate against the raw read rate of the same log, and
the latency of the main queries, on SQLite and PostgreSQL.

Data: the demo county (``demo.build.build_demo``, built once into a SQLite file, or
``--demo-db`` to reuse one) copied ``--scale`` times into each store.  Copy k renames every
id (uuid5 of k and the id) and every demo code (the 99… prefix becomes 99−k…), so the
copies are ten separate provinces' worth of households, officials and accounts.  The
copies' signatures no longer verify — projections never check them (``audit/`` does).

For each store it measures, in the same run:
- raw read: the whole log read in order through the event store's recorder
  (``select_notifications``, pages of 5,000), rows only;
- read + decode: the same, decoding every event (what any consumer of the log must do);
- rebuild: ``projections.runner.rebuild`` of all projections from position 0;
- p50/p95 of the main queries over random subjects: a household's money trace, a
  payment's responsibility chain, an official's liability view, a village view (plus the
  busiest official's liability view, reported apart).

    python bench/projections.py [--size county] [--scale 10] [--stores sqlite,postgres]
                                [--demo-db PATH] [--samples 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventsourcing.persistence import StoredEvent  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from store.settings import Settings, build_app  # noqa: E402
from projections import chains, queries, runner  # noqa: E402
from projections import money_trace as tr  # noqa: E402
from projections import register as reg  # noqa: E402
from projections import responsibility as rs  # noqa: E402
from projections.events import reader_app  # noqa: E402
from store.engines import dispose, engine_for  # noqa: E402

PAGE = 5000
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CODE_RE = re.compile(r"(?<![0-9])99(?=0[01][0-9])")
COPY_NS = uuid.UUID("6f7a6875-6973-752d-6265-6e6368000000")


# the data ---------------------------------------------------------------------------------
def demo_db(args: argparse.Namespace, tmp: Path) -> str:
    if args.demo_db:
        return f"sqlite:///{Path(args.demo_db).resolve()}"
    from demo.build import build_demo

    url = f"sqlite:///{tmp}/demo-{args.size}.db"
    app = build_app(Settings(database_url=url, id_pepper_file=tmp / "demo-pepper"))
    t0 = time.perf_counter()
    summary = build_demo(app, size=args.size)
    print(f"built demo '{args.size}': {summary.households:,} households, "
          f"{summary.events_written:,} events in {time.perf_counter() - t0:.0f} s")
    app.close()
    return url


def pages(recorder, limit: int = PAGE) -> Iterator[list]:
    after = 0
    while True:
        batch = recorder.select_notifications(start=after + 1, limit=limit)
        if not batch:
            return
        yield batch
        after = batch[-1].id


class Copier:
    """Copy k of a stored event: ids and demo codes renamed, everything else as it was."""

    def __init__(self, k: int):
        self.k = k
        self.prefix = str(99 - k)
        self.ids: dict[str, str] = {}

    def id(self, value: str) -> str:
        new = self.ids.get(value)
        if new is None:
            new = self.ids[value] = str(uuid.uuid5(COPY_NS, f"{self.k}:{value}"))
        return new

    def value(self, v: object) -> object:
        if isinstance(v, str):
            if UUID_RE.match(v):
                return self.id(v)
            return CODE_RE.sub(self.prefix, v) if "99" in v else v
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(x) for x in v]
        return v

    def event(self, n) -> StoredEvent:
        if self.k == 0:
            return StoredEvent(n.originator_id, n.originator_version, n.topic, n.state)
        state = json.loads(n.state)
        state = {k: (v if k == "timestamp" else self.value(v)) for k, v in state.items()}
        return StoredEvent(uuid.UUID(self.id(str(n.originator_id))), n.originator_version,
                           n.topic, json.dumps(state, ensure_ascii=False,
                                               separators=(",", ":")).encode())


def load(url: str, source_url: str, scale: int, tmp: Path) -> int:
    """Write ``scale`` copies of the demo log into the (empty) store at ``url``."""
    source = reader_app(source_url)
    pepper = tmp / f"pepper-{uuid.uuid4().hex[:6]}"
    target = build_app(Settings(database_url=url, id_pepper_file=pepper))
    t0 = time.perf_counter()
    for k in range(scale):
        copier = Copier(k)
        for batch in pages(source.recorder):
            target.recorder.insert_events([copier.event(n) for n in batch])
        print(f"  copy {k + 1}/{scale} loaded ({time.perf_counter() - t0:.0f} s)", flush=True)
    n = target.recorder.max_notification_id() or 0
    source.close()
    target.close()
    return n


# the measurements ----------------------------------------------------------------------------
def read_rates(url: str) -> tuple[int, float, float]:
    """(events, raw read seconds, read + decode seconds) through a fresh reader."""
    app = reader_app(url)
    source = runner.source_for(url)
    t0 = time.perf_counter()
    n = sum(len(b) for b in pages(app.recorder))
    raw = time.perf_counter() - t0
    t0 = time.perf_counter()
    for batch in pages(app.recorder):
        for note in batch:
            source.decode(note)
    decoded = time.perf_counter() - t0
    app.close()
    return n, raw, decoded


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def percentiles(ms: list[float]) -> tuple[float, float]:
    ms = sorted(ms)
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]


def query_latencies(url: str, samples: int,
                    rng: random.Random) -> dict[str, tuple[float, float, int]]:
    engine = engine_for(url)
    with engine.connect() as conn:
        households = [r[0] for r in conn.execute(
            select(tr.movements.c.payee_id).where(tr.movements.c.payee_kind == "household")
            .distinct())]
        payments = [r[0] for r in conn.execute(
            select(tr.movements.c.movement_id).where(tr.movements.c.kind == "disbursed"))]
        officials = [r[0] for r in conn.execute(select(rs.officials.c.official_id))]
        villages = [r[0] for r in conn.execute(
            select(reg.regions.c.code).where(reg.regions.c.level == "village"))]
        busiest = conn.execute(select(rs.signatures.c.official_id, func.count().label("n"))
                               .group_by(rs.signatures.c.official_id)
                               .order_by(text("n DESC")).limit(1)).first()
        county = conn.execute(select(reg.regions.c.code).where(reg.regions.c.level == "county")
                              ).scalar()
    cases: dict[str, Callable[[], object]] = {
        "money trace of a household (household_money)":
            lambda: chains.household_money(engine, rng.choice(households)),
        "responsibility chain of a payment (payment_chain)":
            lambda: chains.payment_chain(engine, rng.choice(payments)),
        "official's liability view (official_liability)":
            lambda: chains.official_liability(engine, rng.choice(officials)),
        "village view (village_view)":
            lambda: queries.village_view(engine, rng.choice(villages)),
        f"busiest official's liability ({busiest.n:,} signatures)":
            lambda: chains.official_liability(engine, busiest.official_id),
        "county balance summary (balance_summary)":
            lambda: queries.balance_summary(engine, county),
    }
    out = {}
    for name, fn in cases.items():
        n = samples if "busiest" not in name and "county" not in name else max(20, samples // 10)
        for _ in range(3):
            fn()  # warm the pool and the caches
        out[name] = (*percentiles([timed(fn) for _ in range(n)]), n)
    return out


# a store -----------------------------------------------------------------------------------
def run_store(kind: str, url: str, source_url: str, args: argparse.Namespace, tmp: Path) -> None:
    print(f"\n[{kind}] loading {args.scale} × the demo log …", flush=True)
    events = load(url, source_url, args.scale, tmp)
    n, raw, decoded = read_rates(url)
    assert n == events
    t0 = time.perf_counter()
    runner.rebuild(url)
    rebuild = time.perf_counter() - t0
    latencies = query_latencies(url, args.samples, random.Random(7))
    households = _count(url, reg.households)
    demo = f"the demo in {args.demo_db}" if args.demo_db else f"demo '{args.size}'"
    print(f"[{kind}] {events:,} events, {households:,} households ({args.scale} × {demo}); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  raw sequential read            {events / raw:>10,.0f} events/s")
    print(f"  read + decode                  {events / decoded:>10,.0f} events/s")
    print(f"  full rebuild, all projections  {events / rebuild:>10,.0f} events/s  "
          f"({rebuild:.0f} s)")
    print(f"  ratio rebuild / raw read      = {raw / rebuild:.2f}   (target ≥ 0.33)")
    print(f"  ratio rebuild / read + decode = {decoded / rebuild:.2f}")
    print("  query latency over random subjects (ms)      p50      p95      n   (p95 target < 50)")
    for name, (p50, p95, count) in latencies.items():
        print(f"    {name:<46.46} {p50:7.1f}  {p95:7.1f}  {count:5d}")
    dispose(url)
    runner.close_sources()


def _count(url: str, table) -> int:
    with engine_for(url).connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="county", help="demo size (demo.county.SIZES)")
    parser.add_argument("--scale", type=int, default=10, help="copies of the demo (≤ 10)")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--demo-db", help="an existing SQLite store holding the demo")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    if not 1 <= args.scale <= 10:
        parser.error("--scale is 1 … 10 (copy k renames the 99 prefix to 99 − k)")
    pg = os.environ.get("ZHUISU_BENCH_POSTGRES_URL") or os.environ.get("ZHUISU_TEST_POSTGRES_URL")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        source_url = demo_db(args, tmp)
        for kind in args.stores.split(","):
            if kind == "sqlite":
                run_store(kind, f"sqlite:///{tmp}/bench.db", source_url, args, tmp)
            elif pg:
                schema = f"bench_proj_{uuid.uuid4().hex[:10]}"
                server = pg.split("?")[0]
                _sql(server, f'CREATE SCHEMA "{schema}"')
                try:
                    run_store(kind, f"{server}?schema={schema}", source_url, args, tmp)
                finally:
                    _sql(server, f'DROP SCHEMA "{schema}" CASCADE')
            else:
                print("\n[postgres] skipped (set ZHUISU_BENCH_POSTGRES_URL)")


def _sql(server: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(statement)


if __name__ == "__main__":
    main()
