"""The projections over HTTP: money traces, responsibility chains, liability, the village
view, balances, lag and replay — each within the token's jurisdiction, refusals naming
the field, inspectors' household reads in the access log.

The money (hand-computed): the county account C receives 1,000,000 fen and allocates
600,000 to the township account T; T pays household H1 200,000 on 2025-03-01 and
recovers 50,000 of it on 2025-07-01.  So H1 keeps 150,000, T holds 400,000 of the
allocation plus the 50,000 that came back (450,000), C holds 400,000.  Signers are the
world's defaults (tests/factories.py).  County "B" (522626) lies beside the world.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from api_support import refused
from factories import (
    COUNTY,
    COUNTY_B,
    TOWNSHIP,
    VILLAGE,
    World,
    a_household_through,
    a_registered_household,
    allocation,
    another_county,
    household_payment,
    official,
    official_id,
    receipt,
    recovery,
    run,
)

from projections import runner

ACCOUNTANT = official("finance_accountant", TOWNSHIP)


pytestmark = pytest.mark.usefixtures("close_read_models")


@dataclass
class Money:
    household: UUID
    county_account: UUID
    township_account: UUID
    receipt_id: str
    allocation_id: str
    payment_id: str
    recovery_id: str


@pytest.fixture
def money(world: World) -> Money:
    another_county(world)
    h1 = a_registered_household(world, "H1")
    c, t = world.account(COUNTY), world.account(TOWNSHIP)
    r, a = receipt(1_000_000), allocation(t, 600_000)
    p = household_payment(h1, 200_000, day=dt.date(2025, 3, 1))
    back = recovery(p["movement_id"], 50_000, day=dt.date(2025, 7, 1))
    run(world, "FundAccount.Received", c, r)
    run(world, "FundAccount.Allocated", c, a)
    run(world, "FundAccount.Disbursed", t, p)
    run(world, "FundAccount.Recovered", t, back)
    return Money(h1, c, t, r["movement_id"], a["movement_id"], p["movement_id"],
                 back["movement_id"])


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def reads(api: Any) -> list[tuple[str, str]]:
    """(route, household id) of every access-log entry, oldest first."""
    return [(e["route"], e["subject_id"]) for e in ok(api.client.get("/access-log"))["items"]]


# money traces ---------------------------------------------------------------------------
def test_a_trace_down_from_an_allocation_reaches_the_household_and_what_is_held(
        api: Any, money: Money) -> None:
    inspector = api.as_("inspector", COUNTY)
    trace = ok(inspector.get(f"/traces/down/{money.allocation_id}"))
    assert trace["from"]["kind"] == "allocated" and trace["amount_fen"] == 600_000
    assert (trace["paid_fen"], trace["held_fen"], trace["sent_back_fen"]) == (150_000, 450_000, 0)
    assert trace["payee_count"] == 1
    [payee] = trace["payees"]
    assert (payee["payee_kind"], payee["payee_id"], payee["amount_fen"]) == (
        "household", str(money.household), 150_000)
    assert [p["movement_id"] for p in payee["payments"]] == [money.payment_id]
    assert trace["held"] == [{"account_id": str(money.township_account), "amount_fen": 450_000,
                              "since": "2025-01-02"}]
    assert reads(api) == [("/traces/down/{movement_id}", str(money.county_account)),
                          ("/traces/down/{movement_id}", str(money.household))]


def test_a_trace_up_from_a_payment_reaches_the_county_receipt(api: Any, money: Money) -> None:
    trace = ok(api.as_("reviewer", TOWNSHIP).get(f"/traces/up/{money.payment_id}"))
    assert (trace["movement"]["movement_id"], trace["net_fen"]) == (money.payment_id, 150_000)
    [source] = trace["sources"]
    assert source["amount_fen"] == 150_000
    assert (source["receipt"]["movement_id"], source["receipt"]["account_id"]) == (
        money.receipt_id, str(money.county_account))
    assert [(h["kind"], h["movement_id"]) for h in source["via"]] == [
        ("transfer", money.allocation_id)]
    assert reads(api) == [("/traces/up/{movement_id}", str(money.township_account)),
                          ("/traces/up/{movement_id}", str(money.household))]


def test_traces_outside_the_jurisdiction_or_of_unknown_movements_are_refused(
        api: Any, money: Money) -> None:
    outsider = api.as_("inspector", COUNTY_B)
    refused(outsider.get(f"/traces/down/{money.allocation_id}"), 403, "OutsideJurisdiction",
            "movement_id")
    refused(outsider.get(f"/traces/up/{money.payment_id}"), 403, "OutsideJurisdiction",
            "movement_id")
    # a township token may not trace the county's allocation down from the county account
    refused(api.as_("reviewer", TOWNSHIP).get(f"/traces/down/{money.allocation_id}"), 403,
            "OutsideJurisdiction", "movement_id")
    refused(api.client.get("/traces/down/no-such-movement"), 404, "NotFound", "movement_id")
    # a payment is not where a trace down starts
    refused(api.client.get(f"/traces/down/{money.payment_id}"), 404, "NotFound", "movement_id")
    refused(api.client.get(f"/traces/up/{money.payment_id}", params={"account_id": "x"}), 422,
            "InvalidInput", "account_id")
    assert reads(api) == []


def test_a_households_money_and_its_sources(api: Any, money: Money) -> None:
    found = ok(api.as_("inspector", COUNTY).get(f"/households/{money.household}/money"))
    assert (found["received_fen"], found["returned_fen"], found["net_fen"]) == (
        200_000, 50_000, 150_000)
    assert [(s["account_id"], s["fund_source"], s["amount_fen"]) for s in found["by_source"]] == [
        (str(money.county_account), "central", 150_000)]
    [payment] = found["payments"]
    assert [(s["role"], s["code"]) for s in payment["signatures"]] == [
        ("preparer", ACCOUNTANT), ("reviewer", official("head", TOWNSHIP)),
        ("approver", official("party_secretary", TOWNSHIP))]
    refused(api.as_("inspector", COUNTY_B).get(f"/households/{money.household}/money"), 403,
            "OutsideJurisdiction", "household_id")
    refused(api.client.get(f"/households/{UUID(int=7)}/money"), 404, "NotFound", "household_id")
    assert reads(api) == [("/households/{household_id}/money", str(money.household))]


# responsibility chains ------------------------------------------------------------------
def test_a_households_chain_names_every_signer_of_its_identification(api: Any,
                                                                     money: Money) -> None:
    chain = ok(api.as_("inspector", COUNTY).get(f"/households/{money.household}/chain"))
    assert (chain["code"], chain["village"], chain["status"]) == ("H1", VILLAGE, "registered")
    assert [s["step"] for s in chain["steps"]] == [
        "Household.Applied", "Household.AppraisedByVillage", "Household.VerifiedByVillage",
        "Household.NoticePosted", "Household.ReviewedByTownship", "Household.NoticePosted",
        "Household.ApprovedByCounty"]
    approval = chain["steps"][-1]
    assert approval["status_after"] == "registered"
    assert [(s["role"], s["code"]) for s in approval["signatures"]] == [
        ("preparer", official("poverty_staff", COUNTY)),
        ("reviewer", official("poverty_director", COUNTY)),
        ("approver", official("deputy_magistrate", COUNTY))]
    refused(api.as_("reviewer", COUNTY_B).get(f"/households/{money.household}/chain"), 403,
            "OutsideJurisdiction", "household_id")
    assert reads(api) == [("/households/{household_id}/chain", str(money.household))]


def test_a_payments_chain_and_the_chain_of_its_event(api: Any, money: Money) -> None:
    inspector = api.as_("inspector", COUNTY)
    chain = ok(inspector.get(f"/chains/payments/{money.payment_id}"))
    assert (chain["payment"]["amount_fen"], chain["payment"]["step"]) == (
        200_000, "FundAccount.Disbursed")
    assert [(x["step"], x["amount_fen"]) for x in chain["later"]] == [
        ("FundAccount.Recovered", 50_000)]
    [funding] = chain["funding"]
    assert funding["amount_fen"] == 150_000
    assert [s["step"] for s in funding["steps"]] == ["FundAccount.Received",
                                                      "FundAccount.Allocated"]
    assert (chain["payee"]["code"], chain["payee"]["status"]) == ("H1", "registered")

    position = chain["payment"]["log_position"]
    event = ok(inspector.get(f"/chains/events/{position}"))
    assert (event["step"], event["originator_id"], event["amount_fen"]) == (
        "FundAccount.Disbursed", str(money.township_account), 200_000)
    assert [s["code"] for s in event["signatures"]] == [
        ACCOUNTANT, official("head", TOWNSHIP), official("party_secretary", TOWNSHIP)]
    first = chain["payee"]["registration"][0]["log_position"]  # the household's application
    assert ok(inspector.get(f"/chains/events/{first}"))["step"] == "Household.Applied"
    assert reads(api) == [("/chains/payments/{movement_id}", str(money.township_account)),
                          ("/chains/payments/{movement_id}", str(money.household)),
                          ("/chains/events/{log_position}", str(money.township_account)),
                          ("/chains/events/{log_position}", str(money.household))]

    outsider = api.as_("inspector", COUNTY_B)
    refused(outsider.get(f"/chains/payments/{money.payment_id}"), 403, "OutsideJurisdiction",
            "movement_id")
    refused(outsider.get(f"/chains/events/{position}"), 403, "OutsideJurisdiction",
            "log_position")
    refused(api.client.get("/chains/events/999999"), 404, "NotFound", "log_position")
    refused(api.client.get("/chains/events/0"), 422, "InvalidInput", "log_position")
    refused(api.client.get(f"/chains/payments/{money.allocation_id}"), 404, "NotFound",
            "movement_id")


def test_an_officials_liability_over_a_period(api: Any, money: Money) -> None:
    inspector = api.as_("inspector", COUNTY)
    oid = official_id(ACCOUNTANT)
    whole = ok(inspector.get(f"/officials/{oid}/liability"))
    assert whole["official"]["code"] == ACCOUNTANT
    assert whole["signed"]["steps"] == 2  # the payment and the recovery, as preparer
    assert [(s["step"], s["role"], s["count"], s["amount_fen"])
            for s in whole["signed"]["by_step"]] == [
        ("FundAccount.Disbursed", "preparer", 1, 200_000),
        ("FundAccount.Recovered", "preparer", 1, 50_000)]
    recovered = whole["later"]["payments_recovered"]
    assert recovered["count"] == 1
    assert [(i["movement_id"], i["amount_fen"], i["happened_on"]) for i in recovered["items"]] \
        == [(money.payment_id, 50_000, "2025-07-01")]
    assert reads(api) == [("/officials/{official_id}/liability", str(oid)),
                          ("/officials/{official_id}/liability", str(money.household))]

    # from April on, only the recovery was signed; the payment (March) and what became of
    # it are outside the period
    later = ok(inspector.get(f"/officials/{oid}/liability", params={"from": "2025-04-01"}))
    assert (later["period"], later["signed"]["steps"]) == (
        {"from": "2025-04-01", "to": None}, 1)
    assert later["later"]["payments_recovered"]["count"] == 0

    refused(inspector.get(f"/officials/{oid}/liability",
                          params={"from": "2025-05-01", "to": "2025-04-01"}),
            422, "InvalidInput", "to")
    refused(inspector.get(f"/officials/{oid}/liability", params={"from": "2025-02-30"}),
            422, "InvalidInput", "from")
    refused(api.as_("inspector", COUNTY_B).get(f"/officials/{oid}/liability"), 403,
            "OutsideJurisdiction", "official_id")
    refused(inspector.get(f"/officials/{UUID(int=5)}/liability"), 404, "NotFound",
            "official_id")


# views -----------------------------------------------------------------------------------
def test_the_village_view_pages_its_register_and_records_the_page(api: Any, money: Money,
                                                                  world: World) -> None:
    a_household_through(world, 2, "H2")  # verified by the village, not yet registered
    inspector = api.as_("inspector", COUNTY)
    view = ok(inspector.get(f"/villages/{VILLAGE}", params={"limit": 1}))
    assert view["households"] == {"applied": 2, "registered": 1, "exited": 0, "removed": 0,
                                  "relapsed": 0, "rejected": 0, "in_identification": 1}
    assert view["people"] == {"registered": 2, "exited": 0}
    assert view["incidence"] is None  # the village's population is not known
    assert view["exit_readiness"]["ready"] == "unknown"
    assert [(e["code"], e["status"]) for e in view["register"]["items"]] == [("H1", "registered")]
    assert (view["register"]["limit"], view["register"]["next_offset"]) == (1, 1)
    rest = ok(inspector.get(f"/villages/{VILLAGE}", params={"limit": 1, "offset": 1}))
    assert [(e["code"], e["status"]) for e in rest["register"]["items"]] == [("H2", "verified")]
    assert rest["register"]["next_offset"] is None
    h2 = rest["register"]["items"][0]["household_id"]
    assert reads(api) == [("/villages/{code}", VILLAGE), ("/villages/{code}", str(money.household)),
                          ("/villages/{code}", VILLAGE), ("/villages/{code}", h2)]

    refused(api.as_("inspector", COUNTY_B).get(f"/villages/{VILLAGE}"), 403,
            "OutsideJurisdiction", "code")
    refused(api.client.get(f"/villages/{TOWNSHIP}"), 422, "InvalidInput", "code")
    refused(api.client.get("/villages/nowhere"), 404, "NotFound", "code")


def test_balances_of_a_region_page_by_page_with_idle_days(api: Any, money: Money) -> None:
    reader = api.as_("reviewer", COUNTY)
    first = ok(reader.get("/balances", params={"region": COUNTY, "limit": 1,
                                                "as_of": "2025-07-31"}))
    [county] = first["items"]
    assert (county["account_id"], county["received_fen"], county["allocated_down_fen"],
            county["balance_fen"]) == (str(money.county_account), 1_000_000, 600_000, 400_000)
    assert first["next_offset"] == 1
    [township] = ok(reader.get("/balances", params={"region": COUNTY, "offset": 1,
                                                     "as_of": "2025-07-31"}))["items"]
    assert (township["allocated_in_fen"], township["paid_out_fen"], township["recovered_fen"],
            township["balance_fen"]) == (600_000, 200_000, 50_000, 450_000)
    assert (township["idle_since"], township["idle_days"]) == ("2025-01-02", 210)
    mine = ok(api.as_("fund_officer", TOWNSHIP).get("/balances"))["items"]
    assert [a["account_id"] for a in mine] == [str(money.township_account)]
    assert ok(api.as_("reviewer", COUNTY_B).get("/balances"))["items"] == []
    refused(api.as_("reviewer", COUNTY_B).get("/balances", params={"region": COUNTY}), 403,
            "OutsideJurisdiction", "region")
    refused(reader.get("/balances", params={"fund_source": "lottery"}), 422, "InvalidInput",
            "fund_source")


def test_the_balance_summary_of_a_region(api: Any, money: Money) -> None:
    summary = ok(api.as_("reviewer", COUNTY).get("/balances/summary",
                                                 params={"region": TOWNSHIP}))
    assert summary["total"]["balance_fen"] == 450_000 and summary["total"]["accounts"] == 1
    assert [(p["purpose"], p["allocated_in_fen"], p["paid_out_fen"], p["recovered_fen"])
            for p in summary["by_purpose"]] == [("hh_industry", 0, 200_000, 50_000),
                                                ("special_fund", 600_000, 0, 0)]
    county = ok(api.as_("reviewer", COUNTY).get("/balances/summary"))  # the token's region
    assert (county["region_code"], county["total"]["balance_fen"]) == (COUNTY, 850_000)
    refused(api.client.get("/balances/summary"), 422, "InvalidInput", "region")
    refused(api.as_("reviewer", COUNTY_B).get("/balances/summary", params={"region": COUNTY}),
            403, "OutsideJurisdiction", "region")


def test_lag_shows_the_gap_until_a_read_catches_the_projections_up(api: Any,
                                                                   money: Money) -> None:
    head = api.zhuisu.recorder.max_notification_id()
    before = ok(api.as_("reviewer", COUNTY).get("/projections/lag"))
    assert set(before) == {p.name for p in runner.PROJECTIONS}
    assert {p["head"] for p in before.values()} == {head}
    assert all(p["lag"] == head - p["position"] > 0 for p in before.values())
    ok(api.as_("reviewer", COUNTY).get("/balances"))  # reads catch the read models up
    after = ok(api.as_("reviewer", COUNTY).get("/projections/lag"))
    assert {name: p["lag"] for name, p in after.items()} == dict.fromkeys(before, 0)


# replay -------------------------------------------------------------------------------------
def test_replay_of_a_village_at_a_position_and_on_a_business_date(api: Any,
                                                                  money: Money) -> None:
    app = api.zhuisu
    inspector = api.as_("inspector", COUNTY)
    head = app.recorder.max_notification_id()
    now = ok(inspector.get(f"/replay/villages/{VILLAGE}", params={"position": head}))
    assert now["as_of"] == {"mode": "position", "date": None, "position": head, "head": head,
                            "recorded_by": None}
    assert now["village"]["households"]["registered"] == 1
    [township] = now["accounts"]
    assert (township["account_id"], township["balance_fen"]) == (str(money.township_account),
                                                                  450_000)
    # effective on 2025-03-31: paid, not yet recovered; before the county's approval on
    # 2025-01-23, H1 was still in identification
    march = ok(inspector.get(f"/replay/villages/{VILLAGE}", params={"as_of": "2025-03-31"}))
    assert march["as_of"]["mode"] == "effective" and march["as_of"]["position"] == head
    assert (march["accounts"][0]["paid_out_fen"], march["accounts"][0]["recovered_fen"],
            march["accounts"][0]["balance_fen"]) == (200_000, 0, 400_000)
    january = ok(inspector.get(f"/replay/villages/{VILLAGE}", params={"as_of": "2025-01-22"}))
    assert [(e["code"], e["status"]) for e in january["village"]["register"]["items"]] == [
        ("H1", "second_notice")]
    assert reads(api) == [("/replay/villages/{code}", subject) for subject in (
        VILLAGE, str(money.household), str(money.township_account))] * 3


def test_replay_refusals_name_the_field(api: Any, money: Money) -> None:
    head = api.zhuisu.recorder.max_notification_id()
    refused(api.as_("inspector", COUNTY_B).get(f"/replay/villages/{VILLAGE}",
                                               params={"position": 1}),
            403, "OutsideJurisdiction", "code")
    refused(api.client.get(f"/replay/villages/{VILLAGE}", params={"as_of": "2025-06-31"}), 422,
            "InvalidInput", "as_of")
    refused(api.client.get(f"/replay/villages/{VILLAGE}", params={"position": head + 1}), 422,
            "InvalidInput", "position")
    refused(api.client.get(f"/replay/villages/{VILLAGE}"), 422, "InvalidInput", "as_of")
    refused(api.client.get(f"/replay/villages/{VILLAGE}", params={
        "as_of": "2025-06-30", "mode": "known", "position": 3}), 422, "InvalidInput", "position")
    refused(api.client.get(f"/replay/villages/{VILLAGE}", params={"mode": "someday",
                                                                   "position": 3}),
            422, "InvalidInput", "mode")
    # the village exists now, but not in the first event's log
    refused(api.client.get(f"/replay/villages/{VILLAGE}", params={"position": 1}), 404,
            "NotFound", "code")
    refused(api.client.get("/replay/villages/nowhere", params={"position": 1}), 404,
            "NotFound", "code")
    refused(api.client.get(f"/replay/villages/{COUNTY}", params={"position": 1}), 422,
            "InvalidInput", "code")


def test_replay_of_an_aggregate_at_a_position_and_on_a_business_date(api: Any,
                                                                    money: Money) -> None:
    app = api.zhuisu
    inspector = api.as_("inspector", COUNTY)
    applied_at = next(n.id for n in app.recorder.select_notifications(start=1, limit=10**6)
                      if str(n.originator_id) == str(money.household))
    first = ok(inspector.get(f"/replay/aggregates/{money.household}",
                             params={"position": applied_at}))
    assert (first["type"], first["version"], first["state"]["status"]) == (
        "Household", 1, "applied")
    assert [e["type"] for e in first["events"]] == ["Household.Applied"]
    # effective on 2025-03-31: the township account had paid H1 and not yet recovered
    march = ok(inspector.get(f"/replay/aggregates/{money.township_account}",
                             params={"as_of": "2025-03-31"}))
    assert march["effective_state"]["balance_fen"] == 400_000
    assert "FundAccount.Recovered" not in [e["type"] for e in march["events"]]
    assert reads(api) == [("/replay/aggregates/{aggregate_id}", str(money.household)),
                          ("/replay/aggregates/{aggregate_id}", str(money.township_account)),
                          ("/replay/aggregates/{aggregate_id}", str(money.household))]


def test_replay_of_an_aggregate_refusals_name_the_field(api: Any, money: Money) -> None:
    refused(api.as_("inspector", COUNTY_B).get(f"/replay/aggregates/{money.household}",
                                               params={"position": 1}),
            403, "OutsideJurisdiction", "aggregate_id")
    refused(api.client.get(f"/replay/aggregates/{UUID(int=7)}", params={"position": 1}), 404,
            "NotFound", "aggregate_id")
    official = api.zhuisu.official(ACCOUNTANT).id
    refused(api.client.get(f"/replay/aggregates/{official}", params={"as_of": "2025-03-31"}),
            422, "InvalidInput", "mode")
