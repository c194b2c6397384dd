"""Issue 12 item 16: a case names only what lies in its region, on dates a record can
have, under a number that can name a file.

Evidence (households, payments, events, accounts, officials, flags) of a sibling village is
refused naming the field and the rule ``EvidenceOutsideCase``; so is a flag the case is
opened from.  Dates outside 2013-01-01 … record date + 1 day (deadlines: + 5 years) and a
``case_no`` outside letters, digits, '-', '_' and 〔〕 are refused naming the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import pytest
from api_support import refused
from factories import (
    COUNTY,
    OTHER_VILLAGE,
    TOWNSHIP,
    VILLAGE,
    World,
    a_funded_account,
    a_registered_household,
    household_payment,
    official,
    official_id,
    removal,
    run,
)

from domain.errors import InvalidInput

pytestmark = pytest.mark.usefixtures("close_read_models")

D = dt.date
CASE = "镇纪〔2025〕3号"
URL = f"/cases/{quote(CASE, safe='')}"


def case_body(**kw: Any) -> dict[str, Any]:
    return {"case_no": CASE, "case_type": "false_claim", "title": "坪地村产业补助虚报冒领",
            "region_code": VILLAGE, "effective_date": "2025-05-01",
            "incident_date": "2025-03-01", **kw}


def position_of(app: Any, aggregate_id: Any, version: int = 1) -> int:
    return next(n.id for n in app.recorder.select_notifications(start=1, limit=10**6)
                if str(n.originator_id) == str(aggregate_id) and n.originator_version == version)


@pytest.fixture
def two_villages(world: World) -> dict[str, Any]:
    """A paid, then backdated-removed household in each village (a PAY_REMOVED flag each)."""
    account = a_funded_account(world, TOWNSHIP)
    out: dict[str, Any] = {"account": str(account)}
    for name, village, code in (("here", VILLAGE, "H1"), ("there", OTHER_VILLAGE, "H9")):
        hid = a_registered_household(world, code, village=village)
        paid = household_payment(hid, 10_000, day=D(2025, 3, 1))
        run(world, "FundAccount.Disbursed", account, paid)
        paid_at = position_of(world.app, account, world.app.repository.get(account).version)
        run(world, "Household.RemovedFromRegister", hid, removal(D(2025, 2, 1)))
        out[name] = {"household": str(hid), "payment": paid["movement_id"],
                     "flag": f"PAY_REMOVED:{paid['movement_id']}",
                     "event": position_of(world.app, hid), "payment_event": paid_at}
    return out


def evidence(kind: str, ref: Any, **kw: Any) -> dict[str, Any]:
    return {"kind": kind, "ref": ref, **kw}


def test_evidence_of_a_sibling_village_is_refused_naming_the_field_and_the_rule(
        api: Any, world: World, two_villages: dict[str, Any]) -> None:
    there, account = two_villages["there"], two_villages["account"]
    inspector = api.as_("inspector", COUNTY)
    outside = [
        evidence("household", there["household"]),
        evidence("payment", there["payment"], account_id=account),  # paid to H9's village
        evidence("event", there["event"]),  # H9's application
        evidence("event", there["payment_event"]),  # the payment to H9
        evidence("flag", there["flag"]),
        evidence("official", official_id(official("accountant", OTHER_VILLAGE))),
        evidence("account", account),  # the township's account lies above the village
    ]
    for item in outside:
        body = refused(inspector.post("/cases", json=case_body(evidence=[
            evidence("document", "镇纪〔2025〕函1号"), item])),
            422, "EvidenceOutsideCase", "evidence[1].ref")
        assert "outside the case's region" in body["detail"], body
    refused(inspector.post("/cases", json=case_body(flag_ids=[there["flag"]])),
            422, "EvidenceOutsideCase", "flag_ids[0]")
    refused(inspector.post("/cases", json=case_body(evidence=[
        evidence("household", official_id("nobody"))])), 404, "NotFound", "evidence[0].ref")
    refused(inspector.post("/cases", json=case_body(evidence=[
        evidence("payment", there["payment"], account_id=official_id("nobody"))])),
        404, "NotFound", "evidence[0].account_id")
    assert inspector.get(URL).status_code == 404  # nothing was opened

    # the same references a step links later are refused the same way
    assert inspector.post("/cases", json=case_body()).status_code == 201
    for item in outside:
        refused(inspector.post(f"{URL}/steps", json={
            "step": "link_evidence", "effective_date": "2025-05-02", "items": [item]}),
            422, "EvidenceOutsideCase", "items[0].ref")
    assert inspector.get(URL).json()["evidence"] == []


def test_evidence_within_the_village_is_accepted(api: Any, world: World,
                                                 two_villages: dict[str, Any]) -> None:
    here, account = two_villages["here"], two_villages["account"]
    inspector = api.as_("inspector", COUNTY)
    inside = [evidence("household", here["household"]),
              evidence("payment", here["payment"], account_id=account),
              evidence("event", here["event"]), evidence("event", here["payment_event"]),
              evidence("flag", here["flag"]),
              evidence("official", official_id(official("accountant", VILLAGE))),
              evidence("document", "镇纪〔2025〕函1号")]
    r = inspector.post("/cases", json=case_body(evidence=inside, flag_ids=[here["flag"]]))
    assert r.status_code == 201, r.text
    assert len(inspector.get(URL).json()["evidence"]) == len(inside)
    # a township case takes the evidence of both its villages
    r = inspector.post("/cases", json=case_body(case_no="镇纪〔2025〕4号", region_code=TOWNSHIP,
                                                 evidence=[evidence("household", h["household"])
                                                           for h in (here, two_villages["there"])]))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("field,value", [
    ("effective_date", "0001-01-01"), ("effective_date", "9999-12-31"),
    ("effective_date", "2012-12-31"), ("incident_date", "0001-01-01"),
    ("incident_date", "9999-12-31")])
def test_case_dates_outside_the_window_are_refused(api: Any, world: World, field: str,
                                                   value: str) -> None:
    inspector = api.as_("inspector", COUNTY)
    refused(inspector.post("/cases", json=case_body(**{field: value})), 422, "InvalidInput",
            field)
    assert inspector.get(URL).status_code == 404


def test_step_dates_and_deadlines_outside_their_windows_are_refused(api: Any,
                                                                    world: World) -> None:
    inspector = api.as_("inspector", COUNTY)
    assert inspector.post("/cases", json=case_body()).status_code == 201
    item = {"step": "add_rectification_item", "effective_date": "2025-05-02", "item_id": "R1",
            "problem": "退回虚报资金", "deadline": "2025-06-30", "unit_code": f"U{VILLAGE}",
            "official_id": official_id(official("party_secretary", VILLAGE))}
    refused(inspector.post(f"{URL}/steps", json={**item, "deadline": "9999-12-31"}),
            422, "InvalidInput", "deadline")
    refused(inspector.post(f"{URL}/steps", json={**item, "effective_date": "9999-12-31"}),
            422, "InvalidInput", "effective_date")
    refused(inspector.post(f"{URL}/steps", json={
        "step": "record_finding", "effective_date": "9999-12-31", "finding_id": "F1",
        "text": "虚报"}), 422, "InvalidInput", "effective_date")
    # a deadline a few years ahead is a plan, not a fact: accepted
    later = (dt.date.today() + dt.timedelta(days=3 * 365)).isoformat()
    r = inspector.post(f"{URL}/steps", json={**item, "deadline": later})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("case_no", ["..\\..\\x", "../x", "a b", "x.y", "K" * 65, "案\t号", ""])
def test_a_case_number_outside_the_pattern_is_refused(api: Any, world: World,
                                                      case_no: str) -> None:
    refused(api.as_("inspector", COUNTY).post("/cases", json=case_body(case_no=case_no)),
            422, "InvalidInput", "case_no")


@pytest.mark.parametrize("case_no", ["镇纪〔2025〕3号", "K-2025_3", "追纪〔2025〕P001号", "K" * 64])
def test_case_numbers_of_the_pattern_are_accepted(api: Any, world: World, case_no: str) -> None:
    r = api.as_("inspector", COUNTY).post("/cases", json=case_body(case_no=case_no))
    assert r.status_code == 201, r.text


def test_the_domain_refuses_a_case_number_outside_the_pattern_on_every_way_in(
        world: World) -> None:
    with pytest.raises(InvalidInput) as bad:
        world.app.open_case(case_no="..\\..\\x", case_type="other", title="t",
                            region_code=VILLAGE, effective_date="2025-05-01",
                            recorded_by="test")
    assert bad.value.field == "case_no"
