"""大数据比对 benchmark: a million-row register against the demo county, import and comparison
end to end, and the planted matches found (and nothing else).

Builds the demo county (``demo.build.build_demo``, ``--size``) with ``--plant`` register
matches of each comparison model (``demo.registers``: planted rows and near misses); the
death register (死亡/火化) is padded with people from elsewhere to ``--rows`` rows (default
1,000,000), the other registers carry a few hundred.  Then, per store:

- log: the comparison projection caught up with the demo's log (households, payments —
  the ``FundAccount.Disbursed`` events arrive by the thousand);
- import: each register file → kept rows (``register_rows``) and the snapshot's one event
  (``exchange.registers.import_register``), the big one timed apart;
- comparison: the projection caught up with the snapshot events (the matches computed);
- per model: planted / found / missed / false alarms, precision and recall against the
  truth; peak memory (``ru_maxrss``) of the process.

Targets: recall 100 % and precision ≥ 95 % on every model, comparison < 10 s, import of
the million rows < 60 s, peak memory < 2 GB (exit status 1 when one is missed).

    python bench/compare.py [--size small] [--plant 20] [--rows 1000000]
                            [--stores sqlite,postgres]
                            [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.flags import store_url  # noqa: E402
from demo.build import build_demo  # noqa: E402
from demo.registers import score  # noqa: E402
from exchange.registers import import_register  # noqa: E402
from projections import runner  # noqa: E402
from projections.compare import list_matches  # noqa: E402
from store.engines import dispose, engine_for  # noqa: E402
from store.settings import Settings, build_app  # noqa: E402

TARGETS = {"recall": 1.0, "precision": 0.95, "compare_s": 10.0, "import_s": 60.0,
           "memory_gb": 2.0}


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def all_matches(url: str) -> list[dict]:
    out, after = [], None
    while True:
        page = list_matches(engine_for(url), after=after, limit=1000)
        out += page
        if len(page) < 1000:
            return out
        after = page[-1]["match_id"]


def run_store(kind: str, url: str, args: argparse.Namespace, tmp: Path) -> bool:
    pepper = tmp / f"pepper-{kind}"
    app = build_app(Settings(database_url=url, id_pepper_file=pepper))
    t0 = time.perf_counter()
    summary = build_demo(app, size=args.size, seed=args.seed, plant_registers=args.plant,
                         register_noise={"death": args.rows - 2 * args.plant,
                                         **{k: 200 for k in ("payroll", "cadre_relatives",
                                                             "vehicle", "property",
                                                             "business", "dibao",
                                                             "disability")}})
    print(f"[{kind}] demo {args.size}: {summary.households:,} households, "
          f"{summary.payments:,} payments, {summary.events_written:,} events "
          f"({time.perf_counter() - t0:.0f} s, registers drawn included)", flush=True)
    t = time.perf_counter()
    runner.catch_up(app, names=["compare"])
    log_s = time.perf_counter() - t
    print(f"[{kind}] comparison projection over the demo log: {log_s:.1f} s", flush=True)
    big = max(summary.registers.files, key=lambda f: f.rows)
    small_s = 0.0
    for f in summary.registers.files:
        if f is big:
            continue
        t = time.perf_counter()
        import_register(app, department=f.department, kind=f.kind, as_of=f.as_of, data=f.data,
                        filename=f.filename, imported_by="bench", confirm=True)
        small_s += time.perf_counter() - t
    t = time.perf_counter()
    done = import_register(app, department=big.department, kind=big.kind, as_of=big.as_of,
                           data=big.data, filename=big.filename, imported_by="bench",
                           confirm=True)
    import_s = time.perf_counter() - t
    print(f"[{kind}] import of the {big.kind} register: {done['rows_kept']:,} rows kept of "
          f"{done['rows_read']:,} ({len(big.data) / 1e6:.0f} MB) in {import_s:.1f} s; the "
          f"other {len(summary.registers.files) - 1} registers in {small_s:.1f} s", flush=True)
    t = time.perf_counter()
    runner.catch_up(app, names=["compare"])
    compare_s = time.perf_counter() - t
    found = all_matches(url)
    scores = score(summary.registers.truth, found)
    memory = peak_gb()
    print(f"[{kind}] comparison (the 8 snapshots against {summary.households:,} households): "
          f"{compare_s:.2f} s, {len(found):,} matches; peak memory {memory:.2f} GB")
    print(f"{'model':<32} {'planted':>7} {'found':>6} {'missed':>6} {'false':>6} "
          f"{'precision':>9} {'recall':>7}")
    ok = True
    for model, s in scores.items():
        p = "—" if s["precision"] is None else f"{100 * s['precision']:.1f}%"
        r = "—" if s["recall"] is None else f"{100 * s['recall']:.1f}%"
        print(f"{model:<32} {s['planted']:>7} {s['found']:>6} {s['missed']:>6} "
              f"{s['false_alarms']:>6} {p:>9} {r:>7}")
        ok &= s["missed"] == 0 and (s["precision"] or 0) >= TARGETS["precision"]
    ok &= compare_s < TARGETS["compare_s"] and import_s < TARGETS["import_s"] \
        and memory < TARGETS["memory_gb"]
    app.close()
    dispose()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--seed", type=int, default=20251)
    parser.add_argument("--plant", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--postgres", default=os.environ.get(
        "ZHUISU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for kind in args.stores.split(","):
            with store_url(args.postgres if kind == "postgres" else None, tmp) as url:
                ok &= run_store(kind, url, args, tmp)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
