"""List endpoints: a village's households (by status), accounts, officials and projects of a
region's subtree, page by page."""

from __future__ import annotations

from typing import Any

import pytest

from factories import (
    COUNTY,
    OTHER_VILLAGE,
    PROVINCE,
    TOWNSHIP,
    VILLAGE,
    World,
    a_household_through,
    a_registered_household,
    an_approved_project,
    official,
    official_id,
)


def all_pages(caller: Any, path: str, **params: Any) -> list[dict[str, Any]]:
    items, offset = [], 0
    while offset is not None:
        page = caller.get(path, params={**params, "offset": offset}).json()
        items += page["items"]
        offset = page["next_offset"]
    return items


def test_a_villages_households_page_by_page_in_order_of_application(api: Any,
                                                                    world: World) -> None:
    for code in ("H1", "H2", "H3"):
        a_household_through(world, 0, code)
    for code in ("H4", "H5"):
        a_registered_household(world, code)
    a_household_through(world, 0, "ELSEWHERE", village=OTHER_VILLAGE)

    page = api.client.get("/households", params={"village": VILLAGE, "limit": 2}).json()
    assert [h["code"] for h in page["items"]] == ["H1", "H2"]
    assert (page["limit"], page["offset"], page["next_offset"]) == (2, 0, 2)
    everything = all_pages(api.client, "/households", village=VILLAGE, limit=2)
    assert [h["code"] for h in everything] == ["H1", "H2", "H3", "H4", "H5"]
    assert set(everything[0]) == {"id", "code", "status", "village_code", "members_count",
                                  "main_cause", "version"}

    registered = api.client.get("/households", params={"village": VILLAGE,
                                                       "status": "registered"}).json()
    assert [h["code"] for h in registered["items"]] == ["H4", "H5"]
    assert registered["next_offset"] is None
    assert [h["code"] for h in api.client.get(
        "/households", params={"village": OTHER_VILLAGE}).json()["items"]] == ["ELSEWHERE"]


def test_households_are_listed_by_village_only(api: Any, world: World) -> None:
    r = api.client.get("/households", params={"village": TOWNSHIP})
    assert (r.status_code, r.json()["rule"], r.json()["field"]) == (422, "InvalidInput", "village")
    r = api.client.get("/households", params={"village": "nowhere"})
    assert (r.status_code, r.json()["field"]) == (404, "village")
    r = api.client.get("/households")
    assert (r.status_code, r.json()["field"]) == (422, "village")
    r = api.client.get("/households", params={"village": VILLAGE, "status": "rich"})
    assert (r.status_code, r.json()["field"]) == (422, "status")


def test_accounts_within_a_regions_subtree(api: Any, world: World) -> None:
    def regions(**params: Any) -> list[str]:
        return [a["region_code"] for a in all_pages(api.client, "/accounts", limit=1, **params)]

    assert regions() == [PROVINCE, "5226", COUNTY, TOWNSHIP]
    assert regions(region=COUNTY) == [COUNTY, TOWNSHIP]
    assert regions(region=TOWNSHIP) == [TOWNSHIP]
    assert [a["region_code"] for a in api.as_("fund_officer", COUNTY).get(
        "/accounts").json()["items"]] == [COUNTY, TOWNSHIP]  # default: the token's subtree
    account = api.client.get("/accounts", params={"region": TOWNSHIP}).json()["items"][0]
    assert account["balance_fen"] == 0 and "events" not in account


def test_officials_within_a_regions_subtree(api: Any, world: World) -> None:
    village = all_pages(api.client, "/officials", region=VILLAGE, limit=3)
    assert sorted(o["code"].split("@")[0] for o in village) == [
        "accountant", "director", "first_secretary", "party_secretary"]
    assert len(all_pages(api.client, "/officials", region=TOWNSHIP, limit=5)) == 4 + 2 * 4
    assert "positions" not in village[0]


def test_projects_within_a_regions_subtree(api: Any, world: World) -> None:
    an_approved_project(world, "PRJ1")
    an_approved_project(world, "PRJ2", region=OTHER_VILLAGE)
    assert [p["code"] for p in api.client.get("/projects").json()["items"]] == ["PRJ1", "PRJ2"]
    [only] = api.client.get("/projects", params={"region": OTHER_VILLAGE}).json()["items"]
    assert only["code"] == "PRJ2"
    project = api.client.get(f"/projects/{only['id']}").json()
    assert (project["budget_fen"], project["paid_fen"]) == (500_000, 0)
    assert [e["type"] for e in project["events"]] == ["Project.Approved"]


def test_a_region_shows_its_path_and_children(api: Any, world: World) -> None:
    region = api.client.get(f"/regions/{TOWNSHIP}").json()
    assert region["children"] == [VILLAGE, OTHER_VILLAGE]
    assert region["path"]["county"] == COUNTY and region["level"] == "township"


def test_page_sizes_are_bounded(api: Any, world: World) -> None:
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        r = api.client.get("/accounts", params=params)
        assert (r.status_code, r.json()["field"]) == (422, next(iter(params)))


def test_a_405_allows_every_method_the_path_has_across_routers(api: Any) -> None:
    """``/cases`` is listed (GET) and opened (POST) by different routes."""
    answer = api.client.request("OPTIONS", "/cases")
    assert answer.status_code == 405
    assert answer.json()["rule"] == "MethodNotAllowed"
    assert answer.headers["Allow"] == "GET, POST"
    assert api.client.request("DELETE", "/log/checkpoints").headers["Allow"] == "GET, POST"


@pytest.mark.parametrize("url, field", [
    ("/balances?as_of=0", "as_of"),
    ("/flags?date_to=1735689600", "date_to"),
    ("/flags?date_from=2025-02-30", "date_from"),
    ("/flags?date_from=2025-6-1", "date_from"),
])
def test_a_business_date_is_only_ever_written_yyyy_mm_dd(api: Any, url: str, field: str) -> None:
    """pydantic alone would read a number as seconds since 1970."""
    answer = api.client.get(url)
    assert answer.status_code == 422, answer.text
    assert (answer.json()["rule"], answer.json()["field"]) == ("InvalidInput", field)
    assert api.client.get(url.split("=")[0] + "=2025-06-30").status_code == 200


def test_a_body_date_given_as_a_number_is_refused(api: Any, world: World) -> None:
    """pydantic alone would read 1735689600 as 2025-01-01 (seconds since 1970)."""
    head = official_id(official("head", TOWNSHIP))
    answer = api.client.post(f"/officials/{head}/positions",
                             json={"kind": "township_head", "region_code": TOWNSHIP,
                                   "start": 1735689600})
    assert answer.status_code == 422, answer.text
    assert (answer.json()["rule"], answer.json()["field"]) == ("InvalidInput", "start")
    assert "YYYY-MM-DD" in answer.json()["detail"]
