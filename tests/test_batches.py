"""Payment batches (支付令 + 分户清单) and bank returns (回盘): a manifest signed once, its
rows committed by Merkle root; every row a payment of its own, all or none; the log's
checks refuse a row changed, added or dropped after signing."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from audit.signatures import verify_signatures
from domain import batch
from domain.errors import (
    HouseholdNotRegistered,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
)
from domain.fund_account import FundAccount
from domain.merkle import ProofError
from factories import (
    TOWNSHIP,
    a_funded_account,
    a_registered_household,
    a_removed_household,
    event_names,
    run,
    sign,
)

D = dt.date
DAY = D(2025, 3, 1)


def payment_rows(households, amounts):
    return [{"movement_id": str(uuid.uuid4()), "payee_id": str(h), "amount_fen": a,
             "source_row": i + 4} for i, (h, a) in enumerate(zip(households, amounts))]


def manifest(rows, *, batch_id=None, day=DAY, purpose="hh_industry", total=None, root=None):
    batch_id = batch_id or str(uuid.uuid4())
    checked = [batch.payment_row(r, i, "household") for i, r in enumerate(rows)]
    return {"batch_id": batch_id, "effective_date": day.isoformat(), "purpose": purpose,
            "document_no": "镇财支〔2025〕3号", "payee_kind": "household",
            "row_count": len(rows), "total_fen": sum(r["amount_fen"] for r in rows)
            if total is None else total,
            "rows_root": root or batch.rows_root(batch.PAYMENT_ROW, batch_id, checked),
            "source_file": "分户清单.xlsx", "source_sha256": "ab" * 32}


def order(world, account, rows, **kw):
    command = sign(world, "FundAccount.BatchOrdered", account, manifest(rows, **kw))
    command["rows"] = rows
    return command


@pytest.fixture
def paying(world):
    account = a_funded_account(world, TOWNSHIP, 1_000_000)
    households = [a_registered_household(world, f"B{i}") for i in range(3)]
    return world, account, households


def test_a_batch_pays_every_row_as_its_own_payment_signed_once(paying):
    world, account, households = paying
    rows = payment_rows(households, [10_000, 20_000, 30_000])
    command = order(world, account, rows)
    assert len(command["signatures"]) == 3
    signatures_before = verify_signatures(world.app).signatures
    result = world.app.execute(command)
    assert result["recorded"] is True
    names = event_names(world.app, account)
    assert names[-4:] == ["FundAccount.BatchOrdered"] + ["FundAccount.Disbursed"] * 3
    acc = world.app.load(FundAccount, account)
    assert acc.balance == 1_000_000 - 60_000
    events = world.app.stored_events(account)[-3:]
    for i, (e, r) in enumerate(zip(events, rows)):
        assert e.batch["batch_id"] == command["content"]["batch_id"] and e.batch["row"] == i
        assert e.movement_id == r["movement_id"] and e.amount_fen == r["amount_fen"]
        # the chain shows the batch's signers: the manifest's signatures, as stored
        assert e.signatures == world.app.stored_events(account)[-4].signatures
        assert [s["signature"] for s in e.signatures] == [
            s["signature"] for s in command["signatures"]]
        assert e.document_no == "镇财支〔2025〕3号" and e.effective_date == DAY
    # an exact retry stores nothing new
    assert world.app.execute(command)["recorded"] is False
    assert len(event_names(world.app, account)) == len(names)
    report = verify_signatures(world.app)
    assert report.first is None, report.first
    assert report.signatures == signatures_before + 3  # the batch's three, verified once


def test_rows_not_the_signed_ones_are_refused_and_nothing_is_stored(paying):
    world, account, households = paying
    rows = payment_rows(households, [10_000, 20_000, 30_000])
    command = order(world, account, rows)
    before = event_names(world.app, account)
    changed = [dict(r) for r in rows]
    changed[1]["amount_fen"] = 21_000
    with pytest.raises(InvalidInput) as err:
        world.app.execute({**command, "rows": changed})
    assert err.value.field == "content.total_fen"
    changed[0]["amount_fen"] = 9_000  # same total, different rows
    with pytest.raises(InvalidInput) as err:
        world.app.execute({**command, "rows": changed})
    assert err.value.field == "content.rows_root"
    with pytest.raises(InvalidInput) as err:
        world.app.execute({**command, "rows": rows[:2]})
    assert err.value.field == "content.row_count"
    assert event_names(world.app, account) == before


def test_a_row_to_a_removed_household_refuses_the_whole_batch(world):
    account = a_funded_account(world, TOWNSHIP, 1_000_000)
    good = a_registered_household(world, "G1")
    removed = a_removed_household(world, "R1", removed_on=D(2025, 2, 1))
    rows = payment_rows([good, removed], [10_000, 10_000])
    before = event_names(world.app, account)
    with pytest.raises(HouseholdNotRegistered) as err:
        world.app.execute(order(world, account, rows))
    assert err.value.field == "rows[1].payee_id"
    assert event_names(world.app, account) == before
    assert world.app.load(FundAccount, account).balance == 1_000_000


def test_a_batch_beyond_the_balance_or_reusing_a_movement_is_refused(paying):
    world, account, households = paying
    with pytest.raises(InsufficientFunds):
        world.app.execute(order(world, account, payment_rows(households, [600_000, 500_000])))
    rows = payment_rows(households[:1], [1_000])
    world.app.execute(order(world, account, rows))
    again = payment_rows(households[1:2], [1_000])
    again[0]["movement_id"] = rows[0]["movement_id"]
    with pytest.raises(IdempotencyConflict) as err:
        world.app.execute(order(world, account, again))
    assert err.value.field == "rows[0].movement_id"
    bad = payment_rows(households[:1], [1_000])
    bad[0]["payee_id"] = str(uuid.uuid4())
    with pytest.raises(NotFound) as err:
        world.app.execute(order(world, account, bad))
    assert err.value.field == "rows[0].payee_id"


def test_a_row_proves_its_place_in_the_signed_manifest(paying):
    world, account, households = paying
    rows = payment_rows(households, [10_000, 20_000, 30_000])
    command = order(world, account, rows)
    world.app.execute(command)
    bid, root = command["content"]["batch_id"], command["content"]["rows_root"]
    stored = world.app.stored_events(account)[-3:]
    signed = [batch.payment_row_of(vars(e)) for e in stored]
    rows_as_signed = [r for _, _, r in signed]
    for bid_, i, r in signed:
        path = batch.row_path(batch.PAYMENT_ROW, bid, rows_as_signed, i)
        batch.check_row(batch.PAYMENT_ROW, bid_, i, r, 3, path, root)
    forged = {**rows_as_signed[2], "amount_fen": 31_000}
    with pytest.raises(ProofError):
        batch.check_row(batch.PAYMENT_ROW, bid, 2, forged, 3,
                        batch.row_path(batch.PAYMENT_ROW, bid, rows_as_signed, 2), root)


def returns(batch_id, failed, credited_count, credited_fen, *, return_id=None, day=D(2025, 3, 5)):
    return_id = return_id or str(uuid.uuid4())
    checked = [batch.return_row(r, i) for i, r in enumerate(failed)]
    return {"return_id": return_id, "batch_id": batch_id, "effective_date": day.isoformat(),
            "document_no": "回盘20250305", "row_count": len(failed),
            "returned_fen": sum(r["amount_fen"] for r in failed),
            "credited_count": credited_count, "credited_fen": credited_fen,
            "rows_root": batch.rows_root(batch.RETURN_ROW, return_id, checked),
            "source_file": "回盘.csv", "source_sha256": "cd" * 32}


def test_a_bank_return_brings_failed_payments_back_and_a_reissue_is_tracked(paying):
    world, account, households = paying
    rows = payment_rows(households, [10_000, 20_000, 30_000])
    command = order(world, account, rows)
    world.app.execute(command)
    bid = command["content"]["batch_id"]
    failed = [{"of_movement_id": rows[1]["movement_id"], "amount_fen": 20_000,
               "reason": "账户已销户", "bank_serial": "B0002", "source_row": 3}]
    content = returns(bid, failed, 2, 40_000)
    wrong = sign(world, "FundAccount.ReturnsRecorded", account,
                 {**content, "credited_count": 3, "credited_fen": 60_000})
    with pytest.raises(InvalidInput):
        world.app.execute({**wrong, "rows": failed})
    signed = sign(world, "FundAccount.ReturnsRecorded", account, content)
    assert world.app.execute({**signed, "rows": failed})["recorded"] is True
    acc = world.app.load(FundAccount, account)
    assert acc.balance == 1_000_000 - 40_000
    assert event_names(world.app, account)[-2:] == ["FundAccount.ReturnsRecorded",
                                                    "FundAccount.PaymentReturned"]
    # a second return for the same batch is refused
    with pytest.raises(IdempotencyConflict):
        again = sign(world, "FundAccount.ReturnsRecorded", account, returns(bid, [], 3, 60_000))
        world.app.execute({**again, "rows": []})
    # re-issue the returned payment in a new batch; not twice
    reissue = payment_rows(households[1:2], [20_000])
    reissue[0]["reissue_of"] = rows[1]["movement_id"]
    world.app.execute(order(world, account, reissue, day=D(2025, 3, 10)))
    acc = world.app.load(FundAccount, account)
    assert acc.movements[rows[1]["movement_id"]]["reissued_by"] == reissue[0]["movement_id"]
    twice = payment_rows(households[1:2], [20_000])
    twice[0]["reissue_of"] = rows[1]["movement_id"]
    with pytest.raises(InvalidInput) as err:
        world.app.execute(order(world, account, twice, day=D(2025, 3, 11)))
    assert err.value.field == "rows[0].reissue_of"
    not_returned = payment_rows(households[:1], [10_000])
    not_returned[0]["reissue_of"] = rows[0]["movement_id"]
    with pytest.raises(InvalidInput):
        world.app.execute(order(world, account, not_returned, day=D(2025, 3, 11)))
    assert verify_signatures(world.app).first is None


def test_the_log_refuses_a_row_changed_after_signing(paying, tmp_path):
    """A row's amount edited in the events table: its signatures still match the batch's,
    but the rows no longer give the signed root; the tree does not adopt it."""
    from audit import tree_store
    from audit.store import AuditConfig, AuditStore

    world, account, households = paying
    rows = payment_rows(households, [10_000, 20_000, 30_000])
    world.app.execute(order(world, account, rows))
    store = AuditStore(AuditConfig(world.app.database_url, tmp_path / "log-key", "t/log"))
    sqlite = store.dialect == "sqlite"
    table = "stored_events" if sqlite else f'"{store.schema}"."zhuisu_events"'
    pos = "rowid" if sqlite else "notification_id"
    with store.engine.begin() as conn:
        last = conn.exec_driver_sql(f"SELECT max({pos}) FROM {table}").scalar()
        state = conn.exec_driver_sql(f"SELECT state FROM {table} WHERE {pos} = {last}").scalar()
        forged = bytes(state).replace(b'"amount_fen":30000', b'"amount_fen":30001')
        assert forged != bytes(state)
        conn.exec_driver_sql(f"UPDATE {table} SET state = {'?' if sqlite else '%s'} "
                             f"WHERE {pos} = {last}", (forged,))
    report = verify_signatures(world.app)
    assert report.first is not None and report.first.position == last
    assert "Merkle root its officials signed" in report.first.message
    state = tree_store.catch_up(store, batch=4)  # pages split the batch: primed from the store
    assert state.last_position == last - 1
    store.close()


# 花名册导入 ---------------------------------------------------------------------------
def roster_rows(world, n, *, village=None):
    from factories import VILLAGE, id_number

    rows = []
    for i in range(n):
        rows.append({
            "household_code": f"GJ{i:04d}", "village_code": village or VILLAGE,
            "effective_date": "2016-03-01", "head_name": f"户主{i}",
            "members": [{"name": f"户主{i}", "relation": "head",
                         "id_number_hash": world.app.hash_id(id_number(9000 + 2 * i))},
                        {"name": f"配偶{i}", "relation": "spouse",
                         "id_number_hash": world.app.hash_id(id_number(9001 + 2 * i))}],
            "main_cause": "illness", "secondary_causes": [], "income_per_capita_fen": 250_000,
            "bank_account_hash": None, "exited_on": "2019-12-31" if i == 0 else None,
            "source_rows": [5 + 2 * i, 6 + 2 * i]})
    return rows


def roster_command(world, rows, import_id=None):
    from domain.positions import STEP_RULES
    from domain.roster import Roster
    from factories import COUNTY

    import_id = import_id or str(uuid.uuid4())
    checked = [batch.roster_row(r, i) for i, r in enumerate(rows)]
    content = {"import_id": import_id, "county_code": COUNTY, "effective_date": "2024-06-30",
               "row_count": len(rows),
               "rows_root": batch.rows_root(batch.ROSTER_ROW, import_id, checked),
               "source_file": "花名册.xlsx", "source_sha256": "ef" * 32}
    command = sign(world, "Roster.Imported", Roster.create_id(import_id), content,
                   where=world.app.region(COUNTY).path)
    return {**command, "rows": rows}


def test_a_roster_import_puts_households_on_the_register_signed_once(world):
    from domain.household import Household, Status

    rows = roster_rows(world, 3)
    command = roster_command(world, rows)
    assert world.app.execute(command)["recorded"] is True
    h0 = world.app.load(Household, Household.create_id("GJ0000"))
    h1 = world.app.load(Household, Household.create_id("GJ0001"))
    assert h1.status_on(D(2024, 1, 1)) is Status.REGISTERED
    assert h0.status_on(D(2024, 1, 1)) is Status.EXITED
    e = world.app.stored_events(h1.id)[0]
    assert e.batch["import_id"] == command["content"]["import_id"]
    assert e.batch["source_rows"] == [7, 8]
    assert world.app.execute(command)["recorded"] is False
    assert verify_signatures(world.app).first is None
    # a household already on record refuses the whole import; nothing stored
    again = roster_rows(world, 4)
    with pytest.raises(Exception) as err:
        world.app.execute(roster_command(world, again))
    assert err.value.field == "rows[0].household_code"
    from domain.household import Household as H
    assert not world.app.exists(H.create_id("GJ0003"))


def test_a_household_dropped_from_a_recorded_roster_import_is_found(world, tmp_path):
    """Delete one imported household's event: the import's count and root no longer hold."""
    from audit.store import AuditConfig, AuditStore

    world.app.execute(roster_command(world, roster_rows(world, 4)))
    store = AuditStore(AuditConfig(world.app.database_url, tmp_path / "log-key", "t/log"))
    sqlite = store.dialect == "sqlite"
    table = "stored_events" if sqlite else f'"{store.schema}"."zhuisu_events"'
    pos = "rowid" if sqlite else "notification_id"
    with store.engine.begin() as conn:
        last = conn.exec_driver_sql(f"SELECT max({pos}) FROM {table}").scalar()
        conn.exec_driver_sql(f"DELETE FROM {table} WHERE {pos} = {last - 1}")
    report = verify_signatures(world.app)
    assert report.first is not None and report.first.position == last
    assert "out of place" in report.first.message
    store.close()
