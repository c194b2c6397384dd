"""Payment batches, bank returns and roster imports on the read side: balances, traces,
responsibility, register, cases, the reconciliation read model (对账) and the batch red
flags (PAY_CARD_NOT_BENEFICIARY, PAY_REPEATED_FAILURE, PAY_ACCOUNT_CHANGED); a rebuild
gives the very same tables."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select

from domain.fund_account import FundAccount
from domain.household import Household
from factories import (
    TOWNSHIP,
    a_funded_account,
    a_registered_household,
    id_number,
    official,
    official_id,
    person_number,
    sign,
)
from projections import balances as bal
from projections import batches as bt
from projections import chains, money_trace, register, responsibility, runner
from projections.flags import list_flags
from projections.queries import balances
from projections.tracking import dump, failure_counts
from store.engines import engine_for
from test_batches import order, payment_rows, returns, roster_command, roster_rows

D = dt.date
pytestmark = pytest.mark.usefixtures("close_read_models")
TABLES = [t for p in runner.PROJECTIONS for t in p.tables]
PAYERS = {official_id(official(who, TOWNSHIP))
          for who in ("finance_accountant", "head", "party_secretary")}
BATCH_RULES = ("PAY_CARD_NOT_BENEFICIARY", "PAY_REPEATED_FAILURE", "PAY_ACCOUNT_CHANGED")


def engine(app):
    """The read models caught up; every event taken by every projection (none skipped)."""
    runner.catch_up(app, batch=7)
    e = engine_for(app.database_url)
    with e.connect() as conn:
        assert failure_counts(conn) == {}
    return e


def bank(code):
    """The bank account hash a household applies with (factories.application)."""
    return hashlib.sha256(f"bank/{code}".encode()).hexdigest()


def head_hash(world, code):
    return world.app.hash_id(id_number(person_number(f"{code}/head")))


def card_rows(world, households, codes, amounts, **card):
    rows = payment_rows(households, amounts)
    for r, code in zip(rows, codes):
        r["bank_account_hash"] = card.get("bank", bank(code))
        r["holder_id_hash"] = card.get("holder", head_hash(world, code))
    return rows


def bank_return(world, account, bid, failed, credited_count, credited_fen, day=D(2025, 3, 5)):
    signed = sign(world, "FundAccount.ReturnsRecorded", account,
                  returns(bid, failed, credited_count, credited_fen, day=day))
    return world.app.execute({**signed, "rows": failed})


def standing(app, rule):
    runner.catch_up(app, names=["flags"], batch=5)
    return list_flags(engine_for(app.database_url), rule_id=rule, limit=1000)


def assert_rebuild_gives_the_same_tables(app):
    runner.catch_up(app, batch=3)
    e = engine_for(app.database_url)
    with e.connect() as conn:
        assert failure_counts(conn) == {}
        incremental = dump(conn, TABLES)
    runner.rebuild(app)
    with e.connect() as conn:
        assert dump(conn, TABLES) == incremental


@pytest.fixture
def paid(world):
    """A batch of three rows; the bank returns row 1; a later batch re-issues it."""
    account = a_funded_account(world, TOWNSHIP, 1_000_000)
    codes = ["B0", "B1", "B2"]
    households = [a_registered_household(world, c) for c in codes]
    rows = card_rows(world, households, codes, [10_000, 20_000, 30_000])
    first = order(world, account, rows)
    world.app.execute(first)
    return world, account, households, codes, rows, first["content"]["batch_id"]


def test_a_bank_return_is_money_back_everywhere_and_reconciles(paid):
    world, account, households, codes, rows, bid = paid
    aid = str(account)
    db = engine(world.app)
    view = bt.batch_view(db, bid)
    assert view["reconciliation"]["state"] == "pending"
    assert view["reconciliation"]["credited"] == {"rows": None, "fen": None}
    assert view["reconciliation"]["pending"] == {"rows": 3, "fen": 60_000}
    assert [r["state"] for r in view["rows"]] == ["pending"] * 3
    assert {s["official_id"] for s in view["signers"]} == PAYERS
    assert all(s["name"] for s in view["signers"])
    assert view["manifest"]["source_sha256"] == "ab" * 32

    failed = [{"of_movement_id": rows[1]["movement_id"], "amount_fen": 20_000,
               "reason": "账户已销户", "bank_serial": "S2", "source_row": 3}]
    assert bank_return(world, account, bid, failed, 2, 40_000)["recorded"] is True
    db = engine(world.app)
    acc = world.app.load(FundAccount, account)
    [row] = [a for a in balances(db) if a["account_id"] == aid]
    assert row["paid_out_fen"] == acc.paid_out == 40_000
    assert row["balance_fen"] == acc.balance == 1_000_000 - 40_000
    with db.connect() as conn:
        t = money_trace.movements
        original = conn.execute(select(t).where(t.c.movement_id == rows[1]["movement_id"])
                                ).mappings().one()
        returned = conn.execute(select(t).where(t.c.kind == "returned")).mappings().one()
        kinds = dict(conn.execute(select(bal.movements.c.movement_id,
                                          bal.movements.c.kind)).all())
        resp = conn.execute(select(responsibility.movements.c.recovered_fen).where(
            responsibility.movements.c.movement_id == rows[1]["movement_id"])).scalar_one()
    assert original["returned_fen"] == 20_000 and returned["of_movement_id"] == rows[1]["movement_id"]
    assert returned["reason"] == "账户已销户"
    assert kinds[returned["movement_id"]] == "returned"
    assert resp == 20_000  # came back of it: nothing outstanding
    # the payment's chain names the batch's signers, and what became of it: returned
    chain = chains.payment_chain(db, rows[1]["movement_id"], aid)
    assert {s["official_id"] for s in chain["payment"]["signatures"]} == PAYERS
    assert [x["step"] for x in chain["later"]] == ["FundAccount.PaymentReturned"]
    view = bt.batch_view(db, bid)
    rec = view["reconciliation"]
    assert rec["state"] == "returned"
    assert rec["credited"] == {"rows": 2, "fen": 40_000}
    assert rec["returned"] == {"rows": 1, "fen": 20_000}
    assert rec["bank_return"]["source_sha256"] == "cd" * 32
    assert [r["state"] for r in view["rows"]] == ["credited", "returned", "credited"]
    assert view["rows"][1]["returned_reason"] == "账户已销户"
    assert {s["official_id"] for s in view["return_signers"]} == PAYERS

    # re-issued in a later batch, same month: no duplicate, the original row says so
    reissue = card_rows(world, households[1:2], codes[1:2], [20_000])
    reissue[0]["reissue_of"] = rows[1]["movement_id"]
    second = order(world, account, reissue, day=D(2025, 3, 10))
    world.app.execute(second)
    db = engine(world.app)
    view = bt.batch_view(db, bid)
    assert view["reconciliation"]["state"] == "reissued"
    assert view["reconciliation"]["reissued"] == {"rows": 1, "fen": 20_000}
    assert view["rows"][1]["state"] == "reissued"
    assert view["rows"][1]["reissued_by"] == reissue[0]["movement_id"]
    [row] = [a for a in balances(db) if a["account_id"] == aid]
    assert row["paid_out_fen"] == world.app.load(FundAccount, account).paid_out == 60_000
    assert standing(world.app, "PAY_DUPLICATE") == []
    # lists: per account, per region, per state
    listed, _ = bt.list_batches(db, account_id=aid)
    assert [b["batch_id"] for b in listed] == [second["content"]["batch_id"], bid]
    assert [b["batch_id"] for b in bt.list_batches(db, state="pending")[0]] == [
        second["content"]["batch_id"]]
    assert [b["batch_id"] for b in bt.list_batches(db, state="reissued")[0]] == [bid]
    assert len(bt.list_batches(db, level="township", code=TOWNSHIP)[0]) == 2
    assert bt.list_batches(db, level="township", code="999999999")[0] == []
    page, nxt = bt.batch_rows_page(db, bt.get_batch(db, bid), limit=2)
    assert [r["row"] for r in page] == [0, 1] and nxt == 2
    # the manifests are signed steps of the responsibility read model
    with db.connect() as conn:
        s = responsibility.signatures
        steps = {(r["step"], r["official_id"]) for r in conn.execute(
            select(s.c.step, s.c.official_id).where(s.c.step.in_(
                ("FundAccount.BatchOrdered", "FundAccount.ReturnsRecorded")))).mappings()}
    assert steps == {(step, o) for step in ("FundAccount.BatchOrdered",
                                            "FundAccount.ReturnsRecorded") for o in PAYERS}
    for rule in BATCH_RULES:
        assert standing(world.app, rule) == [], rule  # a clean batch raises none
    assert_rebuild_gives_the_same_tables(world.app)


def test_an_imported_household_is_on_the_register_from_its_date(world):
    rows = roster_rows(world, 2)
    command = roster_command(world, rows)
    world.app.execute(command)
    import_id = command["content"]["import_id"]
    db = engine(world.app)
    h0, h1 = (str(Household.create_id(c)) for c in ("GJ0000", "GJ0001"))
    with db.connect() as conn:
        found = {r["household_id"]: dict(r) for r in conn.execute(
            select(register.households)).mappings()}
        s = responsibility.signatures
        roster_signed = conn.execute(select(s.c.official_id).where(
            s.c.step == "Roster.Imported")).scalars().all()
    assert found[h1]["status"] == "registered" and found[h1]["on_register"] == 1
    assert found[h1]["registered_on"] == D(2016, 3, 1)
    assert found[h1]["imported_from"] == import_id
    assert found[h0]["status"] == "exited" and found[h0]["exited_on"] == D(2019, 12, 31)
    assert found[h0]["exit_year"] == 2019 and found[h0]["on_register"] == 0
    assert len(roster_signed) == 3
    view = bt.roster_view(db, import_id)
    assert view["households_imported"] == 2 and view["exited"] == 1
    assert view["manifest"]["source_sha256"] == "ef" * 32
    assert [h["source_rows"] for h in view["households"]] == [[5, 6], [7, 8]]
    assert all(s["name"] for s in view["signers"])
    # paid as a registered household: no PAY_UNREGISTERED
    account = a_funded_account(world, TOWNSHIP, 100_000)
    world.app.execute(order(world, account, payment_rows([h1], [5_000])))
    assert standing(world.app, "PAY_UNREGISTERED") == []
    assert_rebuild_gives_the_same_tables(world.app)


def test_a_card_whose_holder_is_not_of_the_household_is_flagged(paid):
    world, account, households, codes, _, _ = paid
    stranger = world.app.hash_id(id_number(777_777))
    rows = card_rows(world, households[:2], codes[:2], [1_000, 1_000])
    rows[1]["holder_id_hash"] = stranger
    command = order(world, account, rows, day=D(2025, 4, 1))
    world.app.execute(command)
    [flag] = standing(world.app, "PAY_CARD_NOT_BENEFICIARY")
    assert flag["subject_id"] == rows[1]["movement_id"] and flag["severity"] == "high"
    assert set(flag["signers"]) == PAYERS
    assert flag["detail"]["row"] == 1 and flag["detail"]["holder_id_hash"] == stranger
    assert "第2行" in flag["explanation_zh"]
    assert_rebuild_gives_the_same_tables(world.app)


def test_payments_returned_twice_are_flagged(paid):
    world, account, households, codes, rows, bid = paid
    failed = [{"of_movement_id": rows[2]["movement_id"], "amount_fen": 30_000,
               "reason": "账户冻结"}]
    bank_return(world, account, bid, failed, 2, 30_000)
    assert standing(world.app, "PAY_REPEATED_FAILURE") == []  # once is no pattern
    again = card_rows(world, households[2:], codes[2:], [30_000])
    again[0]["reissue_of"] = rows[2]["movement_id"]
    second = order(world, account, again, day=D(2025, 3, 20))
    world.app.execute(second)
    failed = [{"of_movement_id": again[0]["movement_id"], "amount_fen": 30_000,
               "reason": "账户冻结"}]
    bank_return(world, account, second["content"]["batch_id"], failed, 0, 0,
                day=D(2025, 3, 22))
    [flag] = standing(world.app, "PAY_REPEATED_FAILURE")
    assert flag["subject_id"] == str(households[2]) and flag["subject_kind"] == "household"
    assert set(flag["signers"]) == PAYERS
    assert {e["ref"] for e in flag["evidence"] if e["kind"] == "payment"} == {
        rows[2]["movement_id"], again[0]["movement_id"]}
    assert len(flag["detail"]["household_failures"]) == 2
    assert "2次" in flag["explanation_zh"]
    assert_rebuild_gives_the_same_tables(world.app)


def test_one_bank_account_failing_for_two_households_is_flagged(paid):
    world, account, households, codes, _, _ = paid
    shared = "ee" * 32
    rows = card_rows(world, households[:2], codes[:2], [1_000, 2_000], bank=shared)
    command = order(world, account, rows, day=D(2025, 3, 2))
    world.app.execute(command)
    failed = [{"of_movement_id": r["movement_id"], "amount_fen": r["amount_fen"],
               "reason": "户名不符"} for r in rows]
    bank_return(world, account, command["content"]["batch_id"], failed, 0, 0)
    flags = standing(world.app, "PAY_REPEATED_FAILURE")
    assert [f["subject_id"] for f in flags] == [str(households[1])]
    assert len(flags[0]["detail"]["bank_account_failures"]) == 2


def test_a_payment_to_another_account_than_before_is_flagged(paid):
    world, account, households, codes, rows, _ = paid
    # household 0 was paid on 03-01 to its registered account; on 03-20 to another one
    moved = card_rows(world, households[:1], codes[:1], [1_000], bank="aa" * 32)
    world.app.execute(order(world, account, moved, day=D(2025, 3, 20)))
    [flag] = standing(world.app, "PAY_ACCOUNT_CHANGED")
    assert flag["subject_id"] == moved[0]["movement_id"]
    assert flag["detail"]["basis"] == "previous_payment"
    assert flag["detail"]["previous_movement_id"] == rows[0]["movement_id"]
    assert set(flag["signers"]) == PAYERS
    # long after its last payment, against the registered account
    later = card_rows(world, households[1:2], codes[1:2], [1_000], bank="bb" * 32)
    world.app.execute(order(world, account, later, day=D(2025, 6, 1)))
    flags = {f["subject_id"]: f for f in standing(world.app, "PAY_ACCOUNT_CHANGED")}
    assert flags[later[0]["movement_id"]]["detail"]["basis"] == "registered"
    # the same account as registered, long after: nothing new
    same = card_rows(world, households[2:], codes[2:], [1_000])
    world.app.execute(order(world, account, same, day=D(2025, 6, 2)))
    assert same[0]["movement_id"] not in {f["subject_id"] for f in
                                          standing(world.app, "PAY_ACCOUNT_CHANGED")}
    assert_rebuild_gives_the_same_tables(world.app)


def test_the_account_change_window_is_a_setting():
    from inspection.rules import RuleSettings
    from inspection.rules.batches import account_changed, account_reference

    assert RuleSettings().account_change_days == 30
    assert RuleSettings.from_env({"ZHUISU_FLAG_ACCOUNT_CHANGE_DAYS": "7"}).account_change_days == 7
    earlier = [["2025-03-01", 10, "a"]]
    assert account_reference(earlier, None, D(2025, 3, 20), 30) == ("previous_payment", "a",
                                                                    "2025-03-01")
    assert account_reference(earlier, None, D(2025, 3, 20), 7) is None
    assert account_reference(earlier, "r", D(2025, 3, 20), 7) == ("registered", "r", None)
    assert account_changed("b", ("registered", "r", None))
    assert not account_changed("r", ("registered", "r", None))
    assert not account_changed(None, ("registered", "r", None))
