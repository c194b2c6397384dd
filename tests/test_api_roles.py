"""Role × jurisdiction (access/roles.py): who may submit which step, read what, administer where.

The world is one county (522625) with a township and two villages; county "B" (522626) is
an empty county beside it, so a token bound to B lies outside everything in the world.
"""

from __future__ import annotations

from typing import Any

import pytest
from api_support import refused
from factories import (
    COUNTY,
    OTHER_VILLAGE,
    TOWNSHIP,
    VILLAGE,
    World,
    a_funded_account,
    a_household_through,
    a_registered_household,
    an_approved_project,
    another_county,
    application,
    household_payment,
    identification_steps,
    official_id,
    sign,
)

from access.roles import PERMISSIONS, STEPS_BY_ROLE, Action, ApiRole
from domain.application import STEPS
from domain.household import Household


@pytest.fixture
def county_b(world: World) -> str:
    return another_county(world)


# the table itself ----------------------------------------------------------------------
def test_every_step_is_submitted_by_exactly_one_role() -> None:
    owners = {step: [r for r, steps in STEPS_BY_ROLE.items() if step in steps] for step in STEPS}
    assert {step: len(roles) for step, roles in owners.items()} == {step: 1 for step in STEPS}
    assert set().union(*STEPS_BY_ROLE.values()) == set(STEPS)


def test_only_submitting_roles_may_submit_and_only_admins_administer() -> None:
    submitters = {r for r in ApiRole if Action.SUBMIT in PERMISSIONS[r]}
    assert submitters == {r for r, steps in STEPS_BY_ROLE.items() if steps}
    assert {r for r in ApiRole if Action.ADMINISTER in PERMISSIONS[r]} == {ApiRole.ADMIN}
    assert {r for r in ApiRole if Action.WRITE_CASES in PERMISSIONS[r]} == {ApiRole.INSPECTOR}
    assert PERMISSIONS[ApiRole.REVIEWER] == {Action.READ}
    assert all(Action.READ in PERMISSIONS[r] for r in ApiRole)


# allowed: each procedure step by its own role, over HTTP ---------------------------------
def test_identification_runs_end_to_end_each_step_by_its_role(api: Any, world: World) -> None:
    village = api.as_("village_official", VILLAGE)
    township = api.as_("township_reviewer", TOWNSHIP)
    county = api.as_("county_approver", COUNTY)
    by_role = {"village_official": village, "township_reviewer": township,
               "county_approver": county}
    hid = Household.create_id("H1")
    r = village.post("/commands", json=sign(world, "Household.Applied", hid,
                                            application(world, "H1")))
    assert r.status_code == 201, r.text
    for step, content in identification_steps():
        [role] = [role for role, steps in STEPS_BY_ROLE.items() if step in steps]
        r = by_role[role.value].post("/commands", json=sign(world, step, hid, content))
        assert r.status_code == 201, (step, r.text)
    assert county.get(f"/households/{hid}").json()["status"] == "registered"


def test_a_county_fund_officer_pays_from_a_township_account_in_the_county(
        api: Any, world: World) -> None:
    hid = a_registered_household(world)
    account = a_funded_account(world, TOWNSHIP, 1_000_000)
    officer = api.as_("fund_officer", COUNTY)
    r = officer.post("/commands", json=sign(world, "FundAccount.Disbursed", account,
                                            household_payment(hid, 30_000)))
    assert r.status_code == 201, r.text
    assert officer.get(f"/accounts/{account}").json()["balance_fen"] == 970_000


@pytest.mark.parametrize("role", ["inspector", "reviewer", "fund_officer", "village_official"])
def test_every_role_reads_within_its_jurisdiction(api: Any, world: World, role: str) -> None:
    hid = a_household_through(world, 0)
    caller = api.as_(role, VILLAGE if role == "village_official" else COUNTY)
    assert caller.get(f"/households/{hid}").status_code == 200
    assert caller.get("/households/by-code/H1").status_code == 200
    assert caller.get("/steps").status_code == 200
    assert caller.get(f"/officials/{official_id(f'accountant@{VILLAGE}')}").status_code == 200


# refused: role ------------------------------------------------------------------------------
@pytest.mark.parametrize("role,why", [("inspector", "writes cases only"),
                                      ("reviewer", "only reads"),
                                      ("admin", "administers")])
def test_roles_that_submit_nothing_are_refused_any_command(api: Any, world: World, role: str,
                                                           why: str) -> None:
    hid = Household.create_id("H1")
    command = sign(world, "Household.Applied", hid, application(world, "H1"))
    for body in (command, {"not": "even a command"}):
        r = api.as_(role, COUNTY).post("/commands", json=body)
        assert why in refused(r, 403, "RoleNotPermitted", "Authorization")["detail"]
    assert api.client.get(f"/households/{hid}").status_code == 404  # nothing was stored


def test_a_village_official_may_not_submit_a_county_approval(api: Any, world: World) -> None:
    hid = a_household_through(world, 5)
    step, content = identification_steps()[5]
    r = api.as_("village_official", VILLAGE).post("/commands", json=sign(world, step, hid, content))
    body = refused(r, 403, "RoleNotPermitted", "step")
    assert "Household.ApprovedByCounty" in body["detail"] and "county_approver" in body["detail"]


def test_a_fund_officer_may_not_submit_a_household_step(api: Any, world: World) -> None:
    hid = Household.create_id("H1")
    r = api.as_("fund_officer", COUNTY).post(
        "/commands", json=sign(world, "Household.Applied", hid, application(world, "H1")))
    refused(r, 403, "RoleNotPermitted", "step")


@pytest.mark.parametrize("role", [r.value for r in ApiRole if r is not ApiRole.ADMIN])
def test_only_an_administrator_administers(api: Any, world: World, role: str) -> None:
    caller = api.as_(role, COUNTY)
    r = caller.post("/regions", json={"code": "522625100003", "name": "新寨村",
                                      "level": "village", "parent_code": TOWNSHIP})
    refused(r, 403, "RoleNotPermitted", "Authorization")
    refused(caller.post("/accounts", json={"region_code": TOWNSHIP, "fund_source": "county"}),
            403, "RoleNotPermitted")
    refused(caller.get("/access-log"), 403, "RoleNotPermitted")


# refused: jurisdiction ------------------------------------------------------------------------
def test_a_county_b_officer_reads_nothing_of_county_a(api: Any, world: World,
                                                      county_b: str) -> None:
    hid = a_household_through(world, 0)
    account = a_funded_account(world, TOWNSHIP, 1_000)
    project = an_approved_project(world)
    b = api.as_("county_approver", county_b)
    for path, field in [(f"/households/{hid}", "household_id"),
                        ("/households/by-code/H1", "code"),
                        (f"/accounts/{account}", "account_id"),
                        (f"/projects/{project}", "project_id"),
                        (f"/officials/{official_id(f'accountant@{VILLAGE}')}", "official_id"),
                        (f"/households?village={VILLAGE}", "village"),
                        (f"/accounts?region={COUNTY}", "region"),
                        (f"/regions/{COUNTY}", "code")]:
        body = refused(b.get(path), 403, "OutsideJurisdiction", field)
        assert f"county {county_b}" in body["detail"]
    # its own lists hold nothing of county A
    assert b.get("/accounts").json()["items"] == []
    assert b.get("/officials").json()["items"] == []
    assert b.get("/projects").json()["items"] == []


def test_a_county_b_officer_writes_nothing_in_county_a(api: Any, world: World,
                                                       county_b: str) -> None:
    hid = a_household_through(world, 5)
    step, content = identification_steps()[5]
    r = api.as_("county_approver", county_b).post("/commands",
                                                  json=sign(world, step, hid, content))
    refused(r, 403, "OutsideJurisdiction", "subject")

    registered = a_registered_household(world, "H2")
    account = a_funded_account(world, TOWNSHIP, 1_000_000)
    r = api.as_("fund_officer", county_b).post(
        "/commands", json=sign(world, "FundAccount.Disbursed", account,
                               household_payment(registered, 30_000)))
    refused(r, 403, "OutsideJurisdiction", "subject")
    assert world.balance(account) == 1_000_000
    assert api.client.get(f"/households/{hid}").json()["status"] == "second_notice"


def test_a_village_official_applies_only_in_its_own_village(api: Any, world: World) -> None:
    hid = Household.create_id("H1")
    r = api.as_("village_official", OTHER_VILLAGE).post(
        "/commands", json=sign(world, "Household.Applied", hid, application(world, "H1")))
    refused(r, 403, "OutsideJurisdiction", "content.village_code")
    hid = a_household_through(world, 0, "H2")
    refused(api.as_("village_official", OTHER_VILLAGE).get(f"/households/{hid}"),
            403, "OutsideJurisdiction", "household_id")


def test_a_county_administrator_administers_only_its_county(api: Any, world: World,
                                                            county_b: str) -> None:
    b_admin = api.as_("admin", county_b)
    r = b_admin.post("/regions", json={"code": "522625100003", "name": "新寨村",
                                       "level": "village", "parent_code": TOWNSHIP})
    refused(r, 403, "OutsideJurisdiction", "parent_code")
    refused(b_admin.post("/accounts", json={"region_code": TOWNSHIP, "fund_source": "county"}),
            403, "OutsideJurisdiction", "region_code")
    r = b_admin.post("/regions", json={"code": "522626100", "name": "城关镇", "level": "township",
                                       "parent_code": county_b})
    assert r.status_code == 201, r.text
    r = b_admin.post(f"/officials/{official_id(f'accountant@{VILLAGE}')}/relatives",
                     json={"id_number": "11010119800101001X", "relation": "spouse"})
    refused(r, 403, "OutsideJurisdiction", "official_id")
