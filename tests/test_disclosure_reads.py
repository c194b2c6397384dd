"""Issue 12 item 12: every read of personal or money data, by any role, is in the access log.

The walk goes through every GET route of the OpenAPI document.  Each is either in
``SHOWS`` (it shows personal or money data: households, accounts, projects, officials,
cases, flags, a region's figures, a log record) with the subject kinds a read of it must
record, or in ``SHOWS_NOTHING_PERSONAL`` with the reason; a new route that is in neither
fails here until someone says which it is.  Every route of ``SHOWS`` is read once, by a
token of a role that cycles through all of them, and the access log must hold, for that
very request (by its request id), a row of each expected kind and no subject twice.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from factories import (
    COUNTY,
    TOWNSHIP,
    VILLAGE,
    World,
    a_household_through,
    a_registered_household,
    allocation,
    an_approved_project,
    household_payment,
    key_for,
    official,
    official_id,
    receipt,
    removal,
    run,
)
from sqlalchemy import event

pytestmark = pytest.mark.usefixtures("close_read_models")

D = dt.date
CASE = "镇纪〔2025〕3号"
CASE_URL = f"/cases/{quote(CASE, safe='')}"
ROLES = ["reviewer", "inspector", "county_approver", "fund_officer", "township_reviewer",
         "village_official", "admin"]

# route → why it shows nothing personal and no money (so nothing to record)
SHOWS_NOTHING_PERSONAL = {
    "/health": "whether the store answers",
    "/steps": "the step catalogue",
    "/ids/{kind}/{code}": "an aggregate id derived from a public code",
    "/regions/{code}": "a region's name, path, registered population and children",
    "/projections/lag": "log positions",
    "/log/public-key": "the log's public key",
    "/log/checkpoints": "signed tree heads",
    "/log/checkpoints/{checkpoint_id}": "a signed tree head",
    "/log/export": "signed tree heads and public keys",
    "/log/proofs/consistency": "hashes between two tree heads",
    "/log/verify": "counts, positions and kinds of a mismatch",
    "/access-log": "the record of reads itself (administrators)",
    "/compare/models": "the comparison models' catalogue and thresholds",
    "/registers": "register snapshots: department, kind, as-of date, file hash and row counts",
}

Urls = Callable[[dict[str, Any]], list[str]]
# route → (the URLs that read it, the subject kinds each read must record)
SHOWS: dict[str, tuple[Urls, set[str]]] = {
    "/households": (lambda c: [f"/households?village={VILLAGE}"], {"household"}),
    "/households/{household_id}": (lambda c: [f"/households/{c['household']}"],
                                   {"household"}),
    "/households/by-code/{code}": (lambda c: ["/households/by-code/H1"], {"household"}),
    "/households/{household_id}/money": (lambda c: [f"/households/{c['household']}/money"],
                                         {"household"}),
    "/households/{household_id}/chain": (lambda c: [f"/households/{c['household']}/chain"],
                                         {"household"}),
    "/accounts": (lambda c: ["/accounts"], {"account"}),
    "/accounts/{account_id}": (lambda c: [f"/accounts/{c['township']}"],
                               {"account", "household"}),
    "/projects": (lambda c: ["/projects"], {"project"}),
    "/projects/{project_id}": (lambda c: [f"/projects/{c['project']}"],
                               {"project", "household"}),
    "/officials": (lambda c: ["/officials"], {"official"}),
    "/officials/{official_id}": (lambda c: [f"/officials/{c['official']}"], {"official"}),
    "/officials/{official_id}/liability": (
        lambda c: [f"/officials/{c['official']}/liability"], {"official", "household"}),
    "/cases": (lambda c: ["/cases"], {"case"}),
    "/cases/{case_no}": (lambda c: [CASE_URL], {"case"}),
    "/cases/{case_no}/report": (lambda c: [f"{CASE_URL}/report?format=csv"], {"case"}),
    "/recovery/outstanding": (lambda c: [f"/recovery/outstanding?by={by}" for by in (
        "official", "unit", "region", "order")], {"case"}),
    "/rectification-items": (lambda c: ["/rectification-items"], {"case", "official"}),
    "/accountability-actions": (
        lambda c: [f"/accountability-actions?official_id={c['head_official']}"],
        {"case", "official"}),
    "/flags": (lambda c: ["/flags"], {"flag"}),
    "/flags/{flag_id}": (lambda c: [f"/flags/{c['flag']}"], {"flag"}),
    "/traces/down/{movement_id}": (lambda c: [f"/traces/down/{c['allocation_id']}"],
                                   {"account", "household"}),
    "/traces/up/{movement_id}": (lambda c: [f"/traces/up/{c['payment_id']}"],
                                 {"account", "household"}),
    "/chains/events/{log_position}": (lambda c: [f"/chains/events/{c['applied_at']}"],
                                      {"household"}),
    "/chains/payments/{movement_id}": (lambda c: [f"/chains/payments/{c['payment_id']}"],
                                       {"account", "household"}),
    "/villages/{code}": (lambda c: [f"/villages/{VILLAGE}"], {"region", "household"}),
    "/balances": (lambda c: ["/balances"], {"account"}),
    "/balances/summary": (lambda c: [f"/balances/summary?region={COUNTY}"], {"region"}),
    "/replay/villages/{code}": (
        lambda c: [f"/replay/villages/{VILLAGE}?position={c['position']}"],
        {"region", "household", "account"}),
    "/replay/aggregates/{aggregate_id}": (
        lambda c: [f"/replay/aggregates/{c['household']}?position={c['position']}"],
        {"household"}),
    "/metrics/{region_code}": (lambda c: [f"/metrics/{COUNTY}?year=2025"], {"region"}),
    "/reports/county/{code}": (lambda c: [f"/reports/county/{COUNTY}?format=csv&year=2025"],
                               {"region", "case", "flag"}),
    "/log/proofs/inclusion": (lambda c: [f"/log/proofs/inclusion?position={c['applied_at']}"],
                              {"household"}),
    "/exports/{ledger}": (lambda c: [f"/exports/payments?region={COUNTY}&format=csv"],
                          {"region", "account", "household"}),
    # imports (导入): a kept dry run shows the account (or county) it is for
    "/imports/{import_id}": (lambda c: [f"/imports/{c['import']}"], {"account"}),
    "/imports/{import_id}/errors.{form}": (
        lambda c: [f"/imports/{c['import']}/errors.csv"], {"account"}),
    # the signing queue (签字队列): a draft's subject, and the households its content pays
    "/drafts": (lambda c: ["/drafts"], {"account"}),
    "/drafts/{draft_id}": (lambda c: [f"/drafts/{c['draft']}"], {"account", "household"}),
    "/drafts/{draft_id}/message": (lambda c: [
        f"/drafts/{c['draft']}/message?official_id={c['official']}&role=preparer"
        f"&key_id={key_for(official('finance_accountant', TOWNSHIP)).key_id}"],
        {"account", "household"}),
    # 支付令 and 花名册: the account, and the households the page shows
    "/batches": (lambda c: ["/batches"], {"account"}),
    "/batches/{batch_id}": (lambda c: [f"/batches/{c['batch']}"], {"account", "household"}),
    "/batches/{batch_id}/rows/{row}/proof": (
        lambda c: [f"/batches/{c['batch']}/rows/0/proof"], {"account", "household"}),
    "/rosters/{import_id}": (lambda c: [f"/rosters/{c['roster']}"], {"household"}),
    # 大数据比对 and 线索处置: a match names its household, a lead its own subject
    "/compare/matches": (lambda c: ["/compare/matches"], {"household"}),
    "/compare/matches/{match_id}": (lambda c: [f"/compare/matches/{c['match']}"],
                                    {"household"}),
    "/leads": (lambda c: ["/leads"], {"lead"}),
    "/leads/{lead_id}": (lambda c: [f"/leads/{c['lead']}"], {"lead"}),
    "/leads/statistics": (lambda c: [f"/leads/statistics?region={COUNTY}"], {"region"}),
}
# by=payment shows each payment's account and payee as well as its cases
EXTRA: list[tuple[str, Callable[[dict[str, Any]], str], set[str]]] = [
    ("/recovery/outstanding", lambda c: "/recovery/outstanding?by=payment",
     {"case", "account", "household"}),
    # each ledger (台账) records what it shows
    ("/exports/{ledger}", lambda c: f"/exports/flags?region={COUNTY}&format=csv", {"flag"}),
    ("/exports/{ledger}", lambda c: f"/exports/rectification?region={COUNTY}",
     {"case", "official"}),
    ("/exports/{ledger}", lambda c: f"/exports/funds?region={COUNTY}", {"region", "account"}),
    ("/exports/{ledger}", lambda c: "/exports/household?household=H1", {"household"})]


@pytest.fixture(autouse=True)
def _log_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_LOG_KEY_FILE", str(tmp_path / "log-key"))


def get_routes(api: Any) -> set[str]:
    paths = api.client.get("/openapi.json").json()["paths"]
    return {path for path, operations in paths.items() if "get" in operations}


@pytest.fixture
def county(api: Any, world: World) -> dict[str, Any]:
    """A county with one of everything: a paid household (later removed: a red flag), its
    project, the money down from the county, a case with a recovery order, a
    rectification item and an accountability action, and a signed checkpoint."""
    app = world.app
    hid = a_registered_household(world, "H1")
    a_household_through(world, 1, "H2")
    county_account, township = world.account(COUNTY), world.account(TOWNSHIP)
    money = allocation(township, 600_000)
    paid = household_payment(hid, 200_000, day=D(2025, 3, 1))
    run(world, "FundAccount.Received", county_account, receipt(1_000_000))
    run(world, "FundAccount.Allocated", county_account, money)
    run(world, "FundAccount.Disbursed", township, paid)
    project = an_approved_project(world, beneficiaries=[hid])
    run(world, "Household.RemovedFromRegister", hid, removal(D(2025, 2, 1)))  # backdated
    head = official_id(official("head", TOWNSHIP))
    inspector = api.as_("inspector", COUNTY)
    for url, body in [
        ("/cases", {"case_no": CASE, "case_type": "false_claim", "title": "虚报冒领",
                    "region_code": VILLAGE, "effective_date": "2025-05-01",
                    "subjects": [{"official_id": official_id(official("accountant", VILLAGE)),
                                  "reason": "经办虚报"}]}),
        (f"{CASE_URL}/steps", {"step": "add_rectification_item", "effective_date": "2025-05-02",
                               "item_id": "R1", "problem": "退回虚报资金",
                               "deadline": "2025-06-30", "unit_code": f"U{VILLAGE}",
                               "official_id": official_id(official("party_secretary",
                                                                   VILLAGE))}),
        (f"{CASE_URL}/steps", {"step": "impose_accountability", "effective_date": "2025-06-01",
                               "official_id": head, "action": "admonition_talk",
                               "decision_no": "镇纪〔2025〕诫1号", "reason": "监管不力"}),
        (f"{CASE_URL}/recovery-orders", {"order_id": "追1", "effective_date": "2025-05-03",
                                         "reason": "虚报冒领", "payments": [{
                                             "account_id": str(township),
                                             "movement_id": paid["movement_id"]}]}),
    ]:
        r = inspector.post(url, json=body)
        assert r.status_code == 201, (url, r.text)
    from test_batches import order, payment_rows, roster_command, roster_rows

    paid_by_batch = order(world, township, payment_rows([a_registered_household(world, "B1")],
                                                        [1_000]))  # 支付令
    app.execute(paid_by_batch)
    roster = roster_command(world, roster_rows(world, 1))  # 花名册
    app.execute(roster)
    assert api.client.post("/log/checkpoints").status_code == 201
    draft = api.as_("fund_officer", COUNTY).post("/drafts", json={  # 签字队列: not an event
        "step": "FundAccount.Disbursed", "subject": str(township),
        "content": household_payment(hid, 1_000, day=D(2025, 3, 2))})
    assert draft.status_code == 201, draft.text
    kept = api.as_("fund_officer", COUNTY).post(  # 试导入: not an event
        "/imports/payment_list", files={"file": ("发放清册.csv", "户编号,户主姓名,证件号码,银行卡号,"
                                                 "发放金额\r\nH1,H1户主,11010119900307451X,"
                                                 "6217000012345678,100\r\n".encode())},
        data={"account": str(township), "purpose": "hh_industry", "document_no": "镇财支1号",
              "effective_date": "2025-03-02"})
    assert kept.status_code == 200, kept.text
    from test_compare import csv as register_csv
    from test_compare import imported, matches, pay, person, registered

    dead = registered(world, "D1")  # 大数据比对: paid the day after the death register's date
    pay(world, dead, D(2025, 3, 2))
    imported(app, "death", register_csv(["姓名", "证件号码", "死亡日期"],
                                        ["甲", person("D1"), "2025-03-01"]))
    match = matches(app, "COMPARE_PAID_AFTER_DEATH")[0]["match_id"]
    lead = inspector.post("/leads", json={"source_kind": "match", "source_ref": match,
                                          "effective_date": "2025-09-29"})
    assert lead.status_code == 201, lead.text
    applied_at = next(n.id for n in app.recorder.select_notifications(start=1, limit=10**6)
                      if str(n.originator_id) == str(hid))
    return {"household": str(hid), "township": str(township), "project": str(project),
            "official": official_id(official("finance_accountant", TOWNSHIP)),
            "head_official": head, "flag": f"PAY_REMOVED:{paid['movement_id']}",
            "payment_id": paid["movement_id"], "allocation_id": money["movement_id"],
            "applied_at": applied_at, "position": app.recorder.max_notification_id(),
            "draft": draft.json()["id"],
            "batch": paid_by_batch["content"]["batch_id"],
            "roster": roster["content"]["import_id"], "import": kept.json()["import_id"],
            "match": quote(match, safe=""), "lead": lead.json()["lead_id"]}


def test_every_get_route_is_classified(api: Any) -> None:
    """A new GET route says whether it shows personal or money data (and so is recorded)."""
    routes = get_routes(api)
    assert set(SHOWS) & set(SHOWS_NOTHING_PERSONAL) == set()
    assert routes - set(SHOWS) - set(SHOWS_NOTHING_PERSONAL) == set(), "classify these"
    assert set(SHOWS) | set(SHOWS_NOTHING_PERSONAL) <= routes, "gone from the API"


def test_every_read_of_personal_or_money_data_by_any_role_is_recorded(
        api: Any, county: dict[str, Any]) -> None:
    reads = [(route, url, kinds) for route, (urls, kinds) in SHOWS.items()
             for url in urls(county)]
    reads += [(route, url_of(county), kinds) for route, url_of, kinds in EXTRA]
    for i, (route, url, kinds) in enumerate(reads):
        r = api.as_(ROLES[i % len(ROLES)], COUNTY).get(url, headers={"X-Request-ID": f"walk-{i}"})
        assert r.status_code == 200, (ROLES[i % len(ROLES)], url, r.text)

    rows = api.client.get("/access-log", params={"limit": 1000}).json()["items"]
    by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_request[row["request_id"]].append(row)
    missing = []
    for i, (route, url, kinds) in enumerate(reads):
        got = by_request.get(f"walk-{i}", [])
        subjects = [(e["subject_kind"], e["subject_id"]) for e in got]
        assert len(subjects) == len(set(subjects)), (url, subjects)  # one row per subject
        assert {e["route"].replace(":path}", "}") for e in got} <= {route}, (url, got)
        assert {e["role"] for e in got} <= {ROLES[i % len(ROLES)]}, (url, got)
        if not kinds <= {kind for kind, _ in subjects}:
            missing.append((url, sorted(kinds - {kind for kind, _ in subjects})))
    assert missing == []
    assert {e["role"] for e in rows} == set(ROLES)  # every role's reads went in


def test_a_page_of_many_subjects_is_one_insert(api: Any, world: World) -> None:
    for code in ("H1", "H2", "H3", "H4"):
        a_household_through(world, 1, code)
    inserts = []
    engine = api.client.app.state.access_log.engine

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO API_ACCESS_LOG"):
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        r = api.as_("fund_officer", COUNTY).get(f"/villages/{VILLAGE}")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert r.status_code == 200
    assert len(inserts) == 1
    rows = api.client.get("/access-log").json()["items"]
    assert sorted(e["subject_kind"] for e in rows) == ["household"] * 4 + ["region"]


def test_a_read_that_cannot_be_recorded_shows_nothing(api: Any, world: World,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    hid = a_household_through(world, 0, "H1")

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the access log is down")

    monkeypatch.setattr(api.client.app.state.access_log, "record", broken)
    r = api.as_("reviewer", COUNTY).get(f"/households/{hid}")
    assert (r.status_code, r.json()["rule"]) == (500, "InternalError")
    assert "H1" not in r.text
