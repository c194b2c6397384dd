"""Red-flag benchmark: planted misconduct found, and nothing else.

Builds the demo county (``demo.build.build_demo``) with ``--plant`` items of each kind of
misconduct (``demo.misconduct``), runs the projections (``projections.runner.catch_up``)
and scores the standing flags (``projections.flags.list_flags``) against the ground truth:
per rule, *found* = a flag with a planted (rule_id, subject_id), *missed* = a planted item
without one, *false alarm* = a flag of the rule whose subject was neither planted nor one
the normal demo raises by design (``inherent``: its relapses weeks after exit).

    precision = (found + inherent found) / flags        recall = found / planted

Target: recall 100 % on every rule, precision ≥ 95 % (exit status 1 when missed).

    python bench/flags.py [--size county] [--plant 20] [--seed 20251]
                          [--postgres postgresql://postgres@127.0.0.1:5432/test]
                          [--only-flags] [--truth truth.json] [--flags flags.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo.build import build_demo  # noqa: E402
from demo.misconduct import Score, score, write_truth  # noqa: E402
from store.settings import Settings, build_app  # noqa: E402
from projections import runner  # noqa: E402
from projections.flags import MAX_LIMIT, list_flags  # noqa: E402
from store.engines import dispose, engine_for  # noqa: E402

PRECISION_TARGET = 0.95


def all_flags(url: str) -> list[dict]:
    """Every standing flag, a page at a time."""
    engine = engine_for(url)
    out: list[dict] = []
    after = None
    while True:
        page = list_flags(engine, after=after, limit=MAX_LIMIT)
        out += page
        if len(page) < MAX_LIMIT:
            return out
        after = page[-1]["flag_id"]


@contextmanager
def store_url(postgres: str | None, tmp: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh schema on the PostgreSQL server (dropped after)."""
    if not postgres:
        yield f"sqlite:///{tmp / 'demo.db'}"
        return
    import psycopg

    schema = f"bench_flags_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{postgres}?schema={schema}"
        finally:
            dispose()
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def table(scores: dict[str, Score]) -> list[str]:
    head = (f"{'rule':<31} {'planted':>7} {'found':>6} {'missed':>6} {'false':>6} "
            f"{'inherent':>8} {'precision':>9} {'recall':>7}")
    lines = [head, "-" * len(head)]
    for rule, s in scores.items():
        lines.append(f"{rule:<31} {s.planted:>7} {s.found:>6} {len(s.missed):>6} "
                     f"{len(s.false_alarms):>6} {s.inherent:>8} {percent(s.precision):>9} "
                     f"{percent(s.recall):>7}")
    planted = sum(s.planted for s in scores.values())
    found = sum(s.found for s in scores.values())
    flags = sum(s.flags for s in scores.values())
    right = sum(s.found + s.inherent for s in scores.values())
    false = sum(len(s.false_alarms) for s in scores.values())
    lines += ["-" * len(head),
              f"{'all rules':<31} {planted:>7} {found:>6} {planted - found:>6} {false:>6} "
              f"{sum(s.inherent for s in scores.values()):>8} "
              f"{percent(right / flags if flags else None):>9} "
              f"{percent(found / planted if planted else None):>7}"]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="county",
                        help="demo size: tiny, small, county or TxVxH (default county)")
    parser.add_argument("--plant", type=int, default=20, help="items per kind (default 20)")
    parser.add_argument("--seed", type=int, default=20251)
    parser.add_argument("--postgres", help="PostgreSQL server URL (default: a SQLite file)")
    parser.add_argument("--only-flags", action="store_true",
                        help="run only the flags projection (default: all projections)")
    parser.add_argument("--truth", help="also write the ground truth to this JSON file")
    parser.add_argument("--flags", help="also write the standing flags to this JSON file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, store_url(args.postgres, Path(tmp)) as url:
        pepper = Path(tmp) / "id-pepper"
        app = build_app(Settings(database_url=url, id_pepper_file=pepper))
        started = time.perf_counter()
        summary = build_demo(app, size=args.size, seed=args.seed, plant=args.plant)
        built = time.perf_counter() - started
        print(f"demo {args.size} (seed {args.seed}, {args.plant} planted per kind): "
              f"{summary.households:,} households, {summary.events_written:,} events in "
              f"{built:.1f} s ({'PostgreSQL' if args.postgres else 'SQLite'})", flush=True)
        if args.truth:
            write_truth(summary.truth, args.truth)

        started = time.perf_counter()
        runner.catch_up(app, names=["flags"] if args.only_flags else None)
        projected = time.perf_counter() - started
        started = time.perf_counter()
        flags = all_flags(runner.source_for(app).url)
        read = time.perf_counter() - started
        app.close()
    if args.flags:
        Path(args.flags).write_text(json.dumps(flags, ensure_ascii=False, indent=1, default=str))

    scores = score(summary.truth, flags)
    print(f"projections ({'flags only' if args.only_flags else 'all'}) caught up in "
          f"{projected:.1f} s ({summary.events_written / projected:,.0f} events/s); "
          f"{len(flags):,} standing flags read in {read:.2f} s\n")
    print("\n".join(table(scores)))
    for rule, s in scores.items():
        for what, ids in (("missed", s.missed), ("false alarm", s.false_alarms)):
            if ids:
                print(f"{rule} {what}: {', '.join(ids[:5])}{' …' if len(ids) > 5 else ''}")
    met = all((s.recall in (None, 1.0)) and (s.precision is None or
                                             s.precision >= PRECISION_TARGET)
              for s in scores.values())
    short = {r: t["short"] for r, t in summary.truth["rules"].items() if "short" in t}
    for rule, note in short.items():
        print(f"{rule}: {note}")
    print(f"\ntarget (recall 100 % on every rule, precision ≥ {PRECISION_TARGET:.0%}): "
          f"{'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
