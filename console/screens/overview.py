"""总览: a region at a glance — households by status, 三率一度, money 下达 / 拨付 / 发放 and
支出进度, flags per 1,000 households by township (a sortable heat-table), the read models'
lag and the log's integrity."""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from access.reads import Read
from access.roles import Action
from audit import log as audit_log
from audit.errors import NotInLog
from console.web import ConsoleRoute, Person, covers, may, page, read_models, record, zhuisu
from domain.errors import NotFound
from projections import overview, runner
from projections.metrics import metrics

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def home_region(request: Request, person: Person, region: str | None) -> Any:
    """The region a screen shows: ``region`` if asked (and within the person's jurisdiction),
    else the person's own; a person of every region starts at the first county."""
    app = zhuisu(request)
    code = region or person.account.region_code
    if code is None:
        from sqlalchemy import select

        from projections import register as reg
        with read_models(request).connect() as conn:
            code = conn.execute(select(reg.regions.c.code).where(reg.regions.c.level == "county")
                                .order_by(reg.regions.c.code).limit(1)).scalar()
        if code is None:
            raise NotFound("the store holds no county yet", field="region")
    found = app.region(code, "region")
    covers(person, found.path, f"地区 {code}", "region")
    return found


def integrity(request: Request) -> dict[str, Any]:
    """The log's state for the screen: the latest checkpoint, the tree, any alarm."""
    store = request.app.state.audit
    out: dict[str, Any] = {"alarm": None, "checkpoint": None}
    try:
        cp = audit_log.get_checkpoint(store)
        out["checkpoint"] = {"id": cp.id, "size": cp.checkpoint.size, "time": cp.checkpoint.time}
    except NotInLog:
        pass
    try:
        from audit import alarm  # the server's own sweep raises it (issue 12)

        out["alarm"] = alarm.current_alarm(store)
    except ImportError:
        pass
    return out


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, person: Person, region: str | None = None,
                  year: int | None = None) -> HTMLResponse:
    may(person, Action.READ)
    found = home_region(request, person, region)
    db = read_models(request)
    year = year or dt.date.today().year - 1
    lag = runner.lag(zhuisu(request))
    head = max((entry["position"] for entry in lag.values()), default=0)
    summary = _summary(str(db.url), head, found.code, year, db)
    record(request, person, [Read("region_summary", found.code, dict(found.path))])
    return page(request, "overview.html", person, region=found, year=year, lag=lag,
                integrity=integrity(request), **summary)


_SUMMARIES: OrderedDict[tuple[str, int, str, int], dict[str, Any]] = OrderedDict()
_KEPT = 64
_lock = threading.Lock()


def _summary(url: str, head: int, code: str, year: int, db: Any) -> dict[str, Any]:
    """The region's figures as of log position ``head``: computed once per position (the
    read models change only when the log grows), kept for the last ``_KEPT`` questions."""
    key = (url, head, code, year)
    with _lock:
        if key in _SUMMARIES:
            _SUMMARIES.move_to_end(key)
            return _SUMMARIES[key]
    try:
        figures = metrics(db, code, year, children=False)
    except NotFound:
        figures = None
    townships = overview.flags_by_township(db, code)
    out = {"counts": overview.status_counts(db, code), "money": overview.money_of(db, code),
           "figures": figures, "townships": townships,
           "top": max([t["per_thousand"] or 0 for t in townships] or [0])}
    with _lock:
        _SUMMARIES[key] = out
        while len(_SUMMARIES) > _KEPT:
            _SUMMARIES.popitem(last=False)
    return out
