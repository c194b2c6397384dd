"""回放 (时间回溯): a village, a fund account or a household as of a chosen date, three ways
side by side — 当时所知 (``known``: only what had been recorded by the end of that day,
China Standard Time: what a reviewer saw then), 按业务日期 (``effective``: how things stood
on that business date as known now, backdated entries included) and 今天 (the read models
now) — so that what was entered late, or changed since, stands out.

The page chooses the subject and checks the person's jurisdiction; each of the three
panels is an htmx part (``/console/replay/{villages|accounts|households}/{id}?as_of=…&mode=
known|effective|now``) loaded on its own with an indicator, as a replay of the log costs a
second or two.  The parts answer what ``GET /replay/villages/{code}`` and ``GET
/replay/aggregates/{id}`` answer (``projections.replay``: ``moment``, ``village_as_of``,
``aggregate_as_of``, shaped by ``projections.aggregates.aggregate_view``); today's panel
what ``GET /villages/{code}`` (``queries.village_view``), ``GET /accounts/{id}``
(``account_view``) and the register (``queries.household_view``) show.  What a panel shows
is recorded as those routes record it: the village, each household listed and each
account; the account or household replayed, with the households and projects paid in
the movements listed.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from access.reads import Read
from access.roles import Action
from console.format import CST
from console.screens.money import KIND_ZH, STEP_KIND, Places, account_read, payee_reads
from console.screens.overview import home_region
from console.web import (
    ConsoleRoute,
    Person,
    covers,
    may,
    page,
    read_models,
    record,
    zhuisu,
)
from domain.errors import InvalidInput
from domain.fund_account import FundAccount
from domain.household import Household
from domain.region import Region, RegionLevel
from projections import queries, runner
from projections import replay as rp
from projections.aggregates import (
    account_summary,
    aggregate_id,
    aggregate_view,
    events_page,
)
from projections.queries import balances

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

MODES = {
    "known": ("当时所知", "只计当日 24:00（北京时间）以前已经记录的事件——审核人当时看到的样子。"),
    "effective": ("按业务日期", "按业务日期计到当日，包括事后补录、倒签的事件——现在所知的当日状况。"),
    "now": ("今天", "现在的读模型，作为对照。"),
}
KINDS = {"village": "村", "account": "资金账户", "household": "农户"}
STATUS_ZH = {"applied": "已申请", "appraised": "已评议", "verified": "已核实",
             "first_notice": "第一次公示", "township_reviewed": "乡镇已审核",
             "second_notice": "第二次公示", "registered": "在册", "exit_proposed": "退出提出",
             "exit_appraised": "退出已评议", "exit_confirmed": "农户已确认退出",
             "exit_notice": "退出公示", "exit_verified": "退出已核实", "exited": "已脱贫",
             "removed": "已清退", "rejected": "未纳入", "relapsed": "返贫",
             "in_identification": "识别中"}
STEP_ZH = {
    "Household.Applied": "农户申请", "Household.AppraisedByVillage": "民主评议",
    "Household.VerifiedByVillage": "村级核实", "Household.NoticePosted": "公示",
    "Household.ObjectionRaised": "提出异议", "Household.ObjectionResolved": "异议处理",
    "Household.ReviewedByTownship": "乡镇审核", "Household.ApprovedByCounty": "县级审批",
    "Household.HelperAssigned": "确定帮扶责任人", "Household.AnnualReviewRecorded": "年度评议",
    "Household.ExitProposed": "退出提出", "Household.ExitAppraised": "退出评议",
    "Household.ExitConfirmedByHousehold": "农户确认退出",
    "Household.ExitVerifiedByTownship": "乡镇退出核实",
    "Household.ExitApprovedByCounty": "县级批准退出", "Household.RemovedFromRegister": "清退",
    "Household.Relapsed": "返贫",
    **{step: KIND_ZH[kind] for step, kind in STEP_KIND.items()},
}
SHOWN = 50  # households changed listed in a panel
EVENTS_SHOWN = 25  # events listed in a panel, newest first
VILLAGES_IN_PICKER = 500

Text = Annotated[str | None, Query(max_length=64)]
Mode = Annotated[str, Query(pattern="^(known|effective|now)$")]
AsOf = Annotated[str, Query(min_length=10, max_length=10)]


def _day(value: str | None, field: str = "as_of") -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput("日期格式应为 YYYY-MM-DD", field=field) from exc


def default_day() -> dt.date:
    return dt.date(dt.datetime.now(CST).year - 1, 6, 30)


# choosing the subject -----------------------------------------------------------------------
def a_village(request: Request, person: Person, code: str, field: str = "code") -> Region:
    region = zhuisu(request).region(code, field)
    covers(person, region.path, f"村 {code}", field)
    if region.level is not RegionLevel.VILLAGE:
        raise InvalidInput(f"{code} 是{region.name}（{region.level.value}），不是村", field=field)
    return region


def an_account(request: Request, person: Person, account_id: str,
               field: str = "account") -> FundAccount:
    account = zhuisu(request).load(FundAccount, account_id, field)
    covers(person, account.region_path, f"资金账户 {account_id}", field)
    return account


def a_household(request: Request, person: Person, ref: str,
                field: str = "household") -> Household:
    """A household by its id or its code (户编号)."""
    ref = ref.strip()
    try:
        household_id = UUID(ref)
    except ValueError:
        household_id = UUID(aggregate_id("household", ref)["id"])
    household = zhuisu(request).load(Household, household_id, field)
    covers(person, household.region_path, f"农户 {household.code}", field)
    return household


def villages_under(request: Request, places: Places, root: Region) -> list[dict[str, Any]]:
    """The villages under ``root`` for the picker, by township (at most
    ``VILLAGES_IN_PICKER``; beyond that the picker is a text field)."""
    directory = request.app.state.directory
    directory.catch_up(zhuisu(request))
    groups: list[dict[str, Any]] = []
    count = 0
    stack = [root.code]
    while stack and count <= VILLAGES_IN_PICKER:
        code = stack.pop(0)
        children = directory.children_of(code)
        found = places.region(code)
        if found is not None and found.level is RegionLevel.VILLAGE:
            parent = found.parent_code or ""
            if not groups or groups[-1]["code"] != parent:
                groups.append({"code": parent, "label": places.region_label(parent),
                               "villages": []})
            groups[-1]["villages"].append({"code": code, "label": places.region_label(code)})
            count += 1
        stack[0:0] = sorted(children)
    return groups if count <= VILLAGES_IN_PICKER else []


@router.get("/replay", response_class=HTMLResponse)
def replay_page(request: Request, person: Person, kind: Text = None, code: Text = None,
                account: Text = None, household: Text = None, as_of: Text = None,
                region: Text = None) -> HTMLResponse:
    """Choose a village, an account or a household and a date; the three panels load apart."""
    may(person, Action.READ)
    root = home_region(request, person, region or None)
    places = Places(request)
    day = _day(as_of) or default_day()
    subject = None
    if kind == "village":
        if not code:
            raise InvalidInput("请选择村", field="code")
        village = a_village(request, person, code.strip())
        subject = {"kind": kind, "title": f"村 · {places.region_label(village.code)}",
                   "part": f"/console/replay/villages/{village.code}"}
    elif kind == "account":
        if not account:
            raise InvalidInput("请选择资金账户", field="account")
        found = an_account(request, person, account.strip())
        subject = {"kind": kind, "title": f"资金账户 · {places.account_label(found.id)}",
                   "part": f"/console/replay/accounts/{found.id}",
                   "href": f"/console/money/accounts/{found.id}"}
    elif kind == "household":
        if not household:
            raise InvalidInput("请输入户编号", field="household")
        found_h = a_household(request, person, household)
        subject = {"kind": kind, "title": f"农户 · {found_h.code}"
                                          f"（{places.region_label(found_h.village_code)}）",
                   "part": f"/console/replay/households/{found_h.id}"}
    elif kind:
        raise InvalidInput(f"对象应为 {list(KINDS)} 之一", field="kind")
    db = read_models(request)
    return page(request, "replay.html", person, region=root, day=day, subject=subject,
                kind=kind, code=code, account=account, household=household,
                villages=villages_under(request, places, root),
                accounts=balances(db, region_code=root.code), places=places, MODES=MODES,
                today=dt.datetime.now(CST).date())


# the panels ------------------------------------------------------------------------------------
def _moment(request: Request, day: dt.date, mode: str) -> rp.Moment | None:
    """The past to replay to (None: today, the read models as they are)."""
    if mode == "now":
        return None
    return rp.moment(zhuisu(request), as_of=day, mode=mode)


def _now(request: Request) -> dict[str, Any]:
    head = runner.source_for(zhuisu(request)).max_position()
    return {"mode": "now", "date": None, "position": head, "head": head, "recorded_by": None}


def _late(events: list[dict], day: dt.date) -> list[dict]:
    """Events newest first, each marked when recorded after the end of ``day`` (补录)."""
    end = rp.end_of_day(day)
    out = []
    for e in reversed(events):
        recorded = dt.datetime.fromisoformat(e["recorded_at"])
        f = e.get("fields") or {}
        out.append({**e, "step_zh": STEP_ZH.get(e["type"], e["type"]), "late": recorded > end,
                    "effective_date": f.get("effective_date"),
                    "amount_fen": f.get("amount_fen")})
    return out


@router.get("/replay/villages/{code}", response_class=HTMLResponse)
def village_part(request: Request, person: Person, code: str, as_of: AsOf,
                 mode: Mode) -> HTMLResponse:
    """A village then (``GET /replay/villages/{code}``) or now (``GET /villages/{code}``),
    with the households whose status differs from today's."""
    may(person, Action.READ)
    region = a_village(request, person, code)
    day = _day(as_of)
    db = read_models(request)
    today = queries.village_view(db, code)
    at = _moment(request, day, mode)
    places = Places(request)
    if at is None:
        view, about = today, _now(request)
        accounts = [a for c in dict.fromkeys([code, today["village"]["township"]]) if c
                    for a in balances(db, region_code=c, as_of=dt.datetime.now(CST).date())
                    if a["region_code"] == c]
        changed: list[dict] = []
        later = 0
    else:
        found = rp.village_as_of(zhuisu(request), code, at, field="code")
        view, about, accounts = found["village"], found["as_of"], found["accounts"]
        now_of = {h["household_id"]: h for h in today["register"]}
        then_ids = {h["household_id"] for h in view["register"]}
        changed = [{**h, "now": now_of.get(h["household_id"])} for h in view["register"]
                   if (now_of.get(h["household_id"]) or {}).get("status") != h["status"]]
        later = sum(1 for h in today["register"] if h["household_id"] not in then_ids)
    shown = changed[:SHOWN]
    record(request, person,
           [Read("region", region.code, dict(region.path))]
           + [Read("household", h["household_id"], dict(region.path)) for h in shown]
           + [account_read(a) for a in (places.account(x["account_id"]) for x in accounts)
              if a is not None])
    return page(request, "replay_part.html", person, kind="village", mode=mode,
                mode_title=MODES[mode][0], about=about, view=view, accounts=accounts,
                changed=shown, changed_count=len(changed), later=later, day=day,
                STATUS_ZH=STATUS_ZH, places=places)


@router.get("/replay/accounts/{account_id}", response_class=HTMLResponse)
def account_part(request: Request, person: Person, account_id: str, as_of: AsOf,
                 mode: Mode) -> HTMLResponse:
    """An account then (``GET /replay/aggregates/{id}``) or now (``GET /accounts/{id}``)."""
    may(person, Action.READ)
    account = an_account(request, person, account_id, "account_id")
    day = _day(as_of)
    app = zhuisu(request)
    at = _moment(request, day, mode)
    if at is None:
        state = account_summary(account)
        events = events_page(app, account.id, max(0, account.version - EVENTS_SHOWN),
                             EVENTS_SHOWN)
        db = read_models(request)
        row = next((a for a in balances(db, region_code=account.region_code)
                    if a["account_id"] == str(account.id)), None)
        found = {"as_of": _now(request), "state": state, "effective_state": row,
                 "events": events, "version": account.version}
        count = account.version
    else:
        found = aggregate_view(rp.aggregate_as_of(app, account.id, at))
        count = len(found["events"])
        found["events"] = found["events"][-EVENTS_SHOWN:]
    places = Places(request)
    events = _late(found["events"], day)
    for e in events:
        f = e.get("fields") or {}
        if f.get("payee_id"):
            e["payee"] = places.payee(f.get("payee_kind"), f.get("payee_id"))
    record(request, person, [account_read(account),
                             *payee_reads(places, [e.get("fields") or {} for e in events])])
    return page(request, "replay_part.html", person, kind="account", mode=mode,
                mode_title=MODES[mode][0], about=found["as_of"], found=found, events=events,
                count=count, day=day, places=places, STATUS_ZH=STATUS_ZH)


@router.get("/replay/households/{household_id}", response_class=HTMLResponse)
def household_part(request: Request, person: Person, household_id: str, as_of: AsOf,
                   mode: Mode) -> HTMLResponse:
    """A household then (``GET /replay/aggregates/{id}``) or now (its register entry)."""
    may(person, Action.READ)
    household = a_household(request, person, household_id, "household_id")
    day = _day(as_of)
    app = zhuisu(request)
    at = _moment(request, day, mode)
    if at is None:
        db = read_models(request)
        entry = queries.household_view(db, str(household.id))
        found = {"as_of": _now(request), "effective_state": entry,
                 "events": events_page(app, household.id,
                                       max(0, household.version - EVENTS_SHOWN), EVENTS_SHOWN)}
        count = household.version
    else:
        found = aggregate_view(rp.aggregate_as_of(app, household.id, at))
        count = len(found["events"])
        found["events"] = found["events"][-EVENTS_SHOWN:]
    state = found.get("effective_state") or found.get("state") or {}
    history = [{"effective_date": h.get("effective_date"), "status": h.get("status"),
                "step": STEP_ZH.get(h.get("step") or "", h.get("step"))}
               for h in state.get("history") or []]
    record(request, person, [Read("household", str(household.id),
                                  dict(household.region_path))])
    return page(request, "replay_part.html", person, kind="household", mode=mode,
                mode_title=MODES[mode][0], about=found["as_of"], state=state,
                history=history, events=_late(found["events"], day), count=count, day=day,
                places=Places(request), STATUS_ZH=STATUS_ZH, household=household)
