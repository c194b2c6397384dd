"""Leads' read side (线索处置台账): each lead's state and moves, overdue leads, statistics.

``leads`` holds one row per lead (``domain.lead.Lead``) with where it stands: 交办 to
which unit and person and by when, the 核实 verdict, 反馈 and 审核 dates, the 处置 and
the case opened; ``lead_moves`` every move with its business date, who recorded it and
what it said.  A lead is **overdue** on a date when it had a deadline and was not
reported (反馈) by it: still unreported after the deadline, or reported later than it.

``lead_statistics`` per unit (the unit a lead was assigned to; ``-`` for leads not yet
assigned): leads, verified, founded (属实 + 部分属实), 属实率 = founded / verified,
overdue, cases opened (立案), money recovered (fen, as recorded at closure).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
    inspect,
    or_,
    select,
)

from domain.errors import InvalidInput, NotFound
from projections.events import Event
from projections.flags.base import deepest
from projections.flags.tables import LEVELS
from projections.projection import Projection, Rows, handles
from projections.queries import Db, connected, plain
from projections.tracking import metadata

leads = Table(
    "leads", metadata,
    Column("lead_id", String(36), primary_key=True),
    Column("lead_no", String(16), nullable=False),
    Column("source_kind", String(8), nullable=False),
    Column("source_ref", Text, nullable=False),
    Column("rule_id", String(40), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("region_code", String(32)),
    Column("region_path", JSON, nullable=False),
    *[Column(level, String(32)) for level in LEVELS],
    Column("summary", Text, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("signers", JSON, nullable=False),
    Column("status", String(12), nullable=False),
    Column("raised_on", Date, nullable=False),
    Column("raised_position", BigInteger, nullable=False),
    Column("unit_code", String(64)),
    Column("official_id", String(36)),
    Column("working_days", Integer),
    Column("assigned_on", Date),
    Column("deadline", Date),
    Column("verdict", String(12)),
    Column("reasons", Text),
    Column("verified_on", Date),
    Column("amount_fen", BigInteger),
    Column("reported_on", Date),
    Column("reviewed_on", Date),
    Column("review_accepted", Boolean),
    Column("closed_on", Date),
    Column("disposition", String(20)),
    Column("case_no", Text),
    Column("recovered_fen", BigInteger, nullable=False),
    Column("last_position", BigInteger, nullable=False),
)
Index("leads_source", leads.c.source_ref)
Index("leads_unit", leads.c.unit_code)
for _level in LEVELS:
    Index(f"leads_{_level}", leads.c[_level])

lead_moves = Table(
    "lead_moves", metadata,
    Column("lead_id", String(36), primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("step", String(24), nullable=False),
    Column("effective_date", Date, nullable=False),
    Column("recorded_by", Text, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("log_position", BigInteger, nullable=False),
)

_MOVE_FIELDS = {"effective_date", "recorded_by"}


class Leads(Projection):
    name = "leads"
    version = 1
    tables = (leads, lead_moves)

    def _move(self, e: Event, rows: Rows) -> None:
        rows.insert(lead_moves, {
            "lead_id": e.originator_id, "version": e.version, "step": e.step.split(".")[-1],
            "effective_date": e["effective_date"], "recorded_by": e["recorded_by"],
            "detail": plain({k: v for k, v in e.data.items()
                             if k not in _MOVE_FIELDS and k != "timestamp"}),
            "log_position": e.position})

    @handles("Lead.Raised")
    def raised(self, e: Event, rows: Rows) -> None:
        path = dict(e["region_path"] or {})
        rows.insert(leads, {
            "lead_id": e.originator_id, "lead_no": "XS-" + e.originator_id.replace("-", "")[:10]
            .upper(), "source_kind": e["source_kind"], "source_ref": e["source_ref"],
            "rule_id": e["rule_id"], "severity": e["severity"],
            "region_code": e["region_code"] or deepest(path), "region_path": path,
            **{level: path.get(level) for level in LEVELS}, "summary": e["summary"],
            "evidence": e["evidence"], "signers": e["signers"], "status": "raised",
            "raised_on": e["effective_date"], "raised_position": e.position,
            "unit_code": None, "official_id": None, "working_days": None,
            "assigned_on": None, "deadline": None, "verdict": None, "reasons": None,
            "verified_on": None, "amount_fen": None, "reported_on": None,
            "reviewed_on": None, "review_accepted": None, "closed_on": None,
            "disposition": None, "case_no": None, "recovered_fen": 0,
            "last_position": e.position})
        self._move(e, rows)

    @handles("Lead.Assigned", "Lead.Verified", "Lead.Reported", "Lead.Reviewed", "Lead.Closed")
    def moved(self, e: Event, rows: Rows) -> None:
        lead = rows.need(leads, e.originator_id)
        day, step = e["effective_date"], e.step.split(".")[-1]
        if step == "Assigned":
            lead.update(status="assigned", unit_code=e["unit_code"],
                        official_id=e["official_id"], working_days=e["working_days"],
                        assigned_on=day, deadline=e["deadline"])
        elif step == "Verified":
            lead.update(status="verified", verdict=e["verdict"], reasons=e["reasons"],
                        verified_on=day, amount_fen=e["amount_fen"])
        elif step == "Reported":
            lead.update(status="reported", reported_on=lead["reported_on"] or day)
        elif step == "Reviewed":
            lead.update(status="reviewed" if e["accepted"] else "assigned", reviewed_on=day,
                        review_accepted=e["accepted"])
        else:
            lead.update(status="closed", closed_on=day, disposition=e["disposition"],
                        case_no=e["case_no"], recovered_fen=e["recovered_fen"])
        lead["last_position"] = e.position
        rows.changed(leads, lead)
        self._move(e, rows)


# queries ------------------------------------------------------------------------------------
def overdue_on(row: dict, as_of: dt.date) -> bool:
    deadline = row.get("deadline")
    if deadline is None:
        return False
    if isinstance(deadline, str):
        deadline = dt.date.fromisoformat(deadline)
    reported = row.get("reported_on")
    if isinstance(reported, str):
        reported = dt.date.fromisoformat(reported)
    return reported > deadline if reported is not None else as_of > deadline


def _lead(row: Any, as_of: dt.date) -> dict:
    out = plain({c.name: row[c.name] for c in leads.columns if c.name not in LEVELS})
    out["overdue"] = overdue_on(dict(row), as_of)
    return out


def list_leads(db: Db, *, as_of: dt.date, region_code: str | None = None,
               status: str | None = None, unit_code: str | None = None,
               overdue_only: bool = False, source_ref: str | None = None,
               after: str | None = None, limit: int = 100) -> list[dict]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidInput("must be a whole number from 1 to 1000", field="limit")
    c = leads.c
    q = select(leads)
    if region_code:
        q = q.where(or_(*[c[level] == region_code for level in LEVELS]))
    if status:
        q = q.where(c.status == status)
    if unit_code:
        q = q.where(c.unit_code == unit_code)
    if source_ref:
        q = q.where(c.source_ref == source_ref)
    if overdue_only:
        q = q.where(c.deadline.is_not(None))
    if after:
        q = q.where(c.lead_id > after)
    out: list[dict] = []
    with connected(db) as conn:
        for row in conn.execute(q.order_by(c.lead_id)).mappings():
            item = _lead(row, as_of)
            if overdue_only and not item["overdue"]:
                continue
            out.append(item)
            if len(out) >= limit:
                break
    return out


def get_lead(db: Db, lead_id: str, *, as_of: dt.date) -> dict:
    with connected(db) as conn:
        row = conn.execute(select(leads).where(leads.c.lead_id == str(lead_id))
                           ).mappings().first()
        if row is None:
            raise NotFound(f"no lead {lead_id}", field="lead_id")
        moves = [plain(dict(m)) for m in conn.execute(
            select(lead_moves).where(lead_moves.c.lead_id == str(lead_id))
            .order_by(lead_moves.c.version)).mappings()]
    out = _lead(row, as_of)
    out["moves"] = moves
    return out


def leads_by_source(db: Db, refs: list[str]) -> dict[str, dict]:
    """The lead of each flag or match id, if any (for ledgers and lists)."""
    if not refs:
        return {}
    out: dict[str, dict] = {}
    with connected(db) as conn:
        if not inspect(conn).has_table(leads.name):  # read models built without leads
            return out
        for i in range(0, len(refs), 500):
            for row in conn.execute(select(leads).where(
                    leads.c.source_ref.in_(refs[i:i + 500]))).mappings():
                out[row["source_ref"]] = plain(dict(row))
    return out


def lead_statistics(db: Db, *, as_of: dt.date, region_code: str | None = None) -> dict:
    """Per unit: leads, verified, founded, 属实率, overdue, cases opened, recovered (fen)."""
    c = leads.c
    q = select(leads)
    if region_code:
        q = q.where(or_(*[c[level] == region_code for level in LEVELS]))
    units: dict[str, dict[str, Any]] = {}
    with connected(db) as conn:
        for row in conn.execute(q.order_by(c.lead_id)).mappings():
            u = units.setdefault(row["unit_code"] or "-", {
                "unit_code": row["unit_code"] or "-", "leads": 0, "verified": 0, "founded": 0,
                "unfounded": 0, "overdue": 0, "closed": 0, "cases_opened": 0,
                "recovered_fen": 0})
            u["leads"] += 1
            if row["verdict"]:
                u["verified"] += 1
                u["founded"] += row["verdict"] in ("founded", "partly")
                u["unfounded"] += row["verdict"] == "unfounded"
            u["overdue"] += overdue_on(dict(row), as_of)
            u["closed"] += row["status"] == "closed"
            u["cases_opened"] += row["disposition"] == "case_opened"
            u["recovered_fen"] += row["recovered_fen"] or 0
    items = sorted(units.values(), key=lambda u: u["unit_code"])
    for u in items:
        u["founded_rate"] = round(u["founded"] / u["verified"], 4) if u["verified"] else None
    total = {k: sum(u[k] for u in items) for k in ("leads", "verified", "founded", "unfounded",
                                                  "overdue", "closed", "cases_opened",
                                                  "recovered_fen")}
    total["founded_rate"] = round(total["founded"] / total["verified"], 4) \
        if total["verified"] else None
    return {"as_of": as_of.isoformat(), "region_code": region_code, "units": items,
            "total": total}


def lead_source(db: Db, kind: str, ref: str) -> dict[str, Any]:
    """What a lead raised from a flag (``kind`` "flag") or a comparison match ("match")
    carries: rule or model, severity, region, summary, signers, evidence — the arguments
    ``domain.lead.raise_lead`` takes besides the source and who records it."""
    from projections import compare
    from projections.flags import queries as flag_queries

    if kind == "flag":
        f = flag_queries.get_flag(db, ref)
        return {"rule_id": f["rule_id"], "severity": f["severity"],
                "region_code": f["region_code"], "region_path": f["region_path"] or {},
                "summary": f["explanation_zh"], "signers": f["signers"],
                "evidence": [*f["evidence"], {"kind": "flag", "ref": ref}]}
    if kind == "match":
        m = compare.get_match(db, ref)
        return {"rule_id": m["model_id"], "severity": m["severity"],
                "region_code": m["region_code"], "region_path": m["region_path"] or {},
                "summary": m["explanation_zh"], "signers": m["signers"],
                "evidence": m["evidence"]}
    raise InvalidInput("must be flag or match", field="source_kind")
