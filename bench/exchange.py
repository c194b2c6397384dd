"""台账 exchange benchmark: a 分户清单 from file to stored, verified and projected events.

For each store (SQLite file; PostgreSQL when ZHUISU_BENCH_POSTGRES_URL or
ZHUISU_TEST_POSTGRES_URL is set), in one run:

1. households: a 花名册 of ``--rows`` households imported (``Roster.Imported``, one
   manifest signed once by the county, every household a row);
2. **the 分户清单**: a GBK CSV of ``--rows`` payments (the shape the bank gets: 户编号, 姓名,
   证件号码, 银行卡号, 发放金额) read and checked (``exchange.formats.parse``: IDs checked
   and hashed), made a batch (``FundAccount.BatchOrdered``: manifest, Merkle root), signed
   once by three officials, executed (every row a ``Disbursed`` checked against its
   household), then taken into the Merkle tree (``audit.tree_store.catch_up``: the batch's
   three signatures verified once, every row folded into the signed root) and projected
   (every read model caught up).  Figures: file → stored, → verified, → projected, in
   events/s, against **the bulk store rate measured in the same run** (the same events
   stored again through ``store.bulk.append_verified`` in a fresh store); target ≥ 1/3.
   The signature count proves the batch's signatures were verified once, not per row;
3. **the county's 发放清册 export** (``exchange.ledgers`` 'payments', .xlsx) over at least
   ``--export-rows`` payments (further batches are paid until there are that many);
   target < 30 s;
4. peak memory (``ru_maxrss``) after each phase; target < 1 GB each.

    python bench/exchange.py [--rows 100000] [--export-rows 250000] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from ingest import (  # noqa: E402
    World,
    drop_pg_schemas,
    make_app,
    new_pg_schema,
)

from domain import batch  # noqa: E402
from domain.household import Household  # noqa: E402
from domain.roster import Roster  # noqa: E402
from domain.signing import sign_command  # noqa: E402
from exchange.formats import FORMATS, parse  # noqa: E402

COUNTY, TOWNSHIP = "522625", "522625100"
PAY_DAY = dt.datetime.now(dt.timezone.utc).date()  # paid today: nothing backdated


def person_id(i: int) -> str:
    """A valid 18-digit ID (GB 11643): area 522625, a real birth date, sequence, check."""
    from domain.identity import check_digit

    born = dt.date(1950, 1, 1) + dt.timedelta(days=i // 1000)
    first17 = f"522625{born:%Y%m%d}{i % 1000:03d}"
    return first17 + check_digit(first17)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def card(i: int) -> str:
    body = f"6217{i:015d}"
    return body


def roster_rows(app, world: World, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        v = world.villages[i % len(world.villages)]
        rows.append({
            "household_code": f"{v}-{i:07d}", "village_code": v, "effective_date": "2016-03-01",
            "head_name": f"户主{i}",
            "members": [{"name": f"户主{i}", "relation": "head",
                         "id_number_hash": app.hash_id(person_id(i))}],
            "main_cause": "illness", "secondary_causes": [], "income_per_capita_fen": 250_000,
            "bank_account_hash": None, "exited_on": None, "source_rows": [i + 3]})
    return rows


def import_roster(app, world: World, rows: list[dict]) -> None:
    import_id = str(uuid.uuid4())
    checked = [batch.roster_row(r, i) for i, r in enumerate(rows)]
    content = {"import_id": import_id, "county_code": COUNTY,
               "effective_date": PAY_DAY.isoformat(),
               "row_count": len(rows),
               "rows_root": batch.rows_root(batch.ROSTER_ROW, import_id, checked),
               "source_file": "花名册.xlsx", "source_sha256": "00" * 32}
    signers = [world.signer("county_poverty_office_staff", COUNTY, "preparer"),
               world.signer("county_poverty_office_director", COUNTY, "reviewer"),
               world.signer("deputy_county_magistrate", COUNTY, "approver")]
    command = sign_command("Roster.Imported", Roster.create_id(import_id), content, signers)
    app.execute({**command, "rows": rows})


def payment_list_csv(world: World, n: int, first: int = 0, amount_fen: int = 50_000) -> bytes:
    """A 分户清单 as county offices send it: GBK, a title row, 填报单位, then the header."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["羊场镇2025年产业奖补资金发放清册（分户清单）"])
    w.writerow(["填报单位：羊场镇财政所", "", "", "填报日期：2025年3月1日"])
    w.writerow(["序号", "户编号", "姓名", "证件号码", "银行卡号", "发放金额"])
    for k in range(n):
        i = first + k
        v = world.villages[i % len(world.villages)]
        w.writerow([k + 1, f"{v}-{i:07d}", f"户主{i}", person_id(i), card(i),
                    f"{amount_fen // 100}.{amount_fen % 100:02d}"])
    return out.getvalue().encode("gb18030")


def batch_command(app, world: World, data: bytes, name: str) -> dict:
    """Read the file, build the manifest and rows, have three officials sign it once."""
    parsed = parse(FORMATS["payment_list"], data, name, pepper=app.id_pepper)
    if parsed.errors:
        raise SystemExit(f"{name}: {len(parsed.errors)} rows refused, first {parsed.errors[0]}")
    batch_id = str(uuid.uuid4())
    rows = [{"movement_id": str(uuid.uuid4()),
             "payee_id": str(Household.create_id(r["household_code"])),
             "amount_fen": r["amount_fen"], "bank_account_hash": r["bank_account_hash"],
             "holder_id_hash": r["id_hash"], "source_row": r["_row"]} for r in parsed.rows]
    checked = [batch.payment_row(r, i, "household") for i, r in enumerate(rows)]
    content = {"batch_id": batch_id, "effective_date": PAY_DAY.isoformat(),
               "purpose": "hh_industry", "document_no": f"羊财支〔2025〕{name}",
               "payee_kind": "household", "row_count": len(rows),
               "total_fen": sum(r["amount_fen"] for r in rows),
               "rows_root": batch.rows_root(batch.PAYMENT_ROW, batch_id, checked),
               "source_file": name, "source_sha256": parsed.table.sha256}
    signers = [world.signer("township_finance_accountant", TOWNSHIP, "preparer"),
               world.signer("township_head", TOWNSHIP, "reviewer"),
               world.signer("township_party_secretary", TOWNSHIP, "approver")]
    return {**sign_command("FundAccount.BatchOrdered", world.account, content, signers),
            "rows": rows}


def fund(app, world: World, amount: int) -> None:
    content = {"movement_id": str(uuid.uuid4()), "amount_fen": amount,
               "effective_date": PAY_DAY.isoformat(), "purpose": "special_fund",
               "document_no": "黔财农〔2025〕1号", "source": "中央财政专项扶贫资金"}
    app.execute(sign_command("FundAccount.Received", world.account, content, [
        world.signer("township_finance_accountant", TOWNSHIP, "preparer"),
        world.signer("township_head", TOWNSHIP, "reviewer"),
        world.signer("township_party_secretary", TOWNSHIP, "approver")]))


def bulk_rate(kind: str, url: str, tmp: Path, app, after: int) -> tuple[int, float]:
    """Store the batch's events again, already verified, in a fresh store: events/s."""
    from eventsourcing.persistence import StoredEvent

    from store.bulk import append_verified

    notes = app.recorder.select_notifications(after + 1, limit=10**9)
    stored = [StoredEvent(n.originator_id, n.originator_version, n.topic, n.state)
              for n in notes]
    fresh = new_pg_schema(url, "bench_xbulk") if kind == "postgres" else \
        f"sqlite:///{tmp}/bulk.db"
    other = make_app(fresh, tmp)
    t0 = time.perf_counter()
    for i in range(0, len(stored), 5000):
        append_verified(other, stored[i:i + 5000])
    elapsed = time.perf_counter() - t0
    other.close()
    return len(stored), len(stored) / elapsed


def run_store(kind: str, url: str, tmp: Path, args: argparse.Namespace) -> None:
    from audit import tree_store
    from audit.signatures import verify_signatures
    from projections import runner

    print(f"\n== {kind}: {args.rows:,}-row 分户清单, {args.export_rows:,}-row 发放清册 export ==")
    app = make_app(url, tmp)
    app.database_url = url  # the audit store, the read models and the exports find it here
    os.environ.setdefault("ZHUISU_LOG_KEY_FILE", str(tmp / "log-key"))
    world = World(app)
    batches_needed = -(-args.export_rows // args.rows)
    households = roster_rows(app, world, args.rows)
    t0 = time.perf_counter()
    import_roster(app, world, households)
    roster_s = time.perf_counter() - t0
    del households
    fund(app, world, args.rows * 50_000 * (batches_needed + 1))
    tree_store.catch_up(app)
    runner.catch_up(app)
    print(f"花名册 import of {args.rows:,} households: {roster_s:.1f} s "
          f"({args.rows / roster_s:,.0f} households/s); peak {peak_mb():,.0f} MB")

    data = payment_list_csv(world, args.rows)
    before = app.recorder.max_notification_id() or 0
    sigs_before = verify_signatures(app).signatures
    t0 = time.perf_counter()
    command = batch_command(app, world, data, "分户清单1.csv")
    t_read = time.perf_counter()
    app.execute(command)
    t_stored = time.perf_counter()
    tree_store.catch_up(app)
    t_verified = time.perf_counter()
    runner.catch_up(app)
    t_projected = time.perf_counter()
    after = app.recorder.max_notification_id() or 0
    events = after - before
    del command
    sigs = verify_signatures(app).signatures - sigs_before
    n_bulk, bulk = bulk_rate(kind, url, tmp, app, before)
    print(f"分户清单 {len(data) / 1e6:.1f} MB GBK → {events:,} events "
          f"(1 manifest + {events - 1:,} payments)")
    print(f"  read + checked + signed:  {t_read - t0:6.1f} s")
    print(f"  stored (domain checks):   {t_stored - t_read:6.1f} s")
    print(f"  verified (Merkle tree):   {t_verified - t_stored:6.1f} s")
    print(f"  projected (read models):  {t_projected - t_verified:6.1f} s")
    total = t_projected - t0
    print(f"  file → stored, verified, projected: {total:.1f} s = {events / total:,.0f} "
          f"events/s; to stored only {events / (t_stored - t0):,.0f} events/s")
    print(f"  bulk store rate, same events, same run: {bulk:,.0f} events/s ({n_bulk:,})")
    print(f"  ratio end-to-end / bulk = {events / total / bulk:.2f} (target ≥ 0.33); "
          f"stored / bulk = {events / (t_stored - t0) / bulk:.2f}")
    print(f"  signatures verified for the batch: {sigs} (3 = once, not per row)")
    print(f"  peak memory so far: {peak_mb():,.0f} MB (target < 1,024)")

    for k in range(1, batches_needed):
        more = batch_command(app, world, payment_list_csv(world, args.rows), f"分户清单{k + 1}.csv")
        app.execute(more)
        del more
    tree_store.catch_up(app)
    runner.catch_up(app)
    peak_before_export = peak_mb()
    export_s, rows = export_payments(app)
    print(f"发放清册 export (.xlsx) of {rows:,} payment rows: {export_s:.1f} s (target < 30 s); "
          f"peak {peak_mb():,.0f} MB (before it {peak_before_export:,.0f} MB)")
    app.close()


def export_payments(app) -> tuple[float, int]:
    from exchange.ledgers import build
    from exchange.layout import to_xlsx
    from exchange.sources import Context, Params

    t0 = time.perf_counter()
    from store.engines import engine_for

    context = Context(engine_for(app.database_url), app)
    ledger = build("payments", context, Params(region=COUNTY))
    body = to_xlsx(ledger)
    elapsed = time.perf_counter() - t0
    rows = sum(len(s.rows) for s in ledger.sheets)
    assert body[:2] == b"PK"
    return elapsed, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--export-rows", type=int, default=250_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    pg = os.environ.get("ZHUISU_BENCH_POSTGRES_URL") or os.environ.get("ZHUISU_TEST_POSTGRES_URL")
    for kind in args.stores.split(","):
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            if kind == "sqlite":
                run_store(kind, f"sqlite:///{tmp}/bench.db", tmp, args)
            elif pg:
                try:
                    run_store(kind, new_pg_schema(pg, "bench_exchange"), tmp, args)
                finally:
                    drop_pg_schemas(pg)
            else:
                print("postgres: skipped (set ZHUISU_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
