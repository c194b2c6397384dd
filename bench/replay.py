"""Replay benchmark (时间回溯): latency of as-of replays, scoped against full, at two sizes of
the log, beside the raw read rate of the same store in the same run.

Data as in ``bench/projections.py`` (whose loader it uses): the demo (``--size``, built once
into a SQLite file, or ``--demo-db`` to reuse one) copied ``--scales`` times (e.g. ``1,10``)
into a fresh store of each kind.  For each store and scale it measures:

- raw read: the whole log read in order through the recorder, rows only (events/s);
- the replay index (``projections.replay_index``) caught up from zero;
- p50/p95 of as-of replays over random subjects and points of the log: a village
  (``village_as_of``), a household and an account effective on a date
  (``aggregate_as_of``, the modes that replay), each at a random log position or on a
  random business date of the demo year — ``scoped`` (the default) over ``--samples``
  draws, ``full`` (the whole log up to the point) over ``--full-samples``.

    python bench/replay.py [--size small] [--scales 1,10] [--stores sqlite,postgres]
                           [--demo-db PATH] [--samples 40] [--full-samples 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from domain.errors import DomainError  # noqa: E402
from projections import replay, runner  # noqa: E402
from projections import replay_index as index  # noqa: E402
from projections.events import reader_app  # noqa: E402
from store.engines import dispose, engine_for  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "bench_projections", Path(__file__).resolve().parent / "projections.py")
bp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bp)

DAYS = (dt.date(2025, 1, 1), dt.date(2025, 12, 31))


def subjects(url: str) -> dict[str, list[str]]:
    s = index.scope
    with engine_for(url).connect() as conn:
        rows = conn.execute(select(s.c.scope, s.c.aggregate_id, s.c.kind)
                            .where(s.c.kind.in_(["household", "account"]))).all()
    return {"village": sorted({r.scope for r in rows if r.kind == "household"}),
            "household": sorted(r.aggregate_id for r in rows if r.kind == "household"),
            "account": sorted(r.aggregate_id for r in rows if r.kind == "account")}


def a_moment(app, head: int, rng: random.Random) -> replay.Moment:
    if rng.random() < 0.5:
        return replay.moment(app, position=rng.randint(head // 2, head))
    day = DAYS[0] + dt.timedelta(days=rng.randint(0, (DAYS[1] - DAYS[0]).days))
    return replay.moment(app, as_of=day)


def one(app, kind: str, ids: list[str], head: int, rng: random.Random,
        scope: str) -> Callable[[], object]:
    subject = rng.choice(ids)
    at = a_moment(app, head, rng)
    if kind == "village":
        return answered(lambda: replay.village_as_of(app, subject, at, scope=scope))
    at = replay.moment(app, as_of=at.on or DAYS[1], position=at.position)  # effective
    return answered(lambda: replay.aggregate_as_of(app, uuid.UUID(subject), at, scope=scope))


def answered(fn: Callable[[], object]) -> Callable[[], object]:
    """A replay whose answer may be a refusal (the subject did not exist yet then)."""
    def call() -> object:
        try:
            return fn()
        except DomainError as exc:
            return exc
    return call


def latencies(app, url: str, head: int, samples: int, full_samples: int,
              rng: random.Random) -> dict[str, tuple[float, float, int]]:
    found = subjects(url)
    out = {}
    for kind in ("village", "household", "account"):
        for scope, n in (("scoped", samples), ("full", full_samples)):
            if n <= 0:
                continue
            ms = [bp.timed(one(app, kind, found[kind], head, rng, scope)) for _ in range(n)]
            out[f"{kind} as of, {scope}"] = (*bp.percentiles(ms), n)
    return out


def run_store(kind: str, url: str, source_url: str, scale: int, args: argparse.Namespace,
              tmp: Path) -> None:
    print(f"\n[{kind} × {scale}] loading {scale} × the demo log …", flush=True)
    events = bp.load(url, source_url, scale, tmp)
    n, raw, _ = bp.read_rates(url)
    t0 = time.perf_counter()
    runner.catch_up(url, names=[index.ReplayIndex.name], batch=runner.REBUILD_BATCH)
    built = time.perf_counter() - t0
    app = reader_app(url)
    try:
        found = latencies(app, url, n, args.samples, args.full_samples, random.Random(7))
    finally:
        app.close()
    print(f"[{kind} × {scale}] {events:,} events; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print(f"  raw sequential read            {events / raw:>10,.0f} events/s  "
          f"({raw:.1f} s for the whole log)")
    print(f"  replay index from zero         {events / built:>10,.0f} events/s  ({built:.1f} s)")
    print("  replay latency (ms)                        p50       p95      n   (p95 target < 1000)")
    for name, (p50, p95, count) in found.items():
        print(f"    {name:<38} {p50:9.1f} {p95:9.1f}  {count:5d}")
    dispose(url)
    runner.close_sources()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", help="demo size (demo.county.SIZES)")
    parser.add_argument("--scales", default="1,10", help="copies of the demo, each ≤ 10")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--demo-db", help="an existing SQLite store holding the demo")
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--full-samples", type=int, default=3)
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    if not all(1 <= s <= 10 for s in scales):
        parser.error("--scales are 1 … 10 (copy k renames the 99 prefix to 99 − k)")
    pg = os.environ.get("ZHUISU_BENCH_POSTGRES_URL") or os.environ.get("ZHUISU_TEST_POSTGRES_URL")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        source_url = bp.demo_db(args, tmp)
        for kind in args.stores.split(","):
            for scale in scales:
                if kind == "sqlite":
                    run_store(kind, f"sqlite:///{tmp}/bench-{scale}.db", source_url, scale,
                              args, tmp)
                elif pg:
                    schema = f"bench_replay_{uuid.uuid4().hex[:10]}"
                    server = pg.split("?")[0]
                    bp._sql(server, f'CREATE SCHEMA "{schema}"')
                    try:
                        run_store(kind, f"{server}?schema={schema}", source_url, scale, args,
                                  tmp)
                    finally:
                        bp._sql(server, f'DROP SCHEMA "{schema}" CASCADE')
                else:
                    print("\n[postgres] skipped (set ZHUISU_BENCH_POSTGRES_URL)")


if __name__ == "__main__":
    main()
