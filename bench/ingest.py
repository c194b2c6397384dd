"""Ingest benchmark: the full signed command path against two ceilings measured in the same run.

For each store (SQLite file; PostgreSQL when ZHUISU_BENCH_POSTGRES_URL or
ZHUISU_TEST_POSTGRES_URL is set) it bulk-loads N households through ``Zhuisu.execute``
(identification procedure, helper assignment and one signed payment each; every signature
verified, every position and key checked) and prints events/s, then measures on the same
machine:

(a) raw insert ceiling: the same number of rows of the same sizes inserted by sqlite3
    ``executemany`` in one transaction / PostgreSQL ``COPY``;
(b) verification ceiling: verifying the same signatures alone with the same library, one core;
and the rate of storing the already-verified events in bulk through the event store's
recorder.  Ratios: full path / (b) (target ≥ 1/2) and bulk store / (a) (target ≥ 1/3).

    python bench/ingest.py [--households 2000] [--workers 2] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from store.settings import Settings, utc_now  # noqa: E402
from domain.application import Zhuisu  # noqa: E402
from domain.household import INCOME_LINES_FEN, Household  # noqa: E402
from domain.identity import check_digit  # noqa: E402
from domain.official import Official  # noqa: E402
from domain.signing import (  # noqa: E402
    SigningKey,
    b64,
    canonical_json,
    sign_command,
    step_message,
    verify_signature,
)

D = dt.date
VILLAGES = 10
BATCH = 900  # commands per transaction
STAFF = {
    "village": ["village_accountant", "village_party_secretary", "village_director"],
    "township": ["township_poverty_officer", "township_head", "township_party_secretary",
                 "township_finance_accountant"],
    "county": ["county_poverty_office_staff", "county_poverty_office_director",
               "deputy_county_magistrate"],
}


def id_number(n: int) -> str:
    s = f"52262519{n % 10**9:09d}"
    return s + check_digit(s)


class World:
    """Regions, officials with keys, and the township account, made through the app's verbs."""

    def __init__(self, app: Zhuisu):
        self.keys: dict[str, SigningKey] = {}
        app.create_region("52", "贵州省", "province", None)
        app.create_region("5226", "黔东南州", "city", "52")
        app.create_region("522625", "镇远县", "county", "5226")
        app.create_region("522625100", "羊场镇", "township", "522625")
        self.villages = [f"522625100{v:03d}" for v in range(1, VILLAGES + 1)]
        for v in self.villages:
            app.create_region(v, f"村{v[-3:]}", "village", "522625100")
        n = 0
        for level, region_codes in (("county", ["522625"]), ("township", ["522625100"]),
                                    ("village", self.villages)):
            for region in region_codes:
                unit = f"U{region}"
                app.establish_unit(unit, f"单位{region}", "government", region)
                for kind in STAFF[level]:
                    code = f"{kind}@{region}"
                    n += 1
                    app.register_official(code, code, unit, id_number(n))
                    app.take_position(code, kind, region, D(2020, 1, 1))
                    key = SigningKey.from_seed(code.encode())
                    app.register_key(code, b64(key.public_bytes), D(2020, 1, 1))
                    self.keys[code] = key
        self.account = app.open_account("522625100", "central")

    def signer(self, kind: str, region: str, role: str) -> tuple[str, SigningKey, str]:
        code = f"{kind}@{region}"
        return str(Official.create_id(code)), self.keys[code], role


def household_commands(world: World, app: Zhuisu, i: int) -> list[dict]:
    """The signed commands one household goes through (what officials' clients send)."""
    v = world.villages[i % VILLAGES]
    t, c = "522625100", "522625"
    code = f"{v}-{i:06d}"
    hid = Household.create_id(code)
    vp, vs, vd = ("village_accountant", v), ("village_party_secretary", v), ("village_director", v)
    tp, th, ts = ("township_poverty_officer", t), ("township_head", t), ("township_party_secretary", t)
    cp, cd, cm = (("county_poverty_office_staff", c), ("county_poverty_office_director", c),
                  ("deputy_county_magistrate", c))

    def cmd(step: str, content: dict, *signers: tuple[tuple[str, str], str]) -> dict:
        return sign_command(step, hid, content, [world.signer(k, r, role) for (k, r), role in signers])

    members = [{"name": f"户主{i}", "id_number_hash": app.hash_id(id_number(10**6 + i)),
                "relation": "head"}]
    cmds = [
        cmd("Household.Applied", {
            "household_code": code, "village_code": v, "effective_date": "2025-01-06",
            "head_name": f"户主{i}", "members": members, "main_cause": "illness",
            "secondary_causes": ["lack_of_skills"], "income_per_capita_fen": 250_000,
            "bank_account_hash": hashlib.sha256(f"bank{i}".encode()).hexdigest()},
            (vp, "preparer")),
        cmd("Household.AppraisedByVillage", {"effective_date": "2025-01-10", "votes_for": 30,
            "votes_against": 2, "votes_total": 35}, (vp, "preparer"), (vs, "approver")),
        cmd("Household.VerifiedByVillage", {"effective_date": "2025-01-12", "findings": "入户核实属实"},
            (vd, "reviewer"), (vs, "approver")),
        cmd("Household.NoticePosted", {"round": "first", "effective_date": "2025-01-13", "days": 7},
            (vp, "preparer")),
        cmd("Household.ReviewedByTownship", {"effective_date": "2025-01-21", "opinion": "同意"},
            (tp, "preparer"), (th, "approver")),
        cmd("Household.NoticePosted", {"round": "second", "effective_date": "2025-01-22", "days": 7},
            (vp, "preparer")),
        cmd("Household.ApprovedByCounty", {"effective_date": "2025-02-01",
            "announcement_no": "镇府〔2025〕3号"}, (cp, "preparer"), (cd, "reviewer"), (cm, "approver")),
        cmd("Household.HelperAssigned", {"official_id": world.signer(*vd, "x")[0],
            "effective_date": "2025-02-03"}, (ts, "approver")),
    ]
    fa, fr, fp = (("township_finance_accountant", t), ("township_head", t),
                  ("township_party_secretary", t))
    pay = {"movement_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-pay-{i}")), "amount_fen": 150_000,
           "effective_date": "2025-03-01", "purpose": "hh_industry", "document_no": f"羊财〔2025〕{i}号",
           "payee_kind": "household", "payee_id": str(hid), "project_id": None}
    cmds.append(sign_command("FundAccount.Disbursed", world.account, pay,
                             [world.signer(*fa, "preparer"), world.signer(*fr, "reviewer"),
                              world.signer(*fp, "approver")]))
    return cmds


def fund(world: World, app: Zhuisu, amount: int) -> None:
    t = "522625100"
    content = {"movement_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "bench-fund")), "amount_fen": amount,
               "effective_date": "2025-01-02", "purpose": "special_fund",
               "document_no": "黔财农〔2025〕1号", "source": "中央财政专项扶贫资金"}
    app.execute(sign_command("FundAccount.Received", world.account, content, [
        world.signer("township_finance_accountant", t, "preparer"),
        world.signer("township_head", t, "reviewer"),
        world.signer("township_party_secretary", t, "approver")]))


def verification_triples(app: Zhuisu, commands: list[dict]) -> list[tuple[bytes, str, bytes]]:
    """(public key, signature, message) for every signature, as the command path checks them."""
    keys: dict[str, bytes] = {}
    out = []
    for command in commands:
        for s in command["signatures"]:
            if s["key_id"] not in keys:
                keys[s["key_id"]] = app.load(Official, s["official_id"]).keys[s["key_id"]].public_key
            msg = step_message(command["step"], command["subject"], command["content"],
                               s["official_id"], s["role"], s["key_id"])
            out.append((keys[s["key_id"]], s["signature"], msg))
    return out


def _verify_commands(commands: list[dict], public_keys: dict[str, bytes]) -> list[bytes]:
    """Worker: build each signature's message from the command and verify it."""
    ok = []
    for command in commands:
        content = canonical_json(command["content"])
        for s in command["signatures"]:
            pk = public_keys.get(s["key_id"])
            if pk is None:
                continue
            msg = step_message(command["step"], command["subject"], content, s["official_id"],
                               s["role"], s["key_id"])
            if verify_signature(pk, s["signature"], msg):
                ok.append(hashlib.sha256(pk + s["signature"].encode() + msg).digest())
    return ok


class PreVerified:
    """Signatures verified ahead in worker processes; anything not found is verified inline."""

    def __init__(self) -> None:
        self.ok: set[bytes] = set()

    def __call__(self, pk: bytes, sig: str, msg: bytes) -> bool:
        if hashlib.sha256(pk + sig.encode() + msg).digest() in self.ok:
            return True
        return verify_signature(pk, sig, msg)


def make_app(url: str, tmp: Path, verifier=verify_signature) -> Zhuisu:
    settings = Settings(database_url=url, id_pepper_file=tmp / "pepper")
    return Zhuisu(settings.eventsourcing_env(), id_pepper=settings.id_pepper(), clock=utc_now,
                  verifier=verifier)


def run_store(kind: str, url: str, tmp: Path, households: int, workers: int) -> dict[str, float]:
    pre = PreVerified()
    app = make_app(url, tmp, pre)
    world = World(app)
    fund(world, app, households * 150_000)
    commands = [c for i in range(households) for c in household_commands(world, app, i)]
    triples = verification_triples(app, commands)
    start_pos = app.recorder.max_notification_id() or 0

    public_keys = {s["key_id"]: pk for s, (pk, _, _) in
                   zip((s for c in commands for s in c["signatures"]), triples, strict=True)}
    batches = [commands[i:i + BATCH] for i in range(0, len(commands), BATCH)]

    t0 = time.perf_counter()
    # Verification runs ahead in worker processes on the other cores while this process
    # executes the commands; a signature not yet verified ahead is verified inline.
    with ProcessPoolExecutor(max(1, workers - 1)) as pool:
        for batch in batches:
            pool.submit(_verify_commands, batch, public_keys).add_done_callback(
                lambda f: pre.ok.update(f.result()))
        for batch in batches:
            with app.batch():
                for command in batch:
                    app.execute(command)
    full_s = time.perf_counter() - t0
    notifications = app.recorder.select_notifications(start_pos + 1, limit=10**9)
    events = len(notifications)

    t0 = time.perf_counter()
    for pk, sig, msg in triples:
        assert verify_signature(pk, sig, msg)
    verify_s = time.perf_counter() - t0

    rows = [(str(n.originator_id), n.originator_version, n.topic, n.state) for n in notifications]
    raw_s = raw_insert(kind, url, tmp, rows)
    bulk_s = bulk_store(kind, url, tmp, notifications)
    app.close()
    return {"events": events, "signatures": len(triples), "full": events / full_s,
            "verify_ceiling": events / verify_s, "raw_ceiling": events / raw_s,
            "bulk_store": events / bulk_s}


def raw_insert(kind: str, url: str, tmp: Path, rows: list[tuple]) -> float:
    ddl = "CREATE TABLE raw_events (originator_id TEXT, originator_version INTEGER, topic TEXT, state {})"
    if kind == "sqlite":
        con = sqlite3.connect(tmp / "raw.db", isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(ddl.format("BLOB"))
        t0 = time.perf_counter()
        con.execute("BEGIN")
        con.executemany("INSERT INTO raw_events VALUES (?,?,?,?)", rows)
        con.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        con.close()
        return elapsed
    import psycopg

    with psycopg.connect(url.split("?")[0]) as con:
        con.execute("DROP TABLE IF EXISTS raw_events")
        con.execute(ddl.format("BYTEA"))
        con.commit()
        t0 = time.perf_counter()
        with con.cursor().copy("COPY raw_events FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        con.commit()
        elapsed = time.perf_counter() - t0
        con.execute("DROP TABLE raw_events")
        con.commit()
        return elapsed


def bulk_store(kind: str, url: str, tmp: Path, notifications: list) -> float:
    """Store the already-verified events again, in bulk, in a fresh store (store.bulk)."""
    from eventsourcing.persistence import StoredEvent

    from store.bulk import append_verified

    fresh = url if kind == "postgres" else f"sqlite:///{tmp}/bulk.db"
    if kind == "postgres":
        fresh = new_pg_schema(url, "bench_bulk")
    app = make_app(fresh, tmp)
    stored = [StoredEvent(n.originator_id, n.originator_version, n.topic, n.state) for n in notifications]
    t0 = time.perf_counter()
    for i in range(0, len(stored), 5000):
        append_verified(app, stored[i:i + 5000])
    elapsed = time.perf_counter() - t0
    app.close()
    return elapsed


CREATED_SCHEMAS: list[str] = []


def new_pg_schema(url: str, prefix: str) -> str:
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url.split("?")[0], autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    CREATED_SCHEMAS.append(schema)
    return f"{url.split('?')[0]}?schema={schema}"


def drop_pg_schemas(url: str) -> None:
    """Drop the schemas this run made (and only those)."""
    import psycopg

    with psycopg.connect(url.split("?")[0], autocommit=True) as con:
        while CREATED_SCHEMAS:
            con.execute(f"DROP SCHEMA IF EXISTS {CREATED_SCHEMAS.pop()} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="cores to use: the command path plus workers-1 processes "
                             "verifying signatures ahead of it")
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    assert INCOME_LINES_FEN  # the domain's tables load
    pg_url = os.environ.get("ZHUISU_BENCH_POSTGRES_URL") or os.environ.get("ZHUISU_TEST_POSTGRES_URL")
    print(f"ingest benchmark: {args.households} households, {args.workers} verification workers, "
          f"{os.cpu_count()} cores")
    for kind in args.stores.split(","):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            if kind == "sqlite":
                url = f"sqlite:///{tmp}/zhuisu.db"
            elif pg_url:
                url = new_pg_schema(pg_url, "bench")
            else:
                print("postgres: skipped (set ZHUISU_BENCH_POSTGRES_URL)")
                continue
            try:
                r = run_store(kind, url, tmp, args.households, args.workers)
            finally:
                if kind == "postgres":
                    drop_pg_schemas(pg_url)
        print(f"\n[{kind}] {r['events']:,} events, {r['signatures']:,} signatures")
        print(f"  full signed command path      {r['full']:>10,.0f} events/s")
        print(f"  (b) verify signatures alone   {r['verify_ceiling']:>10,.0f} events/s (1 core)")
        print(f"  bulk store of verified events {r['bulk_store']:>10,.0f} events/s")
        print(f"  (a) raw insert ceiling        {r['raw_ceiling']:>10,.0f} events/s")
        print(f"  ratio full / (b)  = {r['full'] / r['verify_ceiling']:.2f}  (target ≥ 0.50)")
        print(f"  ratio bulk / (a)  = {r['bulk_store'] / r['raw_ceiling']:.2f}  (target ≥ 0.33)")


if __name__ == "__main__":
    main()
