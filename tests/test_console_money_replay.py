"""The console's 资金流向 and 回放 screens (console/screens/money.py, replay.py), through the
real sign-in form, on both stores: each page answers a person in jurisdiction with the
figures the HTTP API gives for the same question, refuses a person of the county beside
with a Chinese page (403), writes its reads to the access log, and names no other host.

The money (as tests/test_api_traces.py, hand-computed): the county account C receives
1,000,000 fen and allocates 600,000 to the township account T; T pays household H1
200,000 on 2025-03-01 and recovers 50,000 of it on 2025-07-01.  So H1 keeps 150,000, T
holds 450,000, C 400,000; on business date 2025-05-01 T held 400,000.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pyotp
import pytest
from factories import (
    COUNTY,
    COUNTY_B,
    TOWNSHIP,
    VILLAGE,
    World,
    a_registered_household,
    allocation,
    another_county,
    household_payment,
    receipt,
    recovery,
    run,
)
from fastapi.testclient import TestClient

from console.format import yuan
from console.web import PURPOSE_ZH

pytestmark = pytest.mark.usefixtures("close_read_models")

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
RECOVERY_DOC = "镇财追〔2025〕1号"
LINKS = re.compile(r'(?:src|href|action|hx-get|hx-post)\s*=\s*"([^"]*)"')


@dataclass
class Money:
    household: UUID
    county_account: UUID
    township_account: UUID
    receipt_id: str
    allocation_id: str
    payment_id: str


@pytest.fixture
def money(world: World) -> Money:
    another_county(world)
    h1 = a_registered_household(world, "H1")
    c, t = world.account(COUNTY), world.account(TOWNSHIP)
    r, a = receipt(1_000_000), allocation(t, 600_000)
    p = household_payment(h1, 200_000, day=dt.date(2025, 3, 1))
    run(world, "FundAccount.Received", c, r)
    run(world, "FundAccount.Allocated", c, a)
    run(world, "FundAccount.Disbursed", t, p)
    run(world, "FundAccount.Recovered", t, recovery(p["movement_id"], 50_000,
                                                    day=dt.date(2025, 7, 1)))
    return Money(h1, c, t, r["movement_id"], a["movement_id"], p["movement_id"])


# signing in through the form ----------------------------------------------------------------
def person(api: Any, username: str, role: str, region: str) -> TestClient:
    """A browser of its own, signed in through GET and POST /console/login."""
    accounts = api.client.app.state.accounts
    new = accounts.create(username, "测试", role, api.zhuisu.region(region),
                          created_by="test", now=NOW)
    browser = TestClient(api.client.app)
    form = browser.get("/console/login")
    assert form.status_code == 200
    [token] = CSRF_FIELD.findall(form.text)
    signed = browser.post("/console/login", follow_redirects=False, data={
        "username": username, "password": new.password, "csrf": token, "next": "/console/money",
        "code": pyotp.TOTP(new.totp_secret).now()})
    assert signed.status_code == 303, signed.text
    assert signed.headers["location"] == "/console/money"
    return browser


def shown(browser: TestClient, url: str, status: int = 200) -> str:
    """The page's HTML, checked: its status and that it names no other host."""
    response = browser.get(url)
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    local(response.text)
    return response.text


def local(page: str) -> None:
    for link in LINKS.findall(page):
        link = html.unescape(link)
        assert link.startswith(("/", "#", "?", "javascript:history.back()")) and \
            not link.startswith("//"), link
    assert not re.search(r"https?://|//[a-z0-9-]+\.[a-z]", page, re.IGNORECASE), \
        re.search(r".{40}(https?://|//[a-z0-9-]+\.[a-z]).{40}", page, re.IGNORECASE | re.DOTALL)


def chart(page: str, element_id: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>',
                      page, re.DOTALL)
    assert found, f"no chart {element_id}"
    return json.loads(found.group(1))


def into(data: dict[str, Any], title_part: str) -> int:
    """Fen flowing into the nodes whose title contains ``title_part``."""
    keys = {n["name"] for n in data["nodes"] if title_part in n["title"]}
    assert all(round(link["value"] * 100) == link["fen"] for link in data["links"])  # 元, fen
    return sum(link["fen"] for link in data["links"] if link["target"] in keys)


def out_of_sources(data: dict[str, Any]) -> int:
    sources = {n["name"] for n in data["nodes"] if n["depth"] == 0}
    return sum(link["fen"] for link in data["links"] if link["source"] in sources)


def log_rows(api: Any, route: str) -> set[tuple[str, str]]:
    """(subject kind, subject id) of the access log's rows for one console route."""
    items = api.client.get("/access-log", params={"limit": 1000}).json()["items"]
    return {(e["subject_kind"], e["subject_id"]) for e in items if e["route"] == route}


def api_ok(api: Any, url: str, **params: Any) -> Any:
    response = api.client.get(url, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# 资金流向 ---------------------------------------------------------------------------------
def test_the_money_page_shows_the_accounts_and_totals_the_api_gives(api: Any,
                                                                   money: Money) -> None:
    officer = person(api, "officer-c", "fund_officer", COUNTY)
    page = shown(officer, "/console/money")
    summary = api_ok(api, "/balances/summary", region=COUNTY)["total"]
    listed = api_ok(api, "/balances", region=COUNTY)["items"]
    assert {a["account_id"] for a in listed} == {str(money.county_account),
                                                  str(money.township_account)}
    for a in listed:
        assert f'href="/console/money/accounts/{a["account_id"]}"' in page
        assert yuan(a["balance_fen"]) in page  # 4,000.00 and 4,500.00
    assert yuan(summary["balance_fen"]) == "8,500.00" and "8,500.00" in page
    assert 'hx-get="/console/money/flow?region=' + COUNTY in page
    assert log_rows(api, "/console/money") == {
        ("region", COUNTY), ("account", str(money.county_account)),
        ("account", str(money.township_account))}


def test_the_flow_diagram_adds_up_to_what_the_api_traces_down(api: Any, money: Money) -> None:
    officer = person(api, "officer-f", "fund_officer", COUNTY)
    page = shown(officer, f"/console/money/flow?region={COUNTY}")
    down = api_ok(api, f"/traces/down/{money.receipt_id}")
    data = chart(page, "money-flow-data")
    assert out_of_sources(data) == down["amount_fen"] == 1_000_000
    assert into(data, "结余") == down["held_fen"] == 850_000
    village = api.zhuisu.region(VILLAGE)
    assert into(data, f"{village.name} {VILLAGE}") == down["paid_fen"] == 150_000
    assert into(data, PURPOSE_ZH["hh_industry"]) == 150_000  # the payment's purpose
    for key in ("amount_fen", "paid_fen", "held_fen"):
        assert yuan(down[key]) in page
    # the receipt is listed with its trace, which the officer may open
    assert f"/console/money/trace/{money.receipt_id}?account={money.county_account}" in page
    assert log_rows(api, "/console/money/flow") == {
        ("region", COUNTY), ("account", str(money.county_account))}


def test_an_accounts_movements_are_those_of_get_accounts(api: Any, money: Money) -> None:
    officer = person(api, "officer-a", "fund_officer", COUNTY)
    page = shown(officer, f"/console/money/accounts/{money.township_account}")
    view = api_ok(api, f"/accounts/{money.township_account}")
    assert [e["type"] for e in view["events"]] == [
        "FundAccount.Opened", "FundAccount.AllocationReceived", "FundAccount.Disbursed",
        "FundAccount.Recovered"]
    for e in view["events"][1:]:
        assert yuan(e["fields"]["amount_fen"]) in page  # 6,000.00, 2,000.00, 500.00
    assert yuan(view["balance_fen"]) in page
    assert "农户 H1" in page and "2025-03-01" in page
    assert f"/console/money/trace/{money.payment_id}?account={money.township_account}" in page
    assert log_rows(api, "/console/money/accounts/{account_id}") == {
        ("account", str(money.township_account)), ("household", str(money.household))}


def test_a_trace_shows_where_money_came_from_and_went_as_the_api(api: Any,
                                                                  money: Money) -> None:
    inspector = person(api, "inspector-t", "inspector", COUNTY)
    # up from the payment: the county's receipt, through the allocation
    page = shown(inspector,
                 f"/console/money/trace/{money.payment_id}?account={money.township_account}")
    up = api_ok(api, f"/traces/up/{money.payment_id}")
    data = chart(page, "trace-up-data")
    assert out_of_sources(data) == up["net_fen"] == 150_000
    assert "1,500.00" in page and "谁签字谁负责" in page and "H1" in page
    chain = api_ok(api, f"/chains/payments/{money.payment_id}")
    for signer in chain["payment"]["signatures"]:
        assert signer["name"] in page
    assert log_rows(api, "/console/money/trace/{movement_id}") == {
        ("account", str(money.township_account)), ("household", str(money.household))}
    # down from the allocation: paid, held, and the payee
    page = shown(inspector, f"/console/money/trace/{money.allocation_id}")
    down = api_ok(api, f"/traces/down/{money.allocation_id}")
    data = chart(page, "trace-down-data")
    assert out_of_sources(data) == down["amount_fen"] == 600_000
    assert into(data, "结余") == down["held_fen"] == 450_000
    assert (yuan(down["paid_fen"]), yuan(down["held_fen"])) == ("1,500.00", "4,500.00")
    assert "1,500.00" in page and "4,500.00" in page and "农户 H1" in page
    # the form's lookup leads to the same page
    found = inspector.get("/console/money/trace", params={"movement_id": money.receipt_id},
                          follow_redirects=False)
    assert (found.status_code, found.headers["location"]) == (
        303, f"/console/money/trace/{money.receipt_id}")


def test_money_pages_refuse_a_person_of_the_county_beside(api: Any, money: Money) -> None:
    outsider = person(api, "officer-b", "fund_officer", COUNTY_B)
    for url in (f"/console/money?region={COUNTY}", f"/console/money/flow?region={COUNTY}",
                f"/console/money/accounts/{money.township_account}",
                f"/console/money/trace/{money.payment_id}",
                f"/console/money/trace/{money.allocation_id}"):
        page = shown(outsider, url, 403)
        assert "超出您的管辖范围" in page and "OutsideJurisdiction" in page
    # their own county has no money: an empty page, not someone else's
    page = shown(outsider, "/console/money")
    assert "本地区没有资金账户" in page
    assert "尚无资金流入记录" in shown(outsider, "/console/money/flow")
    shown(outsider, "/console/money/trace/no-such-movement", 404)
    items = api.client.get("/access-log", params={"limit": 1000}).json()["items"]
    assert not [e for e in items if e["route"].startswith("/console/money")
                and e["subject_id"] in {str(money.county_account), str(money.township_account),
                                        str(money.household)}]


# 回放 -------------------------------------------------------------------------------------
def test_a_village_replayed_known_effective_and_today(api: Any, money: Money) -> None:
    reviewer = person(api, "reviewer-v", "reviewer", COUNTY)
    page = shown(reviewer, f"/console/replay?kind=village&code={VILLAGE}&as_of=2025-05-01")
    for mode in ("known", "effective", "now"):
        assert (f'hx-get="/console/replay/villages/{VILLAGE}?as_of=2025-05-01&amp;mode={mode}"'
                in page)
    assert page.count('hx-trigger="load"') == 3
    # effective on 2025-05-01: paid, not yet recovered — as GET /replay/villages says
    part = shown(reviewer, f"/console/replay/villages/{VILLAGE}?as_of=2025-05-01&mode=effective")
    then = api_ok(api, f"/replay/villages/{VILLAGE}", as_of="2025-05-01", mode="effective")
    [township] = then["accounts"]
    assert township["balance_fen"] == 400_000 and yuan(township["balance_fen"]) in part
    assert "<html" not in part  # a part, not a page
    # today: what GET /villages and the balances give now
    part = shown(reviewer, f"/console/replay/villages/{VILLAGE}?as_of=2025-05-01&mode=now")
    assert "4,500.00" in part
    assert api_ok(api, f"/villages/{VILLAGE}")["households"]["registered"] == 1
    # as known on 2025-05-01 nothing had been recorded yet (the test's events are recorded
    # today): the part says so, as the API does
    part = shown(reviewer, f"/console/replay/villages/{VILLAGE}?as_of=2025-05-01&mode=known",
                 404)
    assert "NotFound" in part and 'class="card refused"' in part
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    part = shown(reviewer, f"/console/replay/villages/{VILLAGE}?as_of={today}&mode=known")
    assert "4,500.00" in part
    rows = log_rows(api, "/console/replay/villages/{code}")
    assert rows == {("region", VILLAGE), ("account", str(money.township_account))}


def test_an_account_and_a_household_replayed(api: Any, money: Money) -> None:
    inspector = person(api, "inspector-r", "inspector", COUNTY)
    shown(inspector, f"/console/replay?kind=account&account={money.township_account}"
                     "&as_of=2025-05-01")
    part = shown(inspector, f"/console/replay/accounts/{money.township_account}"
                            "?as_of=2025-05-01&mode=effective")
    then = api_ok(api, f"/replay/aggregates/{money.township_account}", as_of="2025-05-01")
    assert then["effective_state"]["balance_fen"] == 400_000
    assert "4,000.00" in part and RECOVERY_DOC not in part  # the recovery is dated later
    part = shown(inspector, f"/console/replay/accounts/{money.township_account}"
                            "?as_of=2025-05-01&mode=now")
    assert "4,500.00" in part and RECOVERY_DOC in part
    assert log_rows(api, "/console/replay/accounts/{account_id}") == {
        ("account", str(money.township_account)), ("household", str(money.household))}
    # a household by its code; effective on 2025-01-22 it was still being identified
    page = shown(inspector, "/console/replay?kind=household&household=H1&as_of=2025-01-22")
    assert f"/console/replay/households/{money.household}?as_of=2025-01-22" in page
    part = shown(inspector, f"/console/replay/households/{money.household}"
                            "?as_of=2025-01-22&mode=effective")
    then = api_ok(api, f"/replay/aggregates/{money.household}", as_of="2025-01-22")
    assert then["effective_state"]["status"] == "second_notice"
    assert "第二次公示" in part
    part = shown(inspector, f"/console/replay/households/{money.household}"
                            "?as_of=2025-01-22&mode=now")
    assert "在册" in part
    assert log_rows(api, "/console/replay/households/{household_id}") == {
        ("household", str(money.household))}


def test_replay_refuses_a_person_of_the_county_beside(api: Any, money: Money) -> None:
    outsider = person(api, "reviewer-b", "reviewer", COUNTY_B)
    assert "选择对象和日期" in shown(outsider, "/console/replay")
    for url in (f"/console/replay?kind=village&code={VILLAGE}&as_of=2025-05-01",
                f"/console/replay?kind=account&account={money.township_account}",
                "/console/replay?kind=household&household=H1",
                f"/console/replay/villages/{VILLAGE}?as_of=2025-05-01&mode=now",
                f"/console/replay/accounts/{money.township_account}?as_of=2025-05-01&mode=now",
                f"/console/replay/households/{money.household}?as_of=2025-05-01&mode=now"):
        page = shown(outsider, url, 403)
        assert "超出您的管辖范围" in page
    assert shown(outsider, "/console/replay?kind=village&code=nowhere", 404)
    items = api.client.get("/access-log", params={"limit": 1000}).json()["items"]
    assert not [e for e in items if e["route"].startswith("/console/replay")
                and e["subject_kind"] != "sign_in"]


def test_the_screens_scripts_name_no_other_host(api: Any) -> None:
    for path in ("/static/js/money.js", "/static/js/replay.js"):
        response = api.client.get(path)
        assert response.status_code == 200
        assert not re.search(r"https?://|//[a-z0-9-]+\.[a-z]{2}", response.text, re.IGNORECASE)
