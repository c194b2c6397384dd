"""A township's year over HTTP, played with the tokens of the people who do it.

Everything after the county's set-up (regions, officials with keys, accounts: the ``world``
fixture) goes through the API: a village official, the township and the county sign and
submit the identification of three households; the county fund officer receives money,
allocates it to the township and pays the households monthly, retrying with the same
``Idempotency-Key``; one household is removed after a payment dated after its removal; the
inspector finds the red flag with the signers of that payment, opens a case and orders the
money back; the fund officer records its recovery; one household exits.  Along the way
every role outside its powers or its county is refused, and at the end the books, the
register and the access log agree with what happened, to the fen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from access.roles import STEPS_BY_ROLE
from api_support import refused
from domain.household import Household
from factories import (
    COUNTY,
    TOWNSHIP,
    VILLAGE,
    World,
    allocation,
    another_county,
    application,
    exit_steps,
    household_payment,
    identification_steps,
    receipt,
    recovery,
    removal,
    sign,
)

D = dt.date
CASE = "县纪〔2025〕7号"


def test_a_township_year_over_http(api: Any, world: World) -> None:
    callers = {
        "village_official": api.as_("village_official", VILLAGE),
        "township_reviewer": api.as_("township_reviewer", TOWNSHIP),
        "county_approver": api.as_("county_approver", COUNTY),
        "fund_officer": api.as_("fund_officer", COUNTY),
    }
    inspector = api.as_("inspector", COUNTY, name="县纪委 王")
    reviewer = api.as_("reviewer", COUNTY, name="审计 李")
    county_b = another_county(world)
    outsiders = [api.as_("fund_officer", county_b), api.as_("inspector", county_b)]

    def submitter(step: str) -> Any:
        [role] = [r.value for r, steps in STEPS_BY_ROLE.items() if step in steps]
        return callers[role]

    def submit(step: str, subject: Any, content: dict[str, Any], key: str | None = None,
               status: int = 201) -> dict[str, Any]:
        command = sign(world, step, subject, content)
        headers = {"Idempotency-Key": key} if key else None
        r = submitter(step).post("/commands", json=command, headers=headers)
        assert r.status_code == status, (step, r.text)
        return command

    def events() -> int:
        return api.client.get("/health").json()["events"]

    # January: three households identified (精准识别) and registered (建档立卡)
    households = {code: Household.create_id(code) for code in ("H1", "H2", "H3")}
    for code, hid in households.items():
        submit("Household.Applied", hid, application(world, code))
        for step, content in identification_steps():
            submit(step, hid, content)
    assert all(reviewer.get(f"/households/{hid}").json()["status"] == "registered"
               for hid in households.values())

    # funds: received by the county, allocated down to the township (资金下达)
    county_account, township_account = world.account(COUNTY), world.account(TOWNSHIP)
    submit("FundAccount.Received", county_account, receipt(5_000_000), key="rcv-2025-1")
    submit("FundAccount.Allocated", county_account, allocation(township_account, 3_000_000),
           key="alloc-2025-1")

    # monthly payments to each household (发放到户); March's first one retried
    paid, sent = 0, {}
    for month in (3, 4, 5):
        for code, hid in households.items():
            key = f"pay-{code}-2025-{month:02d}"
            sent[key] = submit("FundAccount.Disbursed", township_account,
                               household_payment(hid, 50_000, day=D(2025, month, 10)), key=key)
            paid += 50_000
    before = events()
    first = callers["fund_officer"].post("/commands", json=sent["pay-H1-2025-03"],
                                         headers={"Idempotency-Key": "pay-H1-2025-03"})
    assert first.status_code == 201 and first.headers["Idempotent-Replayed"] == "true"
    refused(callers["fund_officer"].post(  # the key of another request
        "/commands", json=sent["pay-H2-2025-03"], headers={"Idempotency-Key": "pay-H1-2025-03"}),
        422, "IdempotencyKeyReused", "Idempotency-Key")
    assert events() == before  # the retry paid nothing

    # June: H3 paid on the 10th, then removed (清退) with effect from the 1st
    june = submit("FundAccount.Disbursed", township_account,
                  household_payment(households["H3"], 80_000, day=D(2025, 6, 10)),
                  key="pay-H3-2025-06")
    paid += 80_000
    submit("Household.RemovedFromRegister", households["H3"], removal(D(2025, 6, 1)))

    # refusals on the way: powers and jurisdiction
    refused(reviewer.post("/commands", json=sign(
        world, "FundAccount.Disbursed", township_account,
        household_payment(households["H1"], 1, day=D(2025, 6, 20)))),
        403, "RoleNotPermitted")
    refused(inspector.post("/commands", json=sign(
        world, "FundAccount.Disbursed", township_account,
        household_payment(households["H1"], 1, day=D(2025, 6, 20)))),
        403, "RoleNotPermitted")
    refused(outsiders[0].post("/commands", json=sign(
        world, "FundAccount.Disbursed", township_account,
        household_payment(households["H1"], 1, day=D(2025, 6, 20)))),
        403, "OutsideJurisdiction")
    refused(outsiders[1].get(f"/households/{households['H1']}"), 403, "OutsideJurisdiction")
    refused(callers["fund_officer"].post("/cases", json={}), 403, "RoleNotPermitted")
    assert events() == before + 2  # only June's payment and the removal were stored

    # the inspector's red flag: the payment to a removed household, with its signers
    [flag] = inspector.get("/flags", params={"rule_id": "PAY_REMOVED"}).json()["items"]
    assert flag["subject_id"] == june["content"]["movement_id"]
    assert set(flag["signers"]) == {s["official_id"] for s in june["signatures"]}
    assert outsiders[1].get("/flags").json()["items"] == []

    # 立案, and recovery charged to the signers (谁签字谁追回)
    r = inspector.post("/cases", json={
        "case_no": CASE, "case_type": "false_claim", "title": "清退户仍获发放",
        "region_code": VILLAGE, "effective_date": "2025-07-01", "incident_date": "2025-06-10",
        "subjects": [{"official_id": oid, "reason": "签字发放"} for oid in flag["signers"]]},
        headers={"Idempotency-Key": "case-7"})
    assert r.status_code == 201, r.text
    order = {"order_id": "追7-1", "effective_date": "2025-07-02", "reason": "向清退户发放",
             "payments": [{"account_id": str(township_account),
                           "movement_id": june["content"]["movement_id"], "amount_fen": 80_000}]}
    r = inspector.post(f"/cases/{CASE}/recovery-orders", json=order)
    assert r.status_code == 201, r.text
    owed = reviewer.get("/recovery/outstanding", params={"by": "official"}).json()
    assert owed["total"] == {"ordered_fen": 80_000, "recovered_fen": 0,
                             "outstanding_fen": 80_000}
    assert {e["official_id"] for e in owed["items"]} == set(flag["signers"])
    submit("FundAccount.Recovered", township_account,
           recovery(june["content"]["movement_id"], 80_000, day=D(2025, 8, 1)),
           key="recover-H3-06")
    owed = reviewer.get("/recovery/outstanding", params={"by": "official"}).json()
    assert owed["total"] == {"ordered_fen": 80_000, "recovered_fen": 80_000,
                             "outstanding_fen": 0}

    # November: H1 exits (脱贫退出)
    for step, content in exit_steps("H1"):
        submit(step, households["H1"], content)

    # the year's end: books, register and the watchers' trail agree
    account = reviewer.get(f"/accounts/{township_account}").json()
    assert account["balance_fen"] == 3_000_000 - paid + 80_000
    village = reviewer.get(f"/villages/{VILLAGE}").json()
    assert {k: village["households"][k] for k in ("registered", "exited", "removed")} == {
        "registered": 1, "exited": 1, "removed": 1}
    statuses = {code: reviewer.get(f"/households/{hid}").json()["status"]
                for code, hid in households.items()}
    assert statuses == {"H1": "exited", "H2": "registered", "H3": "removed"}
    log = api.client.get("/access-log", params={"limit": 500}).json()["items"]
    seen = {(e["role"], e["route"]) for e in log}
    assert ("reviewer", "/households/{household_id}") in seen
    assert ("inspector", "/flags") in seen
