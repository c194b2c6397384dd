"""Who looked at what: inspectors' and reviewers' reads of households are recorded, for
administrators to page through within their jurisdiction; the record is append-only."""

from __future__ import annotations

from typing import Any

import pytest
from factories import (
    COUNTY,
    COUNTY_B,
    VILLAGE,
    World,
    a_funded_account,
    a_household_through,
    another_county,
)
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError


def entries(api: Any, **params: Any) -> list[dict[str, Any]]:
    r = api.client.get("/access-log", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


@pytest.mark.parametrize("role", ["inspector", "reviewer"])
def test_an_audited_readers_household_reads_are_recorded(api: Any, world: World,
                                                         role: str) -> None:
    h1 = a_household_through(world, 0, "H1")
    h2 = a_household_through(world, 0, "H2")
    reader = api.as_(role, COUNTY, name=f"县纪委 {role}")
    reader.get(f"/households/{h1}", headers={"X-Request-ID": "req-1"})
    reader.get("/households/by-code/H2")
    reader.get(f"/households?village={VILLAGE}&limit=1")

    log = entries(api)
    assert [(e["route"], e["subject_id"]) for e in log] == [
        ("/households/{household_id}", str(h1)),
        ("/households/by-code/{code}", str(h2)),
        ("/households", str(h1)),  # the one household on that page
    ]
    first = log[0]
    assert (first["actor"], first["role"], first["method"], first["subject_kind"],
            first["request_id"]) == (f"县纪委 {role}", role, "GET", "household", "req-1")
    assert first["at"].endswith("+00:00") and len(first["token_id"]) == 32


def test_every_roles_reads_are_recorded_and_reads_of_accounts_too(api: Any,
                                                                  world: World) -> None:
    """Issue 12: officials, fund officers and administrators read personal and money data
    as much as inspectors do; every role's reads are recorded, accounts' as households'."""
    hid = a_household_through(world, 0)
    account = a_funded_account(world)
    roles = [("village_official", VILLAGE), ("county_approver", COUNTY),
             ("fund_officer", COUNTY), ("admin", None)]
    for role, region in roles:
        assert api.as_(role, region).get(f"/households/{hid}").status_code == 200
    assert api.as_("inspector", COUNTY).get(f"/accounts/{account}").status_code == 200
    assert [(e["role"], e["subject_kind"], e["subject_id"]) for e in entries(api)] == [
        *[(role, "household", str(hid)) for role, _ in roles],
        ("inspector", "account", str(account))]


def test_a_refused_read_shows_nothing_and_records_nothing(api: Any, world: World) -> None:
    another_county(world)
    hid = a_household_through(world, 0)
    assert api.as_("inspector", COUNTY_B).get(f"/households/{hid}").status_code == 403
    assert entries(api) == []


def test_the_access_log_pages_and_filters(api: Any, world: World) -> None:
    hid = a_household_through(world, 0)
    inspector = api.as_("inspector", COUNTY, name="inspector")
    reviewer = api.as_("reviewer", COUNTY, name="reviewer")
    for _ in range(3):
        inspector.get(f"/households/{hid}")
        reviewer.get(f"/households/{hid}")

    first = api.client.get("/access-log", params={"limit": 4}).json()
    assert len(first["items"]) == 4 and first["next_after"] == first["items"][-1]["id"]
    rest = api.client.get("/access-log", params={"limit": 4, "after": first["next_after"]}).json()
    assert len(rest["items"]) == 2 and rest["next_after"] is None
    assert [e["actor"] for e in entries(api, role="reviewer")] == ["reviewer"] * 3
    assert len(entries(api, subject_id=str(hid))) == 6
    assert entries(api, subject_id="nobody") == []


def test_an_administrator_sees_reads_within_its_own_jurisdiction_only(api: Any,
                                                                      world: World) -> None:
    another_county(world)
    hid = a_household_through(world, 0)
    api.as_("inspector", COUNTY).get(f"/households/{hid}")
    assert len(api.as_("admin", COUNTY).get("/access-log").json()["items"]) == 1
    assert api.as_("admin", COUNTY_B).get("/access-log").json()["items"] == []


def test_the_access_log_is_append_only(api: Any, world: World) -> None:
    hid = a_household_through(world, 0)
    api.as_("reviewer", COUNTY).get(f"/households/{hid}")
    engine = api.client.app.state.access_log.engine
    for statement in ("UPDATE api_access_log SET actor = 'someone else'",
                      "DELETE FROM api_access_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert [e["actor"] for e in entries(api)] == [f"reviewer@{COUNTY}"]
