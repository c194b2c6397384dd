"""资金流向: the accounts of a region with their balances, an account's movements, and where
the money went — a Sankey diagram (ECharts, ``static/js/money.js``) from the region's
money in down to townships, villages and projects, and purposes — and the trace of any
one movement up to the receipts it came from and down to every payee.

What each page shows is what the HTTP API answers for the same question, from the same
query functions:

- ``/console/money``: ``projections.queries.balance_summary`` and ``balances`` (``GET
  /balances/summary``, ``GET /balances``), the region and each account shown recorded as
  those routes record them; the Sankey is loaded apart (``/console/money/flow``, htmx).
- ``/console/money/flow``: the money that entered the region — each receipt (收到) of its
  accounts, and each allocation (下达) into its own-level accounts from an account outside
  it, found in the accounts' events (``projections.aggregates.events_page``, what ``GET
  /accounts/{id}`` pages through) — each traced down by ``projections.chains.money_down``
  (``GET /traces/down/{id}``) and summed into nodes and links in fen: source → the
  township (or the region's own level) of the paying account → village (households, by
  ``projections.directory``) or project → purpose; what is still held and what went
  back are nodes of their own.  The region, the receiving accounts and the projects
  named are recorded.  An allocation in from above is summed here, inside the region,
  though tracing it on its own (the trace page, ``GET /traces/down``) is for those who
  hold the sending account.
- ``/console/money/accounts/{id}``: ``projections.aggregates.account_view`` (``GET
  /accounts/{id}``), the account and each household or project paid on the page recorded.
- ``/console/money/trace/{movement_id}?account=…``: ``chains.money_up`` (``GET
  /traces/up/{id}``) for a payment or an allocation, ``chains.money_down`` for an
  allocation or a receipt, and for a payment its signers and payee
  (``chains.payment_chain``, ``GET /chains/payments/{id}``); the subject is the
  movement's account, as in the API; the account and the payees listed are recorded.

Why one file: the four pages are one screen and share its naming of places (``Places``)
and the Sankey's columns (``Sankey``, ``Down``); ``screens.replay`` borrows the naming.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import Annotated, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from access.errors import OutsideJurisdiction
from access.reads import Read
from access.roles import Action
from console.screens.overview import home_region
from console.web import (
    PURPOSE_ZH,
    ConsoleRoute,
    Person,
    covers,
    may,
    page,
    read_models,
    record,
    redirect,
    zhuisu,
)
from domain.errors import InvalidInput, NotFound
from domain.fund_account import FundAccount
from domain.household import Household
from domain.official import Official
from domain.project import Project
from domain.region import Region
from projections import chains
from projections.aggregates import EVENTS_PAGE, account_view, events_page
from projections.queries import balance_summary, balances
from projections.batches import batches_of_account
from projections.walks import movement

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

FUND_ZH = {"central": "中央", "provincial": "省级", "city": "市级", "county": "县级",
           "departmental": "行业部门", "credit": "信贷"}
KIND_ZH = {"received": "收到", "allocated": "下达", "allocation_received": "上级下达到账",
           "disbursed": "拨付", "recovered": "追回", "reversed": "冲正",
           "allocation_reversed": "下达冲回", "opened": "开户"}
STEP_KIND = {"FundAccount.Opened": "opened", "FundAccount.Received": "received",
             "FundAccount.Allocated": "allocated",
             "FundAccount.AllocationReceived": "allocation_received",
             "FundAccount.Disbursed": "disbursed", "FundAccount.Recovered": "recovered",
             "FundAccount.Reversed": "reversed",
             "FundAccount.AllocationReversed": "allocation_reversed"}
PAYEE_ZH = {"household": "农户", "project": "项目", "supplier": "供应商"}
PAYEES_SHOWN = 100  # payees listed on a trace page (the Sankey sums them all)

Text = Annotated[str | None, Query(max_length=64)]


# names and places, each loaded once per request ------------------------------------------
class Places:
    """Regions, accounts, officials and payees met while drawing a page, loaded once."""

    def __init__(self, request: Request):
        self.app = zhuisu(request)
        self._regions: dict[str, Region | None] = {}
        self._aggregates: dict[str, Any] = {}

    def region(self, code: str | None) -> Region | None:
        if not code:
            return None
        if code not in self._regions:
            try:
                self._regions[code] = self.app.region(code)
            except NotFound:
                self._regions[code] = None
        return self._regions[code]

    def region_label(self, code: str | None) -> str:
        """'清水乡 990121101': a region's name with its code."""
        found = self.region(code)
        return f"{found.name} {code}" if found else (code or "—")

    def aggregate(self, aggregate_id: Any) -> Any:
        """Any aggregate by id (None if there is none), not to be changed."""
        key = str(aggregate_id or "")
        if key not in self._aggregates:
            try:
                self._aggregates[key] = self.app.repository.get(
                    UUID(key), deepcopy_from_cache=False)
            except (ValueError, AggregateNotFoundError):
                self._aggregates[key] = None
        return self._aggregates[key]

    def account(self, account_id: Any) -> FundAccount | None:
        found = self.aggregate(account_id)
        return found if isinstance(found, FundAccount) else None

    def account_label(self, account_id: Any) -> str:
        """'追溯县 990121 中央资金账户'."""
        account = self.account(account_id)
        if account is None:
            return f"账户 {str(account_id)[:8]}"
        fund = FUND_ZH.get(account.fund_source, account.fund_source)
        return f"{self.region_label(account.region_code)} {fund}资金账户"

    def official_name(self, official_id: Any) -> str:
        found = self.aggregate(official_id)
        return found.name if isinstance(found, Official) else str(official_id)[:8]

    def payee(self, kind: str | None, payee_id: Any) -> dict[str, Any]:
        """What a page says about a payee: its kind, label, code and region."""
        found = self.aggregate(payee_id)
        if isinstance(found, Household):
            return {"kind": "household", "label": f"农户 {found.code}", "code": found.code,
                    "region": self.region_label(found.village_code), "id": str(found.id)}
        if isinstance(found, Project):
            return {"kind": "project", "label": f"项目 {found.name}", "code": found.code,
                    "region": self.region_label(found.region_code), "id": str(found.id)}
        return {"kind": kind or "", "label": f"{PAYEE_ZH.get(kind or '', kind or '收款方')} "
                f"{str(payee_id or '')[:8]}", "code": None, "region": "—",
                "id": str(payee_id or "")}


def account_read(account: FundAccount) -> Read:
    return Read("account", str(account.id), dict(account.region_path))


def payee_reads(places: Places, moves: Iterable[Mapping[str, Any]]) -> list[Read]:
    """The households and projects paid in these movements, each once (as the API's
    ``payee_reads``)."""
    out: dict[tuple[str, str], Read] = {}
    for m in moves:
        if m.get("payee_kind") not in ("household", "project") or not m.get("payee_id"):
            continue
        found = places.aggregate(m["payee_id"])
        if isinstance(found, Household):
            out[("household", str(found.id))] = Read("household", str(found.id),
                                                     dict(found.region_path))
        elif isinstance(found, Project):
            out[("project", str(found.id))] = Read("project", str(found.id),
                                                   dict(found.region_path))
    return list(out.values())


def json_script(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` element (no ``</script>`` inside)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e")
                  .replace("&", "\\u0026"))


# the Sankey: nodes and links in fen ------------------------------------------------------
class Sankey:
    """Nodes (by key, with a Chinese title and a column) and links summed in fen; drawn,
    a link's ``value`` is in 元 (its ``fen`` exact)."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.links: dict[tuple[str, str], int] = defaultdict(int)

    def node(self, key: str, title: str, depth: int, href: str | None = None) -> str:
        if key not in self.nodes:
            self.nodes[key] = {"name": key, "title": title, "depth": depth}
            if href:
                self.nodes[key]["href"] = href
        return key

    def flow(self, fen: int, *keys: str) -> None:
        if fen <= 0:
            return
        for a, b in pairwise(keys):
            if a != b:
                self.links[(a, b)] += fen

    def data(self) -> dict[str, Any]:
        used = {k for pair in self.links for k in pair}
        return {"nodes": [n for k, n in self.nodes.items() if k in used],
                "links": [{"source": a, "target": b, "value": v / 100, "fen": v}
                          for (a, b), v in self.links.items() if v > 0]}

    def rows(self) -> list[dict[str, Any]]:
        """The links as a table (column by column, largest first): the chart's text."""
        return [{"from": self.nodes[a]["title"], "to": self.nodes[b]["title"], "fen": v}
                for (a, b), v in sorted(self.links.items(), key=lambda kv: (
                    self.nodes[kv[0][0]]["depth"], -kv[1], kv[0]))]

    def tallest(self) -> int:
        """Nodes in the fullest column (for the chart's height)."""
        used = {k for pair in self.links for k in pair}
        per: dict[int, int] = defaultdict(int)
        for k in used:
            per[self.nodes[k]["depth"]] += 1
        return max(per.values(), default=0)


def chart_height(sankey: Sankey, least: int = 360) -> int:
    return max(least, min(1400, 60 + 26 * sankey.tallest()))


class Down:
    """Adds ``money_down`` answers to a Sankey, below one region: source → the paying
    account's township (or the region's own level) → village or project → purpose."""

    def __init__(self, request: Request, places: Places, root: Region, sankey: Sankey):
        self.places, self.root, self.sankey = places, root, sankey
        self.village_of = households_by_village(request, root)
        self.projects: dict[str, Project] = {}

    def unit(self, account_id: str) -> str:
        """The column-1 node of an account: its region's child of the root, or the root
        itself (本级), or outside."""
        account = self.places.account(account_id)
        if account is None or account.region_path.get(self.root.level.value) != self.root.code:
            return self.sankey.node("x:outside", "本地区以外", 1)
        child = self.root.level.child
        code = account.region_path.get(child.value) if child else None
        if code is None:
            return self.sankey.node(f"r:{self.root.code}",
                                    f"{self.root.name}本级 {self.root.code}", 1)
        return self.sankey.node(f"r:{code}", self.places.region_label(code), 1)

    def payee(self, p: Mapping[str, Any]) -> str:
        kind, payee_id = p.get("payee_kind"), p.get("payee_id")
        if kind == "household":
            village = self.village_of.get(str(payee_id))
            if village:
                return self.sankey.node(f"v:{village}", self.places.region_label(village), 2)
            return self.sankey.node("v:?", "其他村（本地区以外）", 2)
        project_id = payee_id if kind == "project" else p.get("project_id")
        found = self.places.aggregate(project_id) if project_id else None
        if isinstance(found, Project):
            self.projects[str(found.id)] = found
            return self.sankey.node(f"p:{found.id}", f"项目 {found.name}", 2)
        return self.sankey.node(f"p:{kind}", PAYEE_ZH.get(kind or "", "其他收款方"), 2)

    def add(self, source: str, trace: Mapping[str, Any]) -> None:
        for payee in trace["payees"]:
            for p in payee["payments"]:
                purpose = p.get("purpose") or ""
                self.sankey.flow(p["amount_fen"], source, self.unit(p["account_id"]),
                                 self.payee(p),
                                 self.sankey.node(f"u:{purpose}",
                                                  PURPOSE_ZH.get(purpose, purpose), 3))
        for h in trace["held"]:
            self.sankey.flow(h["amount_fen"], source, self.unit(h["account_id"]),
                             self.sankey.node("h:held", "结余（尚未支出）", 2))
        for s in trace["sent_back"]:
            self.sankey.flow(s["amount_fen"], source,
                             self.sankey.node("s:back", "退回来源（冲正）", 1))

    def project_reads(self) -> list[Read]:
        return [Read("project", pid, dict(p.region_path)) for pid, p in self.projects.items()]


def households_by_village(request: Request, root: Region) -> dict[str, str]:
    """Household id → village code for every household under ``root`` (the directory the
    API's lists use)."""
    directory = request.app.state.directory
    directory.catch_up(zhuisu(request))
    out: dict[str, str] = {}
    stack = [root.code]
    while stack:
        code = stack.pop()
        children = directory.children_of(code)
        if not children:
            out.update((str(h), code) for h in directory.households_in(code))
        stack.extend(children)
    return out


# the money that entered a region -----------------------------------------------------------
def inflows(places: Places, root: Region, accounts: list[dict]) -> list[dict[str, Any]]:
    """Each receipt of the region's accounts and each allocation into its own-level
    accounts from an account outside the region, from the accounts' events."""
    inside = {a["account_id"] for a in accounts}
    out = []
    for a in accounts:
        if not (a["received_fen"] or (a["allocated_in_fen"]
                                      and a["level"] == root.level.value)):
            continue
        after = 0
        while True:
            events = events_page(places.app, UUID(a["account_id"]), after, EVENTS_PAGE)
            for e in events:
                f = e["fields"]
                if e["type"] == "FundAccount.Received":
                    out.append({**f, "kind": "received", "account_id": a["account_id"],
                                "sender": a["account_id"]})
                elif (e["type"] == "FundAccount.AllocationReceived"
                      and f.get("from_account_id") not in inside):
                    out.append({**f, "kind": "allocation_received",
                                "account_id": a["account_id"], "sender": f["from_account_id"]})
            if len(events) < EVENTS_PAGE:
                break
            after = events[-1]["position"]
    return sorted(out, key=lambda m: (m.get("effective_date") or "", m["movement_id"]))


# pages -------------------------------------------------------------------------------------
@router.get("/money", response_class=HTMLResponse)
def money_page(request: Request, person: Person, region: Text = None) -> HTMLResponse:
    """A region's accounts and balances; the flow diagram loads apart."""
    may(person, Action.READ)
    found = home_region(request, person, region or None)
    db = read_models(request)
    summary = balance_summary(db, found.code)
    rows = balances(db, region_code=found.code)
    places = Places(request)
    shown = [places.account(a["account_id"]) for a in rows]
    record(request, person, [Read("region", found.code, dict(found.path)),
                             *(account_read(a) for a in shown if a is not None)])
    return page(request, "money.html", person, region=found, summary=summary,
                total=summary["total"], accounts=rows, FUND_ZH=FUND_ZH, places=places)


@router.get("/money/flow", response_class=HTMLResponse)
def money_flow(request: Request, person: Person, region: Text = None) -> HTMLResponse:
    """The region's Sankey (an htmx part of ``/console/money``)."""
    may(person, Action.READ)
    root = home_region(request, person, region or None)
    db = read_models(request)
    accounts = balances(db, region_code=root.code)
    places = Places(request)
    sankey = Sankey()
    down = Down(request, places, root, sankey)
    sources: list[dict] = []
    totals = {"amount_fen": 0, "paid_fen": 0, "held_fen": 0, "sent_back_fen": 0}
    reached: set[tuple[str, str]] = set()
    for m in inflows(places, root, accounts):
        trace = chains.money_down(db, m["movement_id"], m["sender"], limit=None)
        if m["kind"] == "received":
            key = sankey.node(f"s:recv:{m.get('source')}", f"收到 {m.get('source') or ''}", 0)
        else:
            key = sankey.node(f"s:from:{m['sender']}",
                              f"上级下达 {places.account_label(m['sender'])}", 0)
        down.add(key, trace)
        for k in ("amount_fen", "paid_fen", "held_fen", "sent_back_fen"):
            totals[k] += trace[k]
        reached.update((p["payee_kind"], p["payee_id"]) for p in trace["payees"])
        sender = places.account(m["sender"])
        traceable = sender is not None and _covered(person, sender)
        sources.append({**m, "trace": trace, "traceable": traceable,
                        "sender_label": places.account_label(m["sender"]),
                        "account_label": places.account_label(m["account_id"])})
    totals["households"] = sum(1 for kind, _ in reached if kind == "household")
    totals["projects"] = len(down.projects)  # paid, or paid for through a supplier
    receiving = {m["account_id"] for m in sources}
    record(request, person, [Read("region", root.code, dict(root.path))]
           + [account_read(a) for a in (places.account(i) for i in sorted(receiving))
              if a is not None]
           + down.project_reads())
    return page(request, "money_flow.html", person, region=root, sankey=sankey,
                chart=json_script({"title": f"{root.name} 资金流向", **sankey.data()}),
                height=chart_height(sankey), sources=sources, totals=totals)


def _covered(person: Person, account: FundAccount) -> bool:
    """Whether the person may trace a movement of this account (as the API lets them)."""
    try:
        covers(person, account.region_path, "account")
    except OutsideJurisdiction:
        return False
    return True


@router.get("/money/accounts/{account_id}", response_class=HTMLResponse)
def account_page(request: Request, person: Person, account_id: str,
                 after: Annotated[int, Query(ge=0, le=2**62)] = 0) -> HTMLResponse:
    """An account, its balances and its movements, page by page (``GET /accounts/{id}``)."""
    may(person, Action.READ)
    app = zhuisu(request)
    account = app.load(FundAccount, account_id, "account_id")
    covers(person, account.region_path, f"资金账户 {account_id}", "account_id")
    view = account_view(app, account, after, EVENTS_PAGE)
    places = Places(request)
    db = read_models(request)
    row = next((a for a in balances(db, region_code=account.region_code)
                if a["account_id"] == str(account.id)), None)
    moves = [_movement_row(places, e) for e in view["events"]]
    for m in moves:  # an allocation in is traced on the sender's account, if the person may
        if m["trace_account"]:
            sender = places.account(m["trace_account"])
            m["traceable"] = sender is not None and _covered(person, sender)
    record(request, person, [account_read(account),
                             *payee_reads(places, [e["fields"] for e in view["events"]])])
    more = len(view["events"]) == EVENTS_PAGE
    return page(request, "money_account.html", person, account=view, row=row,
                moves=moves, after=after, batches=batches_of_account(db, str(account.id)),
                next_after=view["events"][-1]["position"] if more else None,
                label=places.account_label(account.id), FUND_ZH=FUND_ZH,
                region_label=places.region_label(account.region_code))


def _movement_row(places: Places, event: Mapping[str, Any]) -> dict[str, Any]:
    """One event of an account as a row: kind, amounts, counterparty or payee, signers."""
    f = event["fields"]
    kind = STEP_KIND.get(event["type"], event["type"])
    row = {"position": event["position"], "kind": kind,
           "kind_zh": KIND_ZH.get(kind, event["type"]), "recorded_at": event["recorded_at"],
           "effective_date": f.get("effective_date"), "amount_fen": f.get("amount_fen"),
           "purpose": f.get("purpose"), "document_no": f.get("document_no"),
           "movement_id": f.get("movement_id"), "other": None, "other_href": None,
           "traceable": kind in ("received", "allocated", "disbursed", "allocation_received"),
           "trace_account": None,  # the account the traced movement is on, if not this one
           "signers": [{"role": s.get("role"), "official_id": s.get("official_id"),
                        "name": places.official_name(s.get("official_id"))}
                       for s in event.get("signatures") or []]}
    if kind == "allocated":
        row["other"] = "下达至 " + places.account_label(f.get("to_account_id"))
        row["other_href"] = f"/console/money/accounts/{f.get('to_account_id')}"
    elif kind == "allocation_received":
        row["other"] = "来自 " + places.account_label(f.get("from_account_id"))
        row["trace_account"] = f.get("from_account_id")  # traced as the sender's 下达
    elif kind == "received":
        row["other"] = f.get("source")
    elif kind == "disbursed":
        payee = places.payee(f.get("payee_kind"), f.get("payee_id"))
        project = places.aggregate(f.get("project_id")) if f.get("project_id") else None
        where = f"项目 {project.name}" if isinstance(project, Project) else payee["region"]
        row["other"] = f"{payee['label']}（{where}）"
    elif kind in ("recovered", "reversed", "allocation_reversed"):
        row["other"] = (f"原变动 {str(f.get('of_movement_id') or '')[:8]}"
                        + (f"：{f['reason']}" if f.get("reason") else ""))
    elif kind == "opened":
        row["other"] = f.get("name")
    return row


@router.get("/money/trace", response_class=HTMLResponse)
def trace_lookup(request: Request, person: Person,
                 movement_id: Annotated[str, Query(min_length=1, max_length=64)],
                 account: Text = None) -> Response:
    """The trace form's target: on to the movement's page."""
    may(person, Action.READ)
    from urllib.parse import quote

    target = f"/console/money/trace/{quote(movement_id.strip(), safe='')}"
    return redirect(target + (f"?account={quote(account.strip(), safe='')}"
                              if account and account.strip() else ""))


@router.get("/money/trace/{movement_id}", response_class=HTMLResponse)
def trace_page(request: Request, person: Person, movement_id: str,
               account: Text = None) -> HTMLResponse:
    """A movement traced up to its receipts and down to its payees."""
    may(person, Action.READ)
    if len(movement_id) > 64:
        raise InvalidInput("资金变动编号过长", field="movement_id")
    if account:
        try:
            account = str(UUID(account))
        except ValueError as exc:
            raise InvalidInput("账户编号应为 UUID", field="account") from exc
    db = read_models(request)
    with db.connect() as conn:
        found = movement(conn, movement_id, account or None,
                         ("received", "allocated", "disbursed"))
    if found is None:
        raise NotFound(f"没有可追溯的资金变动 {movement_id}（收到、下达或拨付）",
                       field="movement_id")
    places = Places(request)
    holder = places.account(found["account_id"])
    if holder is None:
        raise NotFound(f"no account {found['account_id']}", field="movement_id")
    covers(person, holder.region_path, f"资金变动 {movement_id}", "movement_id")
    kind = found["kind"]
    up = chain = down = None
    up_sankey = down_sankey = None
    reads = [account_read(holder)]
    if kind in ("disbursed", "allocated"):
        up = chains.money_up(db, movement_id, found["account_id"])
        up_sankey = _up_sankey(places, up)
        reads += payee_reads(places, [up["movement"]])
    if kind == "disbursed":
        chain = chains.payment_chain(db, movement_id, found["account_id"])
    payees: list[dict] = []
    if kind in ("allocated", "received"):
        down = chains.money_down(db, movement_id, found["account_id"], limit=None)
        lot_account = places.account(found["counterparty_id"] if kind == "allocated"
                                     else found["account_id"])
        root = places.region((lot_account or holder).region_code) or places.region(
            holder.region_code)
        down_sankey = Sankey()
        walker = Down(request, places, root, down_sankey)
        walker.add(down_sankey.node("m:root", f"本笔{KIND_ZH[kind]} {found['document_no']}", 0),
                   down)
        payees = [{**p, "who": places.payee(p["payee_kind"], p["payee_id"])}
                  for p in down["payees"][:PAYEES_SHOWN]]
        reads += payee_reads(places, payees) + walker.project_reads()
    record(request, person, reads)
    payee = places.payee(found.get("payee_kind"), found.get("payee_id")) \
        if found.get("payee_id") else None
    charts = {}
    if up_sankey is not None:
        charts["up"] = json_script({"title": "资金来源", **up_sankey.data()})
    if down_sankey is not None:
        charts["down"] = json_script({"title": "资金去向", **down_sankey.data()})
    return page(request, "money_trace.html", person, m=found, kind_zh=KIND_ZH[kind],
                holder=holder, holder_label=places.account_label(holder.id), payee=payee,
                up=up, chain=chain, down=down, payees=payees, places=places,
                charts=charts, up_rows=up_sankey.rows() if up_sankey else [],
                down_rows=down_sankey.rows() if down_sankey else [],
                up_height=chart_height(up_sankey, 200) if up_sankey else 0,
                down_height=chart_height(down_sankey) if down_sankey else 0,
                KIND_ZH=KIND_ZH, shown=PAYEES_SHOWN)


def _up_sankey(places: Places, up: Mapping[str, Any]) -> Sankey:
    """Receipts → the accounts the money passed through → this movement.  An account the
    money left and came back to is drawn once (the loop between is folded)."""
    sankey = Sankey()
    m = up["movement"]
    end = sankey.node("m:self", f"本笔{KIND_ZH.get(m['kind'], m['kind'])} "
                      f"{m.get('document_no') or ''}", 99)
    for s in up["sources"]:
        receipt = s["receipt"]
        accounts = [receipt["account_id"]] + [h["account_id"] for h in s["via"]
                                              if h["kind"] == "transfer"]
        accounts = [a for i, a in enumerate(accounts) if i == 0 or a != accounts[i - 1]]
        accounts.append(m["account_id"])
        folded: list[str] = []
        for a in accounts:
            if a in folded:
                folded = folded[:folded.index(a) + 1]
            else:
                folded.append(a)
        keys = [sankey.node(f"s:{receipt['account_id']}:{receipt['movement_id']}",
                            f"收到 {receipt.get('document_no') or receipt.get('source') or ''}",
                            0)]
        for depth, a in enumerate(folded, start=1):
            keys.append(sankey.node(f"a:{a}", places.account_label(a), depth))
        keys.append(end)
        sankey.flow(s["amount_fen"], *keys)
    depth = max((n["depth"] for k, n in sankey.nodes.items() if k != "m:self"), default=0)
    sankey.nodes["m:self"]["depth"] = depth + 1
    return sankey
