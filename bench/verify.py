"""Verification benchmark: full verification against the raw hash rate, and proofs by log size.

For each store (SQLite file; PostgreSQL when ZHUISU_BENCH_POSTGRES_URL or
ZHUISU_TEST_POSTGRES_URL is set):

1. Full verification.  The store holds N events (default 100 000): a few hundred made by the
   application's verbs (regions, units, officials with positions and keys), copied under new
   aggregate ids with raw SQL up to N rows of the same sizes and topics.  The tree is caught
   up (rate printed) and a checkpoint signed.  ``audit.verify.verify_log`` then runs with one
   process and with one worker per CPU; in the same run, interleaved with them,
   ``hashlib.sha256`` over the same canonical record bytes, one call per record, gives the
   raw ceiling (best of ``--runs`` each).  Target: full verification ≥ 1/2 of the raw rate.
   The stages of one page of the verifier are timed alone too, as multiples of the raw
   hash, to show where the time goes.
2. Proofs at 10^4, 10^5 and 10^6 leaves, through the command path (events table, catch-up,
   signed checkpoints at eight sizes): inclusion-proof bundles for random events
   (``audit.log.prove_inclusion``) and their offline verification
   (``audit.proofs.verify_inclusion_bundle``: signature, record, Merkle path), consistency
   bundles between random earlier checkpoints and the latest, and their verification.
   Median and 95th percentile in ms and the proof length.  Target: under 10 ms at 10^6.
3. Signatures and snapshots on the demo county (``--demo small``; real signed steps, which
   the copied rows of 1. are not): the tree's catch-up, which re-checks every signature
   before a record becomes a leaf (``audit.signatures``), against the same catch-up
   without that check; full verification (hashes, key history, snapshots by replay)
   alone; and ``verify --signatures`` with one process and one worker per CPU: events/s,
   signatures/s and the cost over hash-only verification.

    python bench/verify.py [--events 100000] [--sizes 10000,100000,1000000]
                           [--stores sqlite,postgres] [--samples 200] [--runs 3]
                           [--demo small] [--parts full,proofs,signatures]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from store.settings import Settings, build_app  # noqa: E402
from audit import log, proofs, tree_store  # noqa: E402
from audit.records import encode_record, leaf_hashes  # noqa: E402
from audit.store import AuditConfig, AuditStore  # noqa: E402
from audit.scan import PAGE, PageData, PageReader, subtree_levels  # noqa: E402
from audit.verify import verify_log  # noqa: E402
from audit.signatures import verify_signatures  # noqa: E402
from audit.snapshots import verify_snapshots  # noqa: E402

ORIGIN = "bench.zhuisu.example/log"


# stores -------------------------------------------------------------------------------------
@contextmanager
def fresh_store(kind: str, workdir: Path, seeded: bool = True) -> Iterator[AuditStore]:
    """A database of the kind with the application's tables (and, if ``seeded``, the seed
    events), as an AuditStore."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        schema = None
    else:
        import psycopg

        server = postgres_url()
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{server}?schema={schema}"
    app = build_app(Settings(database_url=url, id_pepper_file=workdir / "id-pepper"))
    if seeded:
        seed_events(app)
    app.close()
    store = AuditStore(AuditConfig(url, workdir / f"log-key-{uuid.uuid4().hex[:8]}", ORIGIN))
    try:
        yield store
    finally:
        store.close()
        if schema:
            import psycopg

            with psycopg.connect(postgres_url(), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def postgres_url() -> str:
    url = os.environ.get("ZHUISU_BENCH_POSTGRES_URL") or os.environ.get(
        "ZHUISU_TEST_POSTGRES_URL", "")
    return url.split("?")[0]


def seed_events(app) -> None:
    """Real events of a small county: regions, units, officials, positions and keys."""
    import datetime as dt

    from domain.identity import check_digit
    from domain.signing import SigningKey, b64

    with app.batch():
        app.create_region("52", "贵州省", "province", None)
        app.create_region("5226", "黔东南州", "city", "52")
        app.create_region("522625", "镇远县", "county", "5226")
        app.create_region("522625100", "羊场镇", "township", "522625")
        for v in range(1, 31):
            village = f"522625100{v:03d}"
            app.create_region(village, f"村{v:03d}", "village", "522625100")
            app.establish_unit(f"U{village}", f"村委会{v:03d}", "village_committee", village)
            for k, kind in enumerate(("village_accountant", "village_party_secretary",
                                      "village_director")):
                code = f"{kind}@{village}"
                number = f"52262519{v * 10 + k:09d}"
                app.register_official(code, code, f"U{village}", number + check_digit(number))
                app.take_position(code, kind, village, dt.date(2020, 1, 1))
                key = SigningKey.from_seed(hashlib.sha256(code.encode()).digest())
                app.register_key(code, b64(key.public_bytes), dt.date(2020, 1, 1))


def grow_events(store: AuditStore, total: int) -> None:
    """Copy the seeded rows under new aggregate ids until the table holds ``total`` rows."""
    table, pos = store.events.table, store.events.pos
    with store.engine.begin() as conn:
        seed = store.raw(conn, f"SELECT originator_version, topic, state FROM {table} "
                               f"ORDER BY {pos}")
        have = store.raw(conn, f"SELECT COUNT(*) FROM {table}")[0][0]
        rows = ((uuid.uuid4(), *seed[k % len(seed)]) for k in range(max(0, total - have)))
        raw = conn.connection.driver_connection
        if store.dialect == "sqlite":
            raw.executemany(f"INSERT INTO {table} (originator_id, originator_version, topic, "
                            f"state) VALUES (?, ?, ?, ?)",
                            ((oid.hex, v, t, s) for oid, v, t, s in rows))
        else:
            with raw.cursor() as cur, cur.copy(
                    f"COPY {table} (originator_id, originator_version, topic, state) "
                    f"FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)


# 1. full verification ----------------------------------------------------------------------
def best_of(runs: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def full_verification(kind: str, events: int, workdir: Path, runs: int) -> None:
    with fresh_store(kind, workdir) as store:
        grow_events(store, events)
        began = time.perf_counter()
        state = tree_store.catch_up(store)
        built = time.perf_counter() - began
        log.make_checkpoint(store)
        with store.engine.connect() as conn:
            rows = store.events.between(conn, 0)
        records = [encode_record(r) for r in rows]
        size = sum(map(len, records)) / len(records)
        sha256 = hashlib.sha256
        cpus = os.cpu_count() or 1
        counts = [1, cpus] if cpus > 1 else [1]
        # Interleaved, best of ``runs`` each: the raw hash and every verification see the
        # same machine (which may be shared) as nearly as can be.
        raw, took = float("inf"), dict.fromkeys(counts, float("inf"))
        for _ in range(runs):
            raw = min(raw, best_of(1, lambda: [sha256(r).digest() for r in records]))
            for workers in counts:
                took[workers] = min(took[workers], _timed_verify(store, workers))
        n = state.size
        print(f"\n[{kind}] full verification of {n} events (mean record {size:.0f} bytes, "
              f"best of {runs})")
        print(f"  tree catch-up (command path)      {n / built:12,.0f} leaves/s")
        print(f"  raw hashlib.sha256, one core      {n / raw:12,.0f} records/s")
        for workers in counts:
            label = "1 process" if workers == 1 else f"{workers} worker processes"
            print(f"  verify_log, {label:22s}{n / took[workers]:12,.0f} events/s"
                  f"   = {raw / took[workers]:.2f} of raw   (target >= 0.50)")
        _stages(store, rows[:PAGE], records[:PAGE])


def _timed_verify(store: AuditStore, workers: int) -> float:
    result = verify_log(store, workers=workers)
    assert result.ok, result.message
    return result.seconds


def _stages(store: AuditStore, rows: list[tuple], records: list[bytes]) -> None:
    """One page of the verifier's work, stage by stage, as multiples of the raw hash.

    Per record the verifier hashes twice (the record's leaf, and on average one interior
    node), reads the record and the stored leaf and node, and compares; the raw hash is one
    call per record, so one process cannot pass about half the raw rate even with free
    reads.  A stage that reads runs on the database too: on PostgreSQL the server's share
    (``fetch`` minus the driver's) overlaps with the hashing of the previous page.
    """
    sha256 = hashlib.sha256
    reader = PageReader(store)
    n = len(rows)
    hashes = b"".join(leaf_hashes(rows))
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            joined = store.events.by_leaf(conn, reader.leaves, 0, n)
            stages = {
                "read records + leaves (JOIN)": lambda: store.events.by_leaf(
                    conn, reader.leaves, 0, n),
                "count events in range": lambda: store.events.count(conn, 0, rows[-1][0]),
                "encode + leaf hash + compare": lambda: reader.leaves_if_all_match(
                    PageData(0, {}, joined, n), n),
            }
        else:
            inputs = store.events.leaf_inputs(conn, -(2**63), n)
            leaves = store.raw(conn, f"SELECT position, leaf_hash FROM {reader.leaves} "
                                     f"WHERE leaf_index >= 0 AND leaf_index < ? "
                                     f"ORDER BY leaf_index", (n,))
            stages = {
                "read stored leaves": lambda: store.raw(
                    conn, f"SELECT position, leaf_hash FROM {reader.leaves} WHERE "
                          f"leaf_index >= 0 AND leaf_index < ? ORDER BY leaf_index", (n,)),
                "read records as leaf inputs": lambda: store.events.leaf_inputs(
                    conn, -(2**63), n),
                "leaf hash + compare": lambda: reader.leaves_if_all_match(
                    PageData(-(2**63), {}, leaves, records=inputs), n),
            }
        stages["read stored nodes (one query)"] = lambda: reader.node_levels(conn, 0, n)
        stages["interior nodes"] = lambda: subtree_levels(hashes)
        raw = best_of(20, lambda: [sha256(r).digest() for r in records])
        print(f"  per record, one page of {n} (raw hash = {raw / n * 1e6:.2f} us):")
        for name, fn in stages.items():
            t = best_of(20, fn)
            print(f"    {name:30s} {t / n * 1e6:6.2f} us  = {t / raw:4.1f} x raw hash")


# 2. proofs ---------------------------------------------------------------------------------
def proof_benchmark(kind: str, sizes: list[int], samples: int, workdir: Path) -> None:
    print(f"\n[{kind}] proofs (ms: median / p95; {samples} samples each)")
    print(f"  {'leaves':>9} {'incl. gen':>15} {'incl. verify':>15} {'hashes':>6} "
          f"{'cons. gen':>15} {'cons. verify':>15} {'hashes':>6}  built in")
    rng = random.Random(6962)
    for n in sizes:
        with fresh_store(kind, workdir) as store:
            began = time.perf_counter()
            checkpoints = []
            for k in range(1, 9):
                grow_events(store, n * k // 8)
                checkpoints.append(log.make_checkpoint(store))
            built = time.perf_counter() - began
            vkey = log.public_key(store)
            with store.engine.connect() as conn:
                top = store.raw(conn, f"SELECT MAX(position) FROM "
                                      f"{store.table_sql('merkle_leaves')}")[0][0]
            gen, ver, length = [], [], 0
            for _ in range(samples):
                position = rng.randint(1, top)
                t0 = time.perf_counter()
                bundle = log.prove_inclusion(store, position=position)
                t1 = time.perf_counter()
                proofs.verify_inclusion_bundle(bundle, vkey)
                t2 = time.perf_counter()
                gen.append(t1 - t0)
                ver.append(t2 - t1)
                length = max(length, len(bundle["proof"]))
            cgen, cver, clength = [], [], 0
            for _ in range(samples):
                old = rng.choice(checkpoints[:-1])
                t0 = time.perf_counter()
                bundle = log.prove_consistency(store, old.id)
                t1 = time.perf_counter()
                proofs.verify_consistency_bundle(bundle, vkey)
                t2 = time.perf_counter()
                cgen.append(t1 - t0)
                cver.append(t2 - t1)
                clength = max(clength, len(bundle["proof"]))
            print(f"  {n:>9,} {_ms(gen):>15} {_ms(ver):>15} {length:>6} "
                  f"{_ms(cgen):>15} {_ms(cver):>15} {clength:>6}  {built:.0f} s")


# 3. signatures on the demo -------------------------------------------------------------------
def signature_benchmark(kind: str, size: str, workdir: Path, runs: int) -> None:
    from demo.build import build_demo

    with fresh_store(kind, workdir, seeded=False) as store:
        app = build_app(Settings(database_url=store.config.database_url,
                                 id_pepper_file=workdir / "id-pepper"))
        summary = build_demo(app, size=size)
        app.close()
        n = summary.events_written
        began = time.perf_counter()
        with _no_signature_check():
            tree_store.catch_up(store)
        plain = time.perf_counter() - began
        # the same from zero, every signature checked before its record becomes a leaf
        checked = best_of(1, lambda: tree_store.rebuild(store))
        log.make_checkpoint(store)
        hashes = min(verify_log(store).seconds for _ in range(runs))
        with store.engine.connect() as conn:
            snaps = verify_snapshots(store, conn)
        cpus = os.cpu_count() or 1
        counts = [1, cpus] if cpus > 1 else [1]
        took = {w: float("inf") for w in counts}
        for _ in range(runs):
            for workers in counts:
                report = verify_signatures(store, workers=workers)
                assert report.first is None, report.first
                took[workers] = min(took[workers], report.seconds)
        print(f"\n[{kind}] signatures on the {size} demo: {n} events, {report.signed_events} "
              f"signed steps, {report.signatures} signatures, {snaps.snapshots} snapshots "
              f"(best of {runs})")
        print(f"  tree catch-up, no signature check   {n / plain:12,.0f} events/s")
        print(f"  tree catch-up, signatures checked   {n / checked:12,.0f} events/s"
              f"   ({checked - plain:.1f} s more)")
        print(f"  verify_log (hashes, keys, snapshots){n / hashes:12,.0f} events/s"
              f"   {hashes:.2f} s, of which snapshots by replay {snaps.seconds:.2f} s "
              f"({snaps.events_replayed} events replayed)")
        print(f"  raw Ed25519 verify, one core        {_raw_ed25519():12,.0f} signatures/s")
        for workers in counts:
            label = "1 process" if workers == 1 else f"{workers} worker processes"
            print(f"  verify --signatures, {label:14s}{n / took[workers]:12,.0f} events/s"
                  f"   {report.signatures / took[workers]:8,.0f} signatures/s   "
                  f"{took[workers]:.2f} s = {took[workers] / hashes:.0f} x hash-only")


def _raw_ed25519(n: int = 2000) -> float:
    """Ed25519 verifications per second of a 600-byte message: the ceiling per core."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    private = Ed25519PrivateKey.generate()
    public, message = private.public_key().public_bytes_raw(), b"x" * 600
    signature = private.sign(message)
    took = best_of(3, lambda: [Ed25519PublicKey.from_public_bytes(public).verify(
        signature, message) for _ in range(n)])
    return n / took


@contextmanager
def _no_signature_check() -> Iterator[None]:
    saved = tree_store.check_new_rows
    tree_store.check_new_rows = lambda *a: (None, [])  # type: ignore[assignment]
    try:
        yield
    finally:
        tree_store.check_new_rows = saved  # type: ignore[assignment]


def _ms(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered) * 1e3:.2f} / {p95 * 1e3:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=3, help="full verifications per worker "
                        "count (the best counts)")
    parser.add_argument("--demo", default="small", help="demo size for the signatures part")
    parser.add_argument("--parts", default="full,proofs,signatures")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    stores = [s for s in args.stores.split(",") if s == "sqlite" or postgres_url()]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"zhuisu verification benchmark: {os.cpu_count()} CPUs, stores {stores}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in stores if "full" in parts else []:
            full_verification(kind, args.events, Path(tmp), args.runs)
        for kind in stores if "proofs" in parts else []:
            proof_benchmark(kind, sizes, args.samples, Path(tmp))
        for kind in stores if "signatures" in parts else []:
            signature_benchmark(kind, args.demo, Path(tmp), args.runs)


if __name__ == "__main__":
    main()
