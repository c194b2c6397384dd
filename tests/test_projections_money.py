"""Balances and money trace: a known small history gives known balances and known traces.

The history (county account C, township account T, central funds, amounts in fen):

    01-02  C receives R1 1,000,000 (中央)          01-10  C receives R2 500,000 (省级)
    01-15  C allocates A1 1,200,000 to T           → R1 [0, 1,000,000) + R2 [0, 200,000)
    03-01  T pays H1 P1 300,000                    → A1 [0, 300,000)
    03-02  T pays H2 P2 500,000                    → A1 [300,000, 800,000)
    07-01  T recovers 200,000 of P2 (Rec1)        → new lot Rec1#0 = A1 [600,000, 800,000)
    08-01  T pays H1 P3 500,000                    → A1 [800,000, 1,200,000) + Rec1#0 [0, 100,000)

FIFO: money leaves an account oldest lot first; returned money is a new lot dated at
its return (projections.fifo).
"""

from __future__ import annotations

import datetime as dt

import pytest

from domain.fund_account import FundAccount
from factories import (
    read_models,
    COUNTY,
    TOWNSHIP,
    a_registered_household,
    allocation,
    household_payment,
    receipt,
    recovery,
    reversal,
    run,
)
from projections import chains, fifo, queries

D = dt.date
C = str(FundAccount.create_id(COUNTY, "central"))
T = str(FundAccount.create_id(TOWNSHIP, "central"))


pytestmark = pytest.mark.usefixtures("close_read_models")


def money(world, step, account, content):
    run(world, step, account, content)
    return content["movement_id"]


@pytest.fixture
def history(world):
    """The history of the module docstring; returns its movement and household ids."""
    ids = {"H1": str(a_registered_household(world, "H1")),
           "H2": str(a_registered_household(world, "H2"))}
    ids["R1"] = money(world, "FundAccount.Received", C,
                      receipt(1_000_000, day=D(2025, 1, 2), source="中央财政专项扶贫资金"))
    ids["R2"] = money(world, "FundAccount.Received", C,
                      receipt(500_000, day=D(2025, 1, 10), source="省级财政专项扶贫资金"))
    ids["A1"] = money(world, "FundAccount.Allocated", C,
                      allocation(T, 1_200_000, day=D(2025, 1, 15)))
    ids["P1"] = money(world, "FundAccount.Disbursed", T,
                      household_payment(ids["H1"], 300_000, day=D(2025, 3, 1)))
    ids["P2"] = money(world, "FundAccount.Disbursed", T,
                      household_payment(ids["H2"], 500_000, day=D(2025, 3, 2)))
    ids["Rec1"] = money(world, "FundAccount.Recovered", T,
                        recovery(ids["P2"], 200_000, day=D(2025, 7, 1)))
    ids["P3"] = money(world, "FundAccount.Disbursed", T,
                      household_payment(ids["H1"], 500_000, day=D(2025, 8, 1)))
    return ids


def account(rows, account_id):
    return next(r for r in rows if r["account_id"] == account_id)


# FIFO ------------------------------------------------------------------------------------
def test_fifo_draws_the_oldest_business_date_first_whatever_the_arrival_order():
    queue: list = []
    fifo.add(queue, D(2025, 3, 1), 10, 0, "late", 100)
    fifo.add(queue, D(2025, 1, 1), 11, 0, "early", 50)
    assert fifo.take(queue, 70) == [("early", 0, 50), ("late", 0, 20)]
    assert fifo.oldest(queue) == D(2025, 3, 1) and fifo.total(queue) == 80


def test_fifo_reversal_takes_from_the_lot_it_reverses_first():
    queue: list = []
    fifo.add(queue, D(2025, 1, 1), 1, 0, "a", 100)
    fifo.add(queue, D(2025, 2, 1), 2, 0, "b", 100)
    assert fifo.take(queue, 150, prefer="b") == [("b", 0, 100), ("a", 0, 50)]


def test_fifo_refuses_to_overdraw():
    queue: list = []
    fifo.add(queue, D(2025, 1, 1), 1, 0, "a", 100)
    with pytest.raises(fifo.Overdrawn):
        fifo.take(queue, 101)


# balances --------------------------------------------------------------------------------------
def test_balances_of_the_known_history(app, world, history):
    rows = queries.balances(read_models(app), as_of=D(2025, 12, 31))
    c, t = account(rows, C), account(rows, T)
    assert (c["received_fen"], c["allocated_down_fen"], c["balance_fen"]) == (
        1_500_000, 1_200_000, 300_000)
    assert c["idle_since"] == "2025-01-10"  # R2's last 300,000 fen, untouched since
    assert c["idle_days"] == 355
    assert (t["money_in_fen"], t["paid_out_fen"], t["recovered_fen"], t["balance_fen"]) == (
        1_200_000, 1_300_000, 200_000, 100_000)
    assert t["idle_since"] == "2025-07-01"  # the recovered lot, not the date it first arrived


def test_reversals_are_netted_out_of_what_they_correct(app, world, history):
    a2 = money(world, "FundAccount.Allocated", C, allocation(T, 100_000, day=D(2025, 9, 1)))
    run(world, "FundAccount.Reversed", C, reversal(a2, 100_000, purpose="special_fund",
                                                    day=D(2025, 9, 2)))
    p4 = money(world, "FundAccount.Disbursed", T,
               household_payment(history["H2"], 50_000, day=D(2025, 9, 10)))
    run(world, "FundAccount.Reversed", T, reversal(p4, 50_000, purpose="hh_industry",
                                                    day=D(2025, 9, 11)))
    r3 = money(world, "FundAccount.Received", C, receipt(70_000, day=D(2025, 10, 1)))
    run(world, "FundAccount.Reversed", C, reversal(r3, 70_000, purpose="special_fund",
                                                    day=D(2025, 10, 2)))
    rows = queries.balances(read_models(app))
    c, t = account(rows, C), account(rows, T)
    assert (c["received_fen"], c["allocated_down_fen"], c["balance_fen"]) == (
        1_500_000, 1_200_000, 300_000)
    assert c["reversed_fen"] == 170_000 and c["idle_since"] == "2025-01-10"
    assert (t["allocated_in_fen"], t["paid_out_fen"], t["balance_fen"]) == (
        1_200_000, 1_300_000, 100_000)
    assert t["reversed_fen"] == 150_000 and t["idle_since"] == "2025-07-01"
    for row in rows:  # the projection agrees with the aggregates
        assert row["balance_fen"] == world.balance(row["account_id"])


def test_summary_of_a_county_subtree_by_fund_source_and_purpose(app, world, history):
    s = queries.balance_summary(read_models(app), COUNTY)
    assert s["total"]["balance_fen"] == 400_000
    assert s["total"]["paid_out_fen"] - s["total"]["recovered_fen"] == 1_100_000
    assert s["total"]["idle_since"] == "2025-01-10"
    assert [r["fund_source"] for r in s["by_fund_source"]] == ["central"]
    purposes = {r["purpose"]: r for r in s["by_purpose"]}
    assert purposes["hh_industry"]["paid_out_fen"] == 1_300_000
    assert purposes["special_fund"]["received_fen"] == 1_500_000
    township = queries.balance_summary(read_models(app), TOWNSHIP)["total"]
    assert township["accounts"] == 1 and township["balance_fen"] == 100_000


# money trace ------------------------------------------------------------------------------------
def test_allocation_traced_down_to_every_payee(app, world, history):
    down = chains.money_down(read_models(app), history["A1"])
    got = {p["payee_id"]: p["amount_fen"] for p in down["payees"]}
    assert got == {history["H1"]: 800_000, history["H2"]: 300_000}
    assert down["held"] == [{"account_id": T, "amount_fen": 100_000, "since": "2025-07-01"}]
    assert down["paid_fen"] + down["held_fen"] + down["sent_back_fen"] == 1_200_000


def test_receipt_traced_down_through_the_allocation(app, world, history):
    down = chains.money_down(read_models(app), history["R2"])
    assert [(p["payee_id"], p["amount_fen"]) for p in down["payees"]] == [(history["H1"], 200_000)]
    assert down["held"] == [{"account_id": C, "amount_fen": 300_000, "since": "2025-01-10"}]


def test_payment_traced_up_to_its_receipts(app, world, history):
    up = chains.money_up(read_models(app), history["P3"])
    by_receipt: dict = {}
    for s in up["sources"]:
        receipt_id = s["receipt"]["movement_id"]
        by_receipt[receipt_id] = by_receipt.get(receipt_id, 0) + s["amount_fen"]
        assert s["via"][0]["movement_id"] == history["A1"]
    assert by_receipt == {history["R1"]: 300_000, history["R2"]: 200_000}
    returned = [s for s in up["sources"] if any(h["kind"] == "returned" for h in s["via"])]
    assert [(s["amount_fen"], s["via"][-1]["movement_id"]) for s in returned] == [
        (100_000, history["Rec1"])]


def test_what_a_household_received_from_which_sources_signed_by_whom(app, world, history):
    h1 = chains.household_money(read_models(app), history["H1"])
    assert (h1["received_fen"], h1["net_fen"]) == (800_000, 800_000)
    assert {s["source"]: s["amount_fen"] for s in h1["by_source"]} == {
        "中央财政专项扶贫资金": 600_000, "省级财政专项扶贫资金": 200_000}
    first = h1["payments"][0]
    assert first["movement_id"] == history["P1"]
    assert [(s["role"], s["code"]) for s in first["signatures"]] == [
        ("preparer", f"finance_accountant@{TOWNSHIP}"), ("reviewer", f"head@{TOWNSHIP}"),
        ("approver", f"party_secretary@{TOWNSHIP}")]
    allocation_hop = first["sources"][0]["via"][0]
    assert allocation_hop["step"] == "FundAccount.Allocated"
    assert allocation_hop["signatures"][0]["code"] == f"finance_officer@{COUNTY}"
    h2 = chains.household_money(read_models(app), history["H2"])
    assert (h2["received_fen"], h2["returned_fen"], h2["net_fen"]) == (500_000, 200_000, 300_000)


def test_reversed_allocation_flows_back_up_and_is_held_above(app, world, history):
    a2 = money(world, "FundAccount.Allocated", C, allocation(T, 100_000, day=D(2025, 9, 1)))
    run(world, "FundAccount.Reversed", C, reversal(a2, 100_000, purpose="special_fund",
                                                    day=D(2025, 9, 2)))
    down = chains.money_down(read_models(app), a2)
    assert down["payees"] == [] and down["sent_back"] == []
    assert down["held"] == [{"account_id": C, "amount_fen": 100_000, "since": "2025-09-02"}]


def test_reversed_receipt_is_sent_back_to_its_source(app, world, history):
    r3 = money(world, "FundAccount.Received", C, receipt(70_000, day=D(2025, 10, 1)))
    rev = money(world, "FundAccount.Reversed", C, reversal(r3, 70_000, purpose="special_fund",
                                                           day=D(2025, 10, 2)))
    down = chains.money_down(read_models(app), r3)
    assert [(s["movement_id"], s["amount_fen"]) for s in down["sent_back"]] == [(rev, 70_000)]
    assert down["held"] == []
