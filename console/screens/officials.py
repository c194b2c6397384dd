"""干部: the officials within the person's jurisdiction, and one official's file — positions
over time, signing keys, everything they signed (谁签字谁负责) and what later became of it,
their share of outstanding recovery (谁签字谁追回), accountability actions and the red flags
that name them.

The same data as the API: ``GET /officials`` (``Directory.officials_within``, the
aggregates), ``GET /officials/{id}`` (``projections.aggregates.official_view``),
``GET /officials/{id}/liability`` (``projections.chains.official_liability``, whose
``later.flagged`` is ``projections.flags.queries.flags_signed_by``),
``GET /recovery/outstanding?by=official`` (``projections.case_queries.outstanding_recovery``)
and ``GET /accountability-actions`` (``projections.case_queries.official_actions``).  The
access log gets the official, each household and flag shown and the cases named.
"""

from __future__ import annotations

import datetime as dt
from itertools import islice
from typing import Annotated, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from access.reads import Read
from access.roles import Action
from console.screens.households import (
    CAUSE_ZH,
    STEP_ZH,
    directory,
    region_label,
    region_labels,
)
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
from domain.errors import InvalidInput, NotFound
from domain.household import Household
from domain.official import Official
from projections import case_queries, chains
from projections.aggregates import official_view

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 50
LIMIT = 50  # each list of an official's file is cut here (counts and sums stay whole)

ACTION_ZH = {"admonition_talk": "诫勉谈话", "criticism": "通报批评", "warning": "警告",
             "serious_warning": "严重警告 / 记过", "demotion": "撤销职务 / 降级",
             "dismissal": "开除", "transfer_to_prosecution": "移送司法机关"}
BASIS_ZH = {"subject": "直接当事人", "oversight": "一案双查（领导责任）"}
CASE_STATUS_ZH = {"open": "办理中", "rectified": "已整改", "closed": "已结案"}
CASE_TYPE_ZH = {"false_claim": "虚报冒领", "diversion": "截留挪用", "favouritism": "优亲厚友",
                "embezzlement": "贪污侵占", "idle_funds": "资金闲置（滞留）",
                "fake_exit": "数字脱贫 / 虚假脱贫", "wrong_identification": "识别不精准",
                "duty_neglect": "失职失责", "other": "其他"}
LATER_ZH = [("households_removed", "签字纳入后被清退的农户"),
            ("exits_relapsed", "签字退出后返贫的农户"),
            ("payments_recovered", "签字发放后被追回的资金"),
            ("payments_reversed", "签字发放后被冲正的资金"),
            ("allocations_reversed", "签字下达后被退回的资金"),
            ("receipts_reversed", "签字收到后被冲正的资金")]
LABELS = {"STEP_ZH": STEP_ZH, "CAUSE_ZH": CAUSE_ZH, "ACTION_ZH": ACTION_ZH, "BASIS_ZH": BASIS_ZH,
          "CASE_STATUS_ZH": CASE_STATUS_ZH, "CASE_TYPE_ZH": CASE_TYPE_ZH, "LATER_ZH": LATER_ZH,
          "LIMIT": LIMIT}
Text = Annotated[str | None, Query(max_length=64)]


def official_path(request: Request, official: Official) -> dict[str, str]:
    """An official's region path: their unit's region (as the API's ``subject_of``)."""
    try:
        return dict(zhuisu(request).region(official.region_code).path)
    except NotFound:
        return {}


def current_positions(official: Official, today: dt.date) -> list[Any]:
    return [p for p in official.positions if p.held_on(today)]


@router.get("/officials", response_class=HTMLResponse)
def officials_page(request: Request, person: Person, region: Text = None,
                   offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> HTMLResponse:
    may(person, Action.READ)
    app = zhuisu(request)
    region = region.strip() if region else None
    if region:
        found = app.region(region, "region")
        covers(person, found.path, f"地区 {region}", "region")
        level, code = found.level.value, found.code
    else:
        found = None
        level, code = person.account.region_level, person.account.region_code
    ids = directory(request).officials_within(level, code)
    chunk = list(islice(ids, offset, offset + PAGE + 1))
    more = len(chunk) > PAGE
    officials = [app.load(Official, oid) for oid in chunk[:PAGE]]
    today = dt.date.today()
    rows, reads = [], []
    for o in officials:
        path = official_path(request, o)
        reads.append(Read("official", str(o.id), path))
        rows.append({"id": str(o.id), "code": o.code, "name": o.name, "unit_code": o.unit_code,
                     "region": region_label(request, o.region_code),
                     "positions": current_positions(o, today),
                     "past": len(o.positions) - len(current_positions(o, today))})
    record(request, person, reads)
    args = {"region": region} if region else {}
    regions = region_labels(request, [p.region_code for o in officials for p in o.positions])
    return page(request, "officials.html", person, officials=rows, region=found, regions=regions,
                scope=region_label(request, code) if code else "全部地区", offset=offset,
                args=args, next_offset=offset + PAGE if more else None,
                prev_offset=max(0, offset - PAGE) if offset else None)


def _date(value: str | None, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput("日期格式应为 YYYY-MM-DD", field=field) from exc


@router.get("/officials/{official_id}", response_class=HTMLResponse)
def official_page(request: Request, person: Person, official_id: str,
                  date_from: Annotated[str | None, Query(alias="from", max_length=10)] = None,
                  date_to: Annotated[str | None, Query(alias="to", max_length=10)] = None
                  ) -> HTMLResponse:
    may(person, Action.READ)
    try:
        oid = UUID(official_id)
    except ValueError as exc:
        raise InvalidInput("干部标识应为 UUID", field="official_id") from exc
    app = zhuisu(request)
    official = app.load(Official, oid, "official_id")
    path = official_path(request, official)
    covers(person, path, f"干部 {official.code}", "official_id")
    start, end = _date(date_from, "from"), _date(date_to, "to")
    if start and end and start > end:
        raise InvalidInput(f"截止日期早于起始日期（{start.isoformat()}）", field="to")
    db = read_models(request)
    view = official_view(official)
    liability = chains.official_liability(db, str(oid), date_from=start, date_to=end,
                                          limit=LIMIT)
    flagged = liability["later"]["flagged"]  # projections.flags.queries.flags_signed_by
    recovery = _recovery(db, person, str(oid))
    actions = case_queries.official_actions(db, str(oid))
    principal = person.account.principal
    actions["actions"] = [a for a in actions["actions"] if principal.covers(a["region_path"])]
    actions["cases"] = [c for c in actions["cases"] if principal.covers(c["region_path"])]

    later = liability["later"]
    shown = [*liability["households_approved"]["items"], *liability["exits_approved"]["items"],
             *[i for name, part in later.items() if name != "flagged" for i in part["items"]]]
    households = _households(request, [i.get("household_id") for i in shown])
    reads = [Read("official", str(oid), path), *(r for r, _ in households.values())]
    reads += [Read("flag", f["flag_id"], f.get("region_path") or {}) for f in flagged["items"]]
    cases = {c["case_id"]: c for c in [*actions["actions"], *actions["cases"]]}
    cases.update({c["case_id"]: c for c in case_queries.case_refs(db, recovery["cases"])}
                 if recovery else {})
    reads += [Read("case", cid, c["region_path"]) for cid, c in cases.items()]
    record(request, person, reads)
    today = dt.date.today()
    regions = region_labels(request, [p["region_code"] for p in view["positions"]])
    return page(request, "official.html", person, official=official, view=view,
                regions=regions, liability=liability, later=later, flagged=flagged,
                recovery=recovery, actions=actions, households=households,
                region=region_label(request, official.region_code), today=today,
                current=current_positions(official, today),
                period={"from": date_from or "", "to": date_to or ""}, **LABELS)


def _recovery(db: Any, person: Person, official_id: str) -> dict[str, Any] | None:
    """The official's line of ``outstanding_recovery(by="official")`` within the person's
    jurisdiction (the cases' regions), as ``GET /recovery/outstanding`` answers it."""
    found = case_queries.outstanding_recovery(db, by="official",
                                              region_code=person.account.region_code)
    return next((e for e in found["items"] if e.get("official_id") == official_id), None)


def _households(request: Request, ids: list[str | None]) -> dict[str, tuple[Read, str]]:
    """id → (the read, the code) of each household named; unknown ids are skipped."""
    app, out = zhuisu(request), {}
    for hid in dict.fromkeys(str(i) for i in ids if i):
        try:
            h = app.repository.get(UUID(hid), deepcopy_from_cache=False)
        except (AggregateNotFoundError, ValueError):
            continue
        if isinstance(h, Household):
            out[hid] = (Read("household", hid, dict(h.region_path)), h.code)
    return out
