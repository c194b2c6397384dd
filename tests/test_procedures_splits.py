"""拆分支付: every payment of one split is in one flag, however many pieces it takes.

Five payments of 9,800 yuan to one supplier within ten days, same signers, against an
approval threshold of 10,000 yuan, are one split of five — not two splits of two with the
fifth in none.  The flag is raised by the payment that completes the split and grows as
more payments join it, whether they are caught up with one by one or together; a rebuild
from zero gives the same flag.  Settings: threshold 10,000 yuan, window 30 days.
"""

from __future__ import annotations

import datetime as dt

import pytest
from factories import (
    TOWNSHIP,
    a_funded_account,
    a_registered_household,
    an_approved_project,
    household_payment,
    official,
    official_id,
    payment,
    run,
)

from domain.fund_account import FundAccount
from inspection.rules import RuleSettings, split_joined
from projections import runner
from projections.flags import Flags, list_flags
from projections.tracking import dump
from store.engines import engine_for

pytestmark = pytest.mark.usefixtures("close_read_models")

D = dt.date
T = str(FundAccount.create_id(TOWNSHIP, "central"))
SETTINGS = RuleSettings(approval_threshold_fen=1_000_000)  # 10,000 yuan; window 30 days
PIECE = 980_000  # 9,800 yuan
PURPOSE = "prj_village_infrastructure"
PAYERS = [official_id(official(who, TOWNSHIP))
          for who in ("finance_accountant", "head", "party_secretary")]


def catch_up(app, engine=None, batch: int = 3) -> None:
    runner.catch_up(app, projections=[Flags(SETTINGS)], engine=engine, batch=batch)


def splits(engine) -> list[dict]:
    return list_flags(engine, rule_id="SPLIT_PAYMENT", limit=1000)


def a_supplier(world, budget_fen: int = 20_000_000) -> str:
    a_funded_account(world, TOWNSHIP, budget_fen)
    return str(an_approved_project(world, "PRJ1", budget_fen=budget_fen, purpose=PURPOSE))


def pay_supplier(world, project: str, day: dt.date, supplier: str = "砂石料供应商甲",
                 amount: int = PIECE) -> str:
    content = payment("supplier", supplier, amount, day=day, purpose=PURPOSE,
                      project_id=project)
    run(world, "FundAccount.Disbursed", T, content)
    return content["movement_id"]


def payment_ref(movement_id: str) -> dict:
    return {"kind": "payment", "ref": movement_id, "account_id": T}


def assert_one_split_of(flag: dict, paid: list[str]) -> None:
    assert flag["subject_id"] == paid[1]  # the payment that first reached the threshold
    assert [e for e in flag["evidence"] if e["kind"] == "payment"] == [
        payment_ref(m) for m in paid]
    assert [p["movement_id"] for p in flag["detail"]["payments"]] == paid
    assert flag["detail"]["total_fen"] == PIECE * len(paid)
    assert flag["explanation_en"].startswith(f"split payment: {len(paid)} payments totalling "
                                             f"{PIECE * len(paid) // 100:,}.00 yuan")
    assert flag["signers"] == PAYERS


def test_five_payments_of_9800_yuan_within_ten_days_are_one_split_of_five(world) -> None:
    project = a_supplier(world)
    paid = [pay_supplier(world, project, D(2025, 3, 1) + dt.timedelta(days=2 * i))
            for i in range(5)]
    catch_up(world.app)
    [flag] = splits(engine_for(world.app.database_url))
    assert_one_split_of(flag, paid)
    assert flag["log_position"] < world.app.recorder.max_notification_id()  # raised by the 2nd


@pytest.mark.parametrize("count", [3, 5, 7])
def test_the_split_flag_grows_as_payments_join_in_later_batches(world, store,
                                                                count: int) -> None:
    project = a_supplier(world)
    paid: list[str] = []
    days = [D(2025, 3, 1) + dt.timedelta(days=i) for i in range(count)]
    engine = engine_for(world.app.database_url)
    for i, day in enumerate(days):
        paid.append(pay_supplier(world, project, day))
        if i % 2 == 1 or i == count - 1:  # caught up with after every second payment
            catch_up(world.app, batch=1 + i % 3)
            [flag] = splits(engine)
            assert_one_split_of(flag, paid)
    with engine.connect() as conn:
        incremental = dump(conn, Flags.tables)

    rebuilt = engine_for(store.new_database_url())  # from zero, in one batch
    catch_up(world.app, engine=rebuilt, batch=1000)
    with rebuilt.connect() as conn:
        assert dump(conn, Flags.tables) == incremental
    [flag] = splits(rebuilt)
    assert_one_split_of(flag, paid)


def test_a_household_split_takes_every_piece_and_leaves_other_purposes_out(world) -> None:
    a_funded_account(world, TOWNSHIP, 20_000_000)
    hid = a_registered_household(world, "H1")
    paid = []
    for i, purpose in enumerate(["hh_housing", "hh_housing", "hh_industry", "hh_housing"]):
        content = household_payment(hid, PIECE, day=D(2025, 3, 1 + 3 * i), purpose=purpose)
        run(world, "FundAccount.Disbursed", T, content)
        paid.append((purpose, content["movement_id"]))
    catch_up(world.app)
    [flag] = splits(engine_for(world.app.database_url))
    housing = [m for purpose, m in paid if purpose == "hh_housing"]
    assert flag["subject_id"] == housing[1]
    assert [p["movement_id"] for p in flag["detail"]["payments"]] == housing
    assert flag["detail"]["total_fen"] == 3 * PIECE


def test_payments_outside_the_window_or_to_another_payee_do_not_join(world) -> None:
    project = a_supplier(world)
    first = [pay_supplier(world, project, D(2025, 3, 1)),
             pay_supplier(world, project, D(2025, 3, 5)),
             pay_supplier(world, project, D(2025, 3, 31))]  # 30 days after the first: joins
    pay_supplier(world, project, D(2025, 3, 20), supplier="水泥供应商乙")  # another payee
    later = [pay_supplier(world, project, D(2025, 4, 1)),  # 31 days after the first
             pay_supplier(world, project, D(2025, 4, 3))]  # a split of its own
    catch_up(world.app)
    found = {f["subject_id"]: f for f in splits(engine_for(world.app.database_url))}
    assert set(found) == {first[1], later[1]}
    assert [p["movement_id"] for p in found[first[1]]["detail"]["payments"]] == first
    assert [p["movement_id"] for p in found[later[1]]["detail"]["payments"]] == later


def test_split_joined_is_the_first_split_still_within_the_window() -> None:
    splits_ = [("a", ["2025-03-01", "2025-03-05"]), ("b", ["2025-04-01", "2025-04-03"])]
    assert split_joined(splits_, "2025-03-31", 30) == "a"
    assert split_joined(splits_, "2025-04-01", 30) == "b"  # 31 days after a's first
    assert split_joined(splits_, "2025-02-28", 30) == "a"  # backdated: before the first
    assert split_joined(splits_, "2025-05-04", 30) is None
    assert split_joined([], "2025-03-01", 30) is None
