"""Queries over the cases (``projections.cases``): plain dicts, ready for JSON and reports.

Money is integer fen and always adds up: for every order line, ``ordered = recovered +
outstanding``, and the shares of the officials charged (谁签字谁追回) add up to each of
the three.  Overdue rectification items (整改逾期) are judged by the log clock (the
greatest business date seen in the log) unless an ``as_of`` date is given.  Officials are
named from the responsibility projection (code, name, unit).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, false, or_, select

from domain.case import split_liability
from domain.errors import InvalidInput, NotFound
from projections import cases as cs
from projections import responsibility as rs
from projections.projection import keys_in
from projections.queries import Db, connected, plain

OUTSTANDING_BY = ("official", "unit", "region", "payment", "order")
STATUSES = ("open", "rectified", "closed")


def in_region(table: Any, region_code: str) -> Any:
    """Rows of ``table`` (with the five level columns) in the subtree of ``region_code``."""
    return or_(*[table.c[level] == region_code for level in cs.LEVELS])


def region_path(row: Any) -> dict[str, str]:
    return {level: row[level] for level in cs.LEVELS if row[level]}


def log_clock(db: Db) -> dt.date | None:
    """The greatest business date seen in the log so far (None on an empty log)."""
    with connected(db) as conn:
        return conn.execute(select(cs.clock.c.day).where(cs.clock.c.name == "log")).scalar()


def _officials(conn: Connection, ids: Iterable[str]) -> dict[str, dict]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    o = rs.officials
    return {r["official_id"]: dict(r) for r in conn.execute(
        select(o.c.official_id, o.c.code, o.c.name, o.c.unit_code, o.c.region_code)
        .where(o.c.official_id.in_(wanted))).mappings()}


def _who(officials: dict[str, dict], official_id: str) -> dict[str, Any]:
    o = officials.get(official_id, {})
    return {"official_id": official_id, "code": o.get("code"), "name": o.get("name"),
            "unit_code": o.get("unit_code")}


def _case(conn: Connection, case_no: str) -> dict:
    row = conn.execute(select(cs.cases).where(cs.cases.c.case_no == str(case_no))
                       ).mappings().first()
    if row is None:
        raise NotFound(f"no case {case_no}", field="case_no")
    return dict(row)


def _summary(row: dict) -> dict[str, Any]:
    return plain({"case_id": row["case_id"], "case_no": row["case_no"],
                  "case_type": row["case_type"], "title": row["title"],
                  "region_code": row["region_code"], "region_path": region_path(row),
                  "status": row["status"], "opened_on": row["opened_on"],
                  "incident_date": row["incident_date"], "rectified_on": row["rectified_on"],
                  "closed_on": row["closed_on"], "suspend_policies": row["suspend_policies"],
                  "flag_ids": row["flag_ids"], "recorded_by": row["recorded_by"],
                  "last_on": row["last_on"], "log_position": row["log_position"]})


# recovery (追回) -------------------------------------------------------------------------
def line_shares(line: dict) -> list[dict[str, Any]]:
    """Each official's ordered, recovered and outstanding fen of one order line."""
    outstanding = line["amount_fen"] - line["recovered_fen"]
    out = {s["official_id"]: s["share_fen"] for s in split_liability(outstanding, line["liable"])}
    return [{"official_id": s["official_id"], "role": s["role"], "ordered_fen": s["share_fen"],
             "recovered_fen": s["share_fen"] - out[s["official_id"]],
             "outstanding_fen": out[s["official_id"]]} for s in line["liable"]]


def _money(ordered: int = 0, recovered: int = 0) -> dict[str, int]:
    return {"ordered_fen": ordered, "recovered_fen": recovered,
            "outstanding_fen": ordered - recovered}


def _add(total: dict[str, int], part: dict[str, int]) -> None:
    for k in ("ordered_fen", "recovered_fen", "outstanding_fen"):
        total[k] += part[k]


def _lines(conn: Connection, where: list[Any]) -> list[dict]:
    ln, c = cs.lines, cs.cases
    q = (select(ln, c.c.case_no, c.c.region_code.label("case_region"),
                *[c.c[level] for level in cs.LEVELS])
         .join(c, c.c.case_id == ln.c.case_id).where(*where)
         .order_by(ln.c.log_position, ln.c.order_id, ln.c.line_no))
    return [dict(r) for r in conn.execute(q).mappings()]


def _recovery_of_case(conn: Connection, case: dict, officials: dict[str, dict]) -> dict:
    found = _lines(conn, [cs.lines.c.case_id == case["case_id"]])
    pm = cs.payments
    keys = sorted({(ln["account_id"], ln["movement_id"]) for ln in found})
    paid: dict[tuple, Any] = {}
    if keys:
        where, params = keys_in(conn, [pm.c.account_id, pm.c.movement_id], keys)
        paid = {(p["account_id"], p["movement_id"]): p for p in conn.execute(
            select(pm.c.account_id, pm.c.movement_id, pm.c.amount_fen, pm.c.paid_on)
            .where(where), params).mappings()}
    order_rows = conn.execute(select(cs.orders).where(cs.orders.c.case_id == case["case_id"])
                              .order_by(cs.orders.c.log_position, cs.orders.c.order_id)
                              ).mappings().all()
    by_order: dict[str, list[dict]] = defaultdict(list)
    for ln in found:
        by_order[ln["order_id"]].append(ln)
    total, per_official = _money(), {}
    out_orders = []
    for o in order_rows:
        order_total = _money()
        out_lines = []
        for ln in by_order[o["order_id"]]:
            money = _money(ln["amount_fen"], ln["recovered_fen"])
            _add(order_total, money)
            shares = line_shares(ln)
            for s in shares:
                entry = per_official.setdefault(s["official_id"], {
                    **_who(officials, s["official_id"]), **_money()})
                _add(entry, s)
            p = paid.get((ln["account_id"], ln["movement_id"]), {})
            out_lines.append({"line_no": ln["line_no"], "account_id": ln["account_id"],
                              "movement_id": ln["movement_id"], "purpose": ln["purpose"],
                              "payee_kind": ln["payee_kind"], "payee_id": ln["payee_id"],
                              "paid_fen": p.get("amount_fen"), "paid_on": p.get("paid_on"),
                              **money,
                              "liable": [{**_who(officials, s["official_id"]), **s}
                                         for s in shares]})
        _add(total, order_total)
        out_orders.append({"order_id": o["order_id"], "ordered_on": o["ordered_on"],
                           "reason": o["reason"], "rule": o["rule"],
                           "recorded_by": o["recorded_by"], **order_total, "lines": out_lines})
    return {"total": total, "orders": out_orders,
            "by_official": sorted(per_official.values(),
                                  key=lambda e: (-e["outstanding_fen"], e["code"] or "",
                                                 e["official_id"]))}


def outstanding_recovery(db: Db, *, by: str = "official", region_code: str | None = None,
                         case_no: str | None = None) -> dict:
    """What orders charged, what came back and what is still out, grouped ``by`` official
    (split by ``split_liability``), unit (the official's), region (the case's), payment or
    order; within a region's subtree (the case's region) or of one case.

    A payment ordered back in two cases counts in each (``by="payment"`` shows both).
    """
    if by not in OUTSTANDING_BY:
        raise InvalidInput(f"must be one of {list(OUTSTANDING_BY)}", field="by")
    where = []
    if region_code:
        where.append(in_region(cs.cases, region_code))
    if case_no:
        where.append(cs.cases.c.case_no == case_no)
    with connected(db) as conn:
        found = _lines(conn, where)
        officials = _officials(conn, {s["official_id"] for ln in found for s in ln["liable"]})
    groups: dict[tuple, dict] = {}
    total = _money()
    for ln in found:
        money = _money(ln["amount_fen"], ln["recovered_fen"])
        _add(total, money)
        if by in ("official", "unit"):
            for s in line_shares(ln):
                who = _who(officials, s["official_id"])
                key = (who["official_id"],) if by == "official" else (who["unit_code"],)
                entry = groups.setdefault(key, (
                    {**who} if by == "official" else {"unit_code": who["unit_code"]})
                    | {**_money(), "cases": []})
                _add(entry, s)
                _note_case(entry, ln)
            continue
        if by == "region":
            key = (ln["case_region"],)
            head = {"region_code": ln["case_region"], "region_path": region_path(ln)}
        elif by == "payment":
            key = (ln["account_id"], ln["movement_id"])
            head = {"account_id": ln["account_id"], "movement_id": ln["movement_id"],
                    "purpose": ln["purpose"], "payee_kind": ln["payee_kind"],
                    "payee_id": ln["payee_id"]}
        else:
            key = (ln["case_no"], ln["order_id"])
            head = {"case_no": ln["case_no"], "order_id": ln["order_id"]}
        entry = groups.setdefault(key, head | {**_money(), "cases": []})
        _add(entry, money)
        _note_case(entry, ln)
    items = [groups[k] for k in sorted(groups, key=lambda k: (
        -groups[k]["outstanding_fen"], tuple(str(x) for x in k)))]
    return plain({"by": by, "region_code": region_code, "case_no": case_no, "total": total,
                  "items": items})


def _note_case(entry: dict, line: dict) -> None:
    if line["case_no"] not in entry["cases"]:
        entry["cases"].append(line["case_no"])


# rectification (整改) -----------------------------------------------------------------------
def item_status(item: dict, as_of: dt.date | None) -> tuple[str, int | None]:
    """(completed | completed_late | overdue | open, days past the deadline)."""
    deadline, done = item["deadline"], item["completed_on"]
    if done is not None:
        late = (done - deadline).days
        return ("completed_late" if late > 0 else "completed"), max(late, 0)
    if as_of is not None and as_of > deadline:
        return "overdue", (as_of - deadline).days
    return "open", None


def rectification_items(db: Db, *, overdue_only: bool = False, as_of: dt.date | None = None,
                        region_code: str | None = None, case_no: str | None = None,
                        limit: int | None = None) -> dict:
    """Rectification items with their status on ``as_of`` (default: the log clock)."""
    it, c = cs.items, cs.cases
    with connected(db) as conn:
        clock_day = conn.execute(select(cs.clock.c.day).where(cs.clock.c.name == "log")).scalar()
        on = as_of or clock_day
        q = (select(it, c.c.case_no, c.c.region_code, *[c.c[level] for level in cs.LEVELS])
             .join(c, c.c.case_id == it.c.case_id)
             .order_by(it.c.deadline, c.c.case_no, it.c.item_id))
        if region_code:
            q = q.where(in_region(c, region_code))
        if case_no:
            q = q.where(c.c.case_no == case_no)
        if overdue_only:
            q = q.where(it.c.completed_on.is_(None))
            q = q.where(it.c.deadline < on if on is not None else false())
        if limit is not None:
            q = q.limit(limit)
        rows = [dict(r) for r in conn.execute(q).mappings()]
        officials = _officials(conn, {r["official_id"] for r in rows})
    out = []
    for r in rows:
        status, days = item_status(r, on)
        out.append({"case_id": r["case_id"], "case_no": r["case_no"], "item_id": r["item_id"],
                    "problem": r["problem"], "unit_code": r["unit_code"],
                    "official": _who(officials, r["official_id"]), "deadline": r["deadline"],
                    "added_on": r["added_on"], "completed_on": r["completed_on"],
                    "completion_evidence": r["completion_evidence"], "status": status,
                    "days_overdue": days, "region_code": r["region_code"],
                    "region_path": region_path(r)})
    return plain({"as_of": on, "log_clock": clock_day, "overdue_only": overdue_only,
                  "items": out})


# the case ---------------------------------------------------------------------------------
def case_view(db: Db, case_no: str, *, as_of: dt.date | None = None) -> dict:
    """A case: its facts, persons, evidence, findings, actions, recovery, rectification."""
    with connected(db) as conn:
        case = _case(conn, case_no)
        cid = case["case_id"]

        def rows_of(table: Any, *order: Any) -> list[dict]:
            return [dict(r) for r in conn.execute(
                select(table).where(table.c.case_id == cid).order_by(*order)).mappings()]

        people = sorted(rows_of(cs.persons, cs.persons.c.log_position),
                        key=lambda p: (p["log_position"], p["basis"] != "subject",
                                       p["official_id"]))  # subjects first, then 一案双查
        proofs = rows_of(cs.evidence, cs.evidence.c.seq)
        facts = rows_of(cs.findings, cs.findings.c.log_position, cs.findings.c.finding_id)
        imposed = rows_of(cs.actions, cs.actions.c.seq)
        officials = _officials(conn, {p["official_id"] for p in people}
                               | {a["official_id"] for a in imposed}
                               | {s["official_id"] for ln in conn.execute(
                                   select(cs.lines.c.liable).where(cs.lines.c.case_id == cid))
                                  for s in ln[0]})
        recovery = _recovery_of_case(conn, case, officials)
        held = conn.execute(select(cs.suspensions).where(cs.suspensions.c.case_id == cid)
                            ).mappings().all()
    rectification = rectification_items(db, as_of=as_of, case_no=case_no)
    return plain({
        **_summary(case), "summary": case["summary"], "conclusion": case["conclusion"],
        "persons": [{**_who(officials, p["official_id"]), "basis": p["basis"],
                     "reason": p["reason"], "region_code": p["region_code"],
                     "position": p["position"], "added_on": p["added_on"]} for p in people],
        "evidence": [{k: e[k] for k in ("seq", "kind", "ref", "account_id", "note",
                                        "linked_on", "log_position")} for e in proofs],
        "findings": [{k: f[k] for k in ("finding_id", "text", "amount_fen", "recorded_on")}
                     for f in facts],
        "actions": [{**_who(officials, a["official_id"]),
                     **{k: a[k] for k in ("action", "decision_no", "reason", "imposed_on",
                                          "recorded_by")}} for a in imposed],
        "recovery": recovery,
        "rectification": {"as_of": rectification["as_of"], "items": [
            {k: v for k, v in i.items() if k not in ("case_id", "case_no", "region_code",
                                                   "region_path")}
            for i in rectification["items"]]},
        "suspensions": [{"village": s["region_code"], "purposes": s["purposes"],
                         "suspended_on": s["suspended_on"], "resumed_on": s["resumed_on"]}
                        for s in held],
    })


def list_cases(db: Db, *, region_code: str | None = None, status: str | None = None,
               case_type: str | None = None, after: int | None = None,
               limit: int = 50) -> dict:
    """Cases in the order they were opened (keyset pages: ``after`` = ``next_after``)."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"must be one of {list(STATUSES)}", field="status")
    c = cs.cases
    q = select(c).order_by(c.c.log_position).limit(limit + 1)
    if region_code:
        q = q.where(in_region(c, region_code))
    if status:
        q = q.where(c.c.status == status)
    if case_type:
        q = q.where(c.c.case_type == case_type)
    if after:
        q = q.where(c.c.log_position > after)
    with connected(db) as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [_summary(r) for r in rows], "limit": limit,
            "next_after": rows[-1]["log_position"] if more else None}


def case_counts(db: Db, region_code: str | None = None) -> list[dict]:
    """How many cases per status and type (within a region's subtree)."""
    c = cs.cases
    q = select(c.c.status, c.c.case_type, c.c.case_id)
    if region_code:
        q = q.where(in_region(c, region_code))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    with connected(db) as conn:
        for r in conn.execute(q):
            counts[(r.status, r.case_type)] += 1
    return [{"status": s, "case_type": t, "cases": n} for (s, t), n in sorted(counts.items())]


def official_actions(db: Db, official_id: str) -> dict:
    """问责: every accountability action imposed on an official, and every case that names
    them as a person under review (subject or 一案双查 oversight)."""
    oid = str(official_id)
    a, p, c = cs.actions, cs.persons, cs.cases
    with connected(db) as conn:
        who = _officials(conn, [oid]).get(oid)
        if who is None:
            raise NotFound(f"no official {official_id}", field="official_id")
        imposed = conn.execute(
            select(a, c.c.case_no, c.c.case_type, c.c.title, c.c.region_code,
                   *[c.c[level] for level in cs.LEVELS])
            .join(c, c.c.case_id == a.c.case_id).where(a.c.official_id == oid)
            .order_by(a.c.imposed_on, a.c.log_position)).mappings().all()
        named = conn.execute(
            select(p.c.basis, p.c.reason, p.c.added_on, c.c.case_id, c.c.case_no, c.c.case_type,
                   c.c.status, c.c.region_code, *[c.c[level] for level in cs.LEVELS])
            .join(c, c.c.case_id == p.c.case_id).where(p.c.official_id == oid)
            .order_by(p.c.log_position)).mappings().all()
    return plain({
        "official": _who({oid: who}, oid),
        "actions": [{"case_id": r["case_id"], "case_no": r["case_no"],
                     "case_type": r["case_type"], "title": r["title"], "action": r["action"],
                     "decision_no": r["decision_no"], "reason": r["reason"],
                     "imposed_on": r["imposed_on"], "region_path": region_path(r)}
                    for r in imposed],
        "cases": [{"case_id": r["case_id"], "case_no": r["case_no"],
                   "case_type": r["case_type"], "status": r["status"], "basis": r["basis"],
                   "reason": r["reason"], "added_on": r["added_on"],
                   "region_path": region_path(r)} for r in named],
    })


def case_refs(db: Db, case_nos: Iterable[str]) -> list[dict]:
    """Id and region path of the named cases (for the access log)."""
    wanted = sorted(set(case_nos))
    if not wanted:
        return []
    c = cs.cases
    with connected(db) as conn:
        rows = conn.execute(select(c.c.case_id, c.c.case_no, *[c.c[level] for level in cs.LEVELS])
                            .where(c.c.case_no.in_(wanted))).mappings().all()
    return [{"case_id": r["case_id"], "case_no": r["case_no"], "region_path": region_path(r)}
            for r in rows]


def region_of(db: Db, code: str) -> dict | None:
    """A region's name, level and path as the cases projection knows it."""
    with connected(db) as conn:
        r = conn.execute(select(cs.regions).where(cs.regions.c.code == code)).mappings().first()
    return None if r is None else {"code": r["code"], "name": r["name"], "level": r["level"],
                                   "path": region_path(r)}
