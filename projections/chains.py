"""Money traces and responsibility chains (谁签字谁负责, 谁签字谁追回): plain dicts for JSON.

- ``money_down``: from an allocation (or a receipt) to every final payee, plus what is
  still held and what went back to the source; the parts add up to the amount.
- ``money_up`` / ``household_money``: from a payment (or everything a household received)
  to the receipts it came from, through which allocations, signed by whom.
- ``event_chain`` / ``household_chain`` / ``payment_chain``: who signed which step, in
  which role and position, with which key, in order.
- ``official_liability``: everything an official signed over a period and what later
  became of it: households removed, exits relapsed, payments reversed or recovered, and
  payments to removed households still to recover.

Every function takes a SQLAlchemy ``Connection`` or ``Engine``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, and_, select

from domain.errors import NotFound
from projections import money_trace as tr
from projections.flags import flags_signed_by
from projections import register as reg
from projections import responsibility as rs
from projections.queries import Db, connected, plain, total
from projections.walks import (
    movement,
    movements_by_key,
    payments_ranges,
    walk_down,
    walk_up,
)

ROLE_ORDER = {"preparer": 0, "reviewer": 1, "approver": 2, "witness": 3}
STEP_OF_KIND = {"received": "FundAccount.Received", "allocated": "FundAccount.Allocated",
                "disbursed": "FundAccount.Disbursed", "recovered": "FundAccount.Recovered",
                "reversed": "FundAccount.Reversed", "returned": "FundAccount.PaymentReturned"}
IDENTIFICATION = ("Household.Applied", "Household.AppraisedByVillage",
                  "Household.VerifiedByVillage", "Household.NoticePosted",
                  "Household.ReviewedByTownship", "Household.ApprovedByCounty")


# signatures ------------------------------------------------------------------------------
def _signatures(conn: Connection, log_positions: list[int]) -> dict[int, list[dict]]:
    """log position → its signatures in role order, with each signer's name and key state."""
    s = rs.signatures
    rows = []
    wanted = sorted(set(log_positions))
    for i in range(0, len(wanted), 500):
        q = select(s).where(s.c.log_position.in_(wanted[i:i + 500]))
        rows += conn.execute(q).mappings().all()
    officials = _officials(conn, {r["official_id"] for r in rows})
    keys = _keys(conn, {(r["official_id"], r["key_id"]) for r in rows})
    out: dict[int, list[dict]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (r["log_position"], ROLE_ORDER.get(r["role"], 9))):
        who = officials.get(r["official_id"], {})
        key = keys.get((r["official_id"], r["key_id"]), {})
        out[r["log_position"]].append({
            "role": r["role"], "official_id": r["official_id"], "code": who.get("code"),
            "name": who.get("name"), "position": r["post"], "position_region": r["post_region"],
            "responsibility": r["responsibility"], "key_id": r["key_id"],
            "key_revoked_on": plain(key.get("revoked_on"))})
    return out


def _officials(conn: Connection, ids: set[str]) -> dict[str, dict]:
    if not ids:
        return {}
    q = select(rs.officials).where(rs.officials.c.official_id.in_(sorted(ids)))
    return {r["official_id"]: dict(r) for r in conn.execute(q).mappings()}


def _keys(conn: Connection, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    if not pairs:
        return {}
    q = select(rs.keys).where(rs.keys.c.official_id.in_(sorted({o for o, _ in pairs})))
    return {(r["official_id"], r["key_id"]): dict(r) for r in conn.execute(q).mappings()}


def _step_rows(conn: Connection, where: Any) -> list[dict]:
    """Signed steps (one per event) matching ``where`` on resp_signatures, in log order."""
    s = rs.signatures
    q = (select(s.c.log_position, s.c.originator_id, s.c.version, s.c.step, s.c.effective_date,
                s.c.account_id, s.c.movement_id, s.c.amount_fen)
         .where(where).distinct().order_by(s.c.log_position))
    return [dict(r) for r in conn.execute(q).mappings()]


def _with_signatures(conn: Connection, steps: list[dict]) -> list[dict]:
    sigs = _signatures(conn, [st["log_position"] for st in steps])
    return [plain({**st, "signatures": sigs.get(st["log_position"], [])}) for st in steps]


# chains --------------------------------------------------------------------------------------
def event_chain(db: Db, log_position: int) -> dict:
    """Who signed the event at ``log_position`` (notification id), in role order."""
    with connected(db) as conn:
        steps = _step_rows(conn, rs.signatures.c.log_position == int(log_position))
        if not steps:
            raise NotFound(f"no signed event at log position {log_position}",
                           field="log_position")
        return _with_signatures(conn, steps)[0]


def household_chain(db: Db, household_id: str) -> dict:
    """A household's status and every signed step of its procedures, in order."""
    hid = str(household_id)
    with connected(db) as conn:
        h = conn.execute(select(reg.households.c.code, reg.households.c.status,
                                reg.households.c.village)
                         .where(reg.households.c.household_id == hid)).mappings().first()
        if h is None:
            raise NotFound(f"no household {hid}", field="household_id")
        steps = _with_signatures(conn, _step_rows(conn, rs.signatures.c.originator_id == hid))
        status_of = dict(conn.execute(select(reg.history.c.version, reg.history.c.status)
                                      .where(reg.history.c.household_id == hid)).all())
    for st in steps:
        st["status_after"] = status_of.get(st["version"])
    return {"household_id": hid, "code": h["code"], "village": h["village"],
            "status": h["status"], "steps": steps}


def payment_chain(db: Db, movement_id: str, account_id: str | None = None) -> dict:
    """A payment's chain: the receipts and allocations that funded it (by FIFO attribution),
    the payment itself, the payee household's registration, and what became of it."""
    with connected(db) as conn:
        m = movement(conn, movement_id, account_id, ("disbursed",))
        if m is None:
            raise NotFound(f"no payment {movement_id}", field="movement_id")
        paths = walk_up(conn, [(0, *r) for r in payments_ranges(conn, [m])[_key(m)]]).get(0, [])
        later = _later_movements(conn, m)
        payee = _payee(conn, m["payee_id"]) if m["payee_kind"] == "household" else None
        steps = _steps_of_paths(conn, paths)
        positions = [m["position"], *[x["log_position"] for x in later],
                     *[st["log_position"] for st in steps.values()],
                     *[st["log_position"] for st in (payee or {}).get("registration", [])]]
        sigs = _signatures(conn, positions)

    def signed(st: dict) -> dict:
        return plain({**st, "signatures": sigs.get(st["log_position"], [])})

    out = {"payment": signed({**_plain_movement(m), "log_position": m["position"],
                              "step": "FundAccount.Disbursed"}),
           "funding": [{"amount_fen": p["amount_fen"],
                        "steps": [signed(steps[_key(p["receipt"])]),
                                  *[signed(steps[_key(h)]) for h in p["via"]]]}
                       for p in sorted(paths, key=lambda p: -p["amount_fen"])],
           "later": [signed(x) for x in later], "payee": None}
    if payee is not None:
        payee["registration"] = [signed(st) for st in payee["registration"]]
        out["payee"] = payee
    return out


def _key(ref: dict) -> tuple[str, str]:
    return ref["account_id"], ref["movement_id"]


def _steps_of_paths(conn: Connection, paths: list[dict]) -> dict[tuple[str, str], dict]:
    """(account, movement) → the signed step of every receipt and hop of ``paths``.

    A hop back up (``allocation_reversed``) is signed on the upper account's ``Reversed``.
    """
    keys = {_key(p["receipt"]) for p in paths} | {_key(h) for p in paths for h in p["via"]}
    found = movements_by_key(conn, keys)
    up = {(m["counterparty_id"], m["movement_id"]) for m in found.values()
          if m["kind"] == "allocation_reversed"}
    signed_above = movements_by_key(conn, up) if up else {}
    out = {}
    for key, m in found.items():
        hop = m["kind"]
        if hop == "allocation_reversed":
            m = signed_above[(m["counterparty_id"], m["movement_id"])]
        out[key] = {**_plain_movement(m), "log_position": m["position"],
                    "step": STEP_OF_KIND[m["kind"]], "hop": hop}
    return out


def _later_movements(conn: Connection, m: dict) -> list[dict]:
    """Recoveries and reversals of a movement, in log order."""
    t = tr.movements
    q = select(t).where(t.c.account_id == m["account_id"],
                        t.c.of_movement_id == m["movement_id"]).order_by(t.c.position)
    return [{**_plain_movement(dict(r)), "log_position": r["position"],
             "step": STEP_OF_KIND[r["kind"]]} for r in conn.execute(q).mappings()]


def _payee(conn: Connection, household_id: str) -> dict:
    h = reg.households
    row = conn.execute(select(h.c.household_id, h.c.code, h.c.head_name, h.c.status,
                              h.c.village, h.c.registered_on, h.c.removed_on, h.c.removal_reason)
                       .where(h.c.household_id == household_id)).mappings().first()
    steps = _step_rows(conn, and_(rs.signatures.c.originator_id == household_id,
                                  rs.signatures.c.step.in_(IDENTIFICATION)))
    out = plain(dict(row)) if row else {"household_id": household_id}
    out["registration"] = steps
    return out


def _plain_movement(m: dict) -> dict:
    keys = ("account_id", "movement_id", "kind", "amount_fen", "effective_date", "purpose",
            "document_no", "counterparty_id", "source", "payee_kind", "payee_id", "project_id",
            "of_movement_id", "reason", "returned_fen", "reversed_by")
    return plain({k: m.get(k) for k in keys if m.get(k) is not None})


# money --------------------------------------------------------------------------------------
def money_down(db: Db, movement_id: str, account_id: str | None = None, *,
               limit: int | None = 500) -> dict:
    """Down from an allocation or a receipt to every final payee (FIFO attribution).

    Payees come largest first, cut at ``limit`` (a province's allocation reaches every
    household of its counties); the totals and ``payee_count`` are always whole.
    """
    with connected(db) as conn:
        m = movement(conn, movement_id, account_id, ("allocated", "received"))
        if m is None:
            raise NotFound(f"no allocation or receipt {movement_id}", field="movement_id")
        lot_account = m["counterparty_id"] if m["kind"] == "allocated" else m["account_id"]
        found = walk_down(conn, [(lot_account, m["movement_id"], 0, m["amount_fen"])])
    payees: dict[tuple, dict] = {}
    for p in found["payments"]:
        key = (p["payee_kind"], p["payee_id"])
        entry = payees.setdefault(key, {"payee_kind": key[0], "payee_id": key[1],
                                        "amount_fen": 0, "payments": []})
        entry["amount_fen"] += p["amount_fen"]
        entry["payments"].append(p)
    reached = sorted(payees.values(),
                     key=lambda e: (-e["amount_fen"], e["payee_kind"], e["payee_id"]))
    return plain({
        "from": _plain_movement(m), "amount_fen": m["amount_fen"],
        "paid_fen": sum(e["amount_fen"] for e in reached),
        "held_fen": sum(h["amount_fen"] for h in found["held"]),
        "sent_back_fen": sum(s["amount_fen"] for s in found["sent_back"]),
        "payee_count": len(reached), "payees": reached[:limit],
        "held": sorted(found["held"], key=lambda h: h["account_id"]),
        "sent_back": found["sent_back"]})


def money_up(db: Db, movement_id: str, account_id: str | None = None) -> dict:
    """Up from a payment to the receipts it came from, through which allocations."""
    with connected(db) as conn:
        m = movement(conn, movement_id, account_id, ("disbursed", "allocated"))
        if m is None:
            raise NotFound(f"no payment or allocation {movement_id}", field="movement_id")
        if m["kind"] == "disbursed":
            ranges = payments_ranges(conn, [m])[_key(m)]
        else:
            ranges = [(m["counterparty_id"], m["movement_id"], 0, m["amount_fen"])]
        sources = walk_up(conn, [(0, *r) for r in ranges]).get(0, [])
        receipts = movements_by_key(conn, [_key(s["receipt"]) for s in sources])
    for s in sources:
        s["receipt"] = _plain_movement(receipts[_key(s["receipt"])])
    return plain({"movement": _plain_movement(m),
                  "net_fen": m["amount_fen"] - m["returned_fen"],
                  "sources": sorted(sources, key=lambda s: -s["amount_fen"])})


def household_money(db: Db, household_id: str) -> dict:
    """Everything a household received: each payment net of what came back, the receipts
    (fund source, source) it came from, and who signed the payment and each allocation."""
    hid = str(household_id)
    t = tr.movements
    with connected(db) as conn:
        pays = [dict(r) for r in conn.execute(
            select(t).where(t.c.payee_id == hid, t.c.payee_kind == "household")
            .order_by(t.c.effective_date, t.c.position)).mappings()]
        ranges = payments_ranges(conn, pays)
        paths = walk_up(conn, [(key, *r) for key, rs_ in ranges.items() for r in rs_])
        steps = _steps_of_paths(conn, [p for ps in paths.values() for p in ps])
        accounts = {r.account_id: r for r in conn.execute(
            select(tr.accounts.c.account_id, tr.accounts.c.name, tr.accounts.c.fund_source)
            .where(tr.accounts.c.account_id.in_(sorted({k[0] for k in steps}))))}
        sigs = _signatures(conn, [m["position"] for m in pays]
                           + [st["log_position"] for st in steps.values()])
    by_source: dict[tuple, dict] = {}
    payments = []
    for m in pays:
        sources = []
        for p in paths.get(_key(m), []):
            r = steps[_key(p["receipt"])]
            s = by_source.setdefault((r["account_id"], r.get("source")), {
                "source": r.get("source"), "account_id": r["account_id"],
                "account": accounts[r["account_id"]].name,
                "fund_source": accounts[r["account_id"]].fund_source, "amount_fen": 0})
            s["amount_fen"] += p["amount_fen"]
            sources.append({"amount_fen": p["amount_fen"], "receipt": r,
                            "via": [{**steps[_key(h)],
                                     "signatures": sigs.get(steps[_key(h)]["log_position"], [])}
                                    for h in p["via"]]})
        payments.append({**_plain_movement(m), "net_fen": m["amount_fen"] - m["returned_fen"],
                         "signatures": sigs.get(m["position"], []), "sources": sources})
    signers = sorted({(s["official_id"], s["name"] or "") for lst in sigs.values() for s in lst},
                     key=lambda x: x[1])
    return plain({"household_id": hid,
                  "received_fen": sum(m["amount_fen"] for m in pays),
                  "returned_fen": sum(m["returned_fen"] for m in pays),
                  "net_fen": sum(m["amount_fen"] - m["returned_fen"] for m in pays),
                  "by_source": sorted(by_source.values(), key=lambda s: -s["amount_fen"]),
                  "payments": payments,
                  "signed_by": [{"official_id": o, "name": n} for o, n in signers]})


# liability ------------------------------------------------------------------------------------
def official_liability(db: Db, official_id: str, *, date_from: dt.date | None = None,
                       date_to: dt.date | None = None, limit: int = 50) -> dict:
    """What an official signed over a period (business dates, inclusive) and what later
    became of it (``resp_liabilities``; and the red flags standing on it, ``flagged``).  Lists are cut at ``limit``; counts and sums are
    whole."""
    oid = str(official_id)
    days, li, m, h = rs.official_days, rs.liabilities, rs.movements, rs.households
    with connected(db) as conn:
        who = _officials(conn, {oid}).get(oid)
        if who is None:
            raise NotFound(f"no official {official_id}", field="official_id")
        by_step = [dict(r) for r in conn.execute(
            select(days.c.step, days.c.role, total(days.c.count).label("count"),
                   total(days.c.amount_fen).label("amount_fen"))
            .where(days.c.official_id == oid, *_period(days.c.effective_date, date_from, date_to))
            .group_by(days.c.step, days.c.role).order_by(days.c.step, days.c.role)).mappings()]
        approved = _households_signed(conn, oid, "Household.ApprovedByCounty", by_step,
                                      date_from, date_to, limit)
        exits = _households_signed(conn, oid, "Household.ExitApprovedByCounty", by_step,
                                   date_from, date_to, limit)
        rows = [dict(r) for r in conn.execute(
            select(li, h.c.code.label("household_code"), m.c.recovered_fen, m.c.reversed_by,
                   m.c.amount_fen.label("paid_fen"))
            .outerjoin(h, h.c.household_id == li.c.household_id)
            .outerjoin(m, and_(m.c.account_id == li.c.account_id,
                               m.c.movement_id == li.c.movement_id))
            .where(li.c.official_id == oid, *_period(li.c.signed_on, date_from, date_to))
            .order_by(li.c.happened_on, li.c.event_position, li.c.signed_position)).mappings()]
    kinds: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        kinds[r["kind"]].append(r)
    return plain({
        "official": {k: who[k] for k in ("official_id", "code", "name", "unit_code",
                                         "region_code")},
        "period": {"from": date_from, "to": date_to},
        "signed": {"steps": sum(r["count"] for r in by_step), "by_step": by_step},
        "households_approved": approved, "exits_approved": exits,
        "later": {
            "households_removed": _cut(_per_household(kinds["household_removed"], "removed_on",
                                                      "removal_reason"), limit),
            "exits_relapsed": _cut(_per_household(kinds["exit_relapsed"], "relapsed_on",
                                                  "cause"), limit),
            "payments_recovered": _cut(_per_payment(kinds["payment_recovered"]), limit),
            "payments_reversed": _cut(_per_payment(kinds["payment_reversed"]), limit),
            "allocations_reversed": _cut(_per_payment(kinds["allocation_reversed"]), limit),
            "receipts_reversed": _cut(_per_payment(kinds["receipt_reversed"]), limit),
            "payments_to_removed_households_outstanding": _outstanding(
                kinds["paid_removed_household"], limit),
            "flagged": flags_signed_by(db, oid, date_from=date_from, date_to=date_to,
                                       limit=limit),
        }})


def _period(column: Any, date_from: dt.date | None, date_to: dt.date | None) -> list:
    return [c for c in (column >= date_from if date_from else None,
                        column <= date_to if date_to else None) if c is not None]


def _households_signed(conn: Connection, oid: str, step: str, by_step: list[dict],
                       date_from: dt.date | None, date_to: dt.date | None, limit: int) -> dict:
    s, h = rs.signatures, rs.households
    items = conn.execute(
        select(s.c.household_id, h.c.code, s.c.role, s.c.effective_date, h.c.removed_on,
               h.c.relapse_count)
        .join(h, h.c.household_id == s.c.household_id)
        .where(s.c.official_id == oid, s.c.step == step,
               *_period(s.c.effective_date, date_from, date_to))
        .order_by(s.c.effective_date, s.c.log_position).limit(limit)).mappings().all()
    return {"count": sum(r["count"] for r in by_step if r["step"] == step),
            "items": [dict(r) for r in items]}


def _per_household(rows: list[dict], when: str, why: str) -> list[dict]:
    out: dict[str, dict] = {}
    for r in rows:
        entry = out.setdefault(r["household_id"], {
            "household_id": r["household_id"], "code": r["household_code"],
            when: r["happened_on"], why: r["detail"], "steps_signed": []})
        entry["steps_signed"].append({"step": r["step"], "role": r["role"],
                                      "signed_on": r["signed_on"]})
    return list(out.values())


def _per_payment(rows: list[dict]) -> list[dict]:
    return [{"account_id": r["account_id"], "movement_id": r["movement_id"], "step": r["step"],
             "role": r["role"], "signed_on": r["signed_on"], "happened_on": r["happened_on"],
             "amount_fen": r["amount_fen"], "reason": r["detail"],
             "household_id": r["household_id"]} for r in rows]


def _outstanding(rows: list[dict], limit: int) -> dict:
    """Payments to households later removed, less what was recovered (谁签字谁追回)."""
    items = []
    for r in rows:
        left = 0 if r["reversed_by"] else r["paid_fen"] - r["recovered_fen"]
        if left > 0:
            items.append({**_per_payment([r])[0], "household_code": r["household_code"],
                          "removed_on": r["happened_on"], "outstanding_fen": left})
    return {**_cut(items, limit), "outstanding_fen": sum(i["outstanding_fen"] for i in items)}


def _cut(items: list, limit: int) -> dict[str, Any]:
    return {"count": len(items), "items": [dict(i) for i in items[:limit]]}
