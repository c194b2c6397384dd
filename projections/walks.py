"""Walking the money trace (``projections.money_trace``) up and down, by exact fen ranges.

Down from an allocation or a receipt: start at the lot it created and follow each draw
that overlaps the range — a payment ends the walk at its payee, an allocation (or an
allocation reversed back up) continues in the lot it fed, a reversed receipt ends at the
source; money returned from payees continues in its return lots; what no draw took is
still held by the account.  Up from a payment: map each draw's range back through its
lot to the lot's origin until a receipt.  Both walks load one level at a time, for all
their ranges at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from projections.money_trace import draws, lots, movements
from projections.projection import KEYS_PER_QUERY, keys_in

Key = tuple[str, str]  # (account id, lot id) or (account id, movement id)


def _rows_by_key(conn: Connection, table: Any, cols: tuple[str, str],
                 keys: Iterable[Key]) -> dict[Key, list[dict]]:
    keys = list(set(keys))
    out: dict[Key, list[dict]] = defaultdict(list)
    columns = [table.c[cols[0]], table.c[cols[1]]]
    for i in range(0, len(keys), KEYS_PER_QUERY):
        where, params = keys_in(conn, columns, keys[i:i + KEYS_PER_QUERY])
        for r in conn.execute(select(table).where(where), params).mappings():
            out[(r[cols[0]], r[cols[1]])].append(dict(r))
    return out


def _one_by_key(conn: Connection, table: Any, cols: tuple[str, str],
                keys: Iterable[Key]) -> dict[Key, dict]:
    return {k: v[0] for k, v in _rows_by_key(conn, table, cols, keys).items()}


def movement(conn: Connection, movement_id: str, account_id: str | None = None,
             kinds: tuple[str, ...] = ()) -> dict | None:
    q = select(movements).where(movements.c.movement_id == movement_id)
    if account_id:
        q = q.where(movements.c.account_id == account_id)
    if kinds:
        q = q.where(movements.c.kind.in_(kinds))
    return next((dict(r) for r in conn.execute(q.order_by(movements.c.position)).mappings()),
                None)


def walk_down(conn: Connection, start: list[tuple[str, str, int, int]]) -> dict[str, Any]:
    """Where the fen ranges ``[(account, lot, lo, hi)]`` went: payees, held, sent back."""
    payments: list[dict] = []
    held: dict[str, dict] = {}
    sent_back: list[dict] = []
    frontier = start
    while frontier:
        keys = [(a, lot) for a, lot, _, _ in frontier]
        lot_rows = _one_by_key(conn, lots, ("account_id", "lot_id"), keys)
        draws_of = _rows_by_key(conn, draws, ("account_id", "lot_id"), keys)
        returns_of = _rows_by_key(conn, lots, ("account_id", "parent_lot_id"), keys)
        moves = _one_by_key(conn, movements, ("account_id", "movement_id"),
                            [(a, d["movement_id"]) for (a, _), ds in draws_of.items() for d in ds])
        nxt = []
        for account, lot_id, lo, hi in frontier:
            lot = lot_rows[(account, lot_id)]
            n = _overlap(lo, hi, lot["drawn_fen"], lot["amount_fen"])
            if n:
                h = held.setdefault(account, {"account_id": account, "amount_fen": 0,
                                              "since": lot["effective_date"]})
                h["amount_fen"] += n[1] - n[0]
                h["since"] = min(h["since"], lot["effective_date"])
            for d in draws_of.get((account, lot_id), ()):
                n = _overlap(lo, hi, d["lot_offset"],
                             d["lot_offset"] + d["amount_fen"] - d["returned_fen"])
                if not n:
                    continue
                m = moves[(account, d["movement_id"])]
                if m["kind"] == "disbursed":
                    payments.append({**_movement_ref(m), "amount_fen": n[1] - n[0]})
                elif m["kind"] in ("allocated", "allocation_reversed"):
                    shift = d["movement_offset"] - d["lot_offset"]
                    nxt.append((m["counterparty_id"], m["movement_id"], n[0] + shift, n[1] + shift))
                else:  # a reversed receipt: back to where it came from
                    sent_back.append({**_movement_ref(m), "amount_fen": n[1] - n[0]})
            for r in returns_of.get((account, lot_id), ()):
                n = _overlap(lo, hi, r["parent_offset"], r["parent_offset"] + r["amount_fen"])
                if n:
                    nxt.append((account, r["lot_id"], n[0] - r["parent_offset"],
                                n[1] - r["parent_offset"]))
        frontier = nxt
    return {"payments": payments, "held": list(held.values()), "sent_back": sent_back}


def walk_up(conn: Connection, start: list[tuple[Any, str, str, int, int]]) -> dict[Any, list[dict]]:
    """Where fen ranges came from: ``[(tag, account, lot, lo, hi)]`` → tag → paths.

    A path: ``amount_fen``, ``receipt`` (account and movement of the root) and ``via``,
    the hops ``{kind: transfer | returned, account_id, movement_id}`` from the receipt
    down, top first.  All ranges climb together, three queries per level.
    """
    out: dict[Any, dict[tuple, dict]] = defaultdict(dict)
    frontier = [(tag, a, lot, lo, hi, ()) for tag, a, lot, lo, hi in start]
    while frontier:
        lot_rows = _one_by_key(conn, lots, ("account_id", "lot_id"),
                               [(a, lot) for _, a, lot, *_ in frontier])
        senders = [(r["from_account_id"], r["movement_id"]) for r in lot_rows.values()
                   if r["origin"] == "transfer"]
        sent = _rows_by_key(conn, draws, ("account_id", "movement_id"), senders)
        nxt = []
        for tag, account, lot_id, lo, hi, via in frontier:
            lot = lot_rows[(account, lot_id)]
            if lot["origin"] == "external":
                key = (account, lot["movement_id"], via)
                entry = out[tag].get(key)
                if entry is None:
                    entry = out[tag][key] = {
                        "amount_fen": 0,
                        "receipt": {"account_id": account, "movement_id": lot["movement_id"]},
                        "via": [{"kind": k, "account_id": a, "movement_id": m} for k, a, m in via]}
                entry["amount_fen"] += hi - lo
            elif lot["origin"] == "return":
                hop = ("returned", account, lot["movement_id"])
                base = lot["parent_offset"]
                nxt.append((tag, account, lot["parent_lot_id"], base + lo, base + hi, (hop, *via)))
            else:
                sender = (lot["from_account_id"], lot["movement_id"])
                hop = ("transfer", *sender)
                for d in sent.get(sender, ()):
                    start_ = d["movement_offset"]
                    n = _overlap(lo, hi, start_, start_ + d["amount_fen"])
                    if n:
                        shift = d["lot_offset"] - d["movement_offset"]
                        nxt.append((tag, sender[0], d["lot_id"], n[0] + shift, n[1] + shift,
                                    (hop, *via)))
        frontier = nxt
    return {tag: list(paths.values()) for tag, paths in out.items()}


def movements_by_key(conn: Connection, keys: Iterable[Key]) -> dict[Key, dict]:
    """Movement rows by (account id, movement id), a query per ``KEYS_PER_QUERY`` keys."""
    return _one_by_key(conn, movements, ("account_id", "movement_id"), keys)


def payments_ranges(conn: Connection, ms: list[dict]) -> dict[Key, list[tuple[str, str, int, int]]]:
    """The fen ranges payments still have out (net of what came back), per lot drawn:
    (account, movement) → [(account, lot, lo, hi)], in one query."""
    out: dict[Key, list] = {(m["account_id"], m["movement_id"]): [] for m in ms}
    found = _rows_by_key(conn, draws, ("account_id", "movement_id"), list(out))
    for key, ds in found.items():
        out[key] = [(key[0], d["lot_id"], d["lot_offset"],
                     d["lot_offset"] + d["amount_fen"] - d["returned_fen"])
                    for d in sorted(ds, key=lambda d: d["k"])
                    if d["amount_fen"] > d["returned_fen"]]
    return out


def _overlap(lo: int, hi: int, a: int, b: int) -> tuple[int, int] | None:
    s, e = max(lo, a), min(hi, b)
    return (s, e) if s < e else None


def _movement_ref(m: dict) -> dict:
    ref = {"account_id": m["account_id"], "movement_id": m["movement_id"], "kind": m["kind"],
           "effective_date": m["effective_date"], "document_no": m["document_no"],
           "purpose": m["purpose"]}
    for field in ("source", "payee_kind", "payee_id", "project_id"):
        if m.get(field):
            ref[field] = m[field]
    return ref
