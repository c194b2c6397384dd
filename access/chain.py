"""Hash chains over the access log and the token changes: edits, deletions and insertions
made behind the application's back (triggers dropped, raw SQL) are found, and named.

Each chained row carries ``chain_hash = SHA-256(previous row's chain_hash ‖ canonical
content)`` (hex; the first row's previous hash is 32 zero bytes), the canonical content
being ``json.dumps([chain, {column: value}], sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` in UTF-8 over every column but ``id`` and ``chain_hash``, times as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC).  Chains:

==================  =====================  ============================================
``access_log``      ``api_access_log``     who read which subject (``access.reads``)
``token_changes``   ``api_token_changes``  every token created or revoked (``tokens``)
==================  =====================  ============================================

Appending is serialised by the chain's row in ``chain_heads(chain, row_count, last_id,
head)``: the first statement of the appending transaction updates it (the row lock on
PostgreSQL, the write lock on SQLite), then the head is read, the rows are hashed and
inserted and the head moved, all in that one transaction — a few statements more per
read, measured by ``bench/api.py`` (``read*``).  Every checkpoint signs each chain's
``row_count`` and ``head`` (``audit.chains``, read there by table name), so a chain
rewritten after a checkpoint contradicts a signed head.

``verify_chains`` (``zhuisu verify``) walks each chain in id order and reports:

- the first row whose hash does not follow from the row before it (changed, or rows
  before it deleted: an id gap says so) or that lost its hash;
- a chain shorter or with another head than ``chain_heads`` says (rows deleted at the end);
- a chain that does not reach a head a checkpoint signed (rewritten or cut after it);
- for tokens, a row of ``api_tokens`` that is not what its recorded changes made it (a
  token inserted, re-roled, re-scoped, re-keyed or un-revoked with raw SQL).

Rows written before the chains existed (an older store) have no hash and are reported as
such, only as a prefix of the table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, select, update

from access.tables import (
    GENESIS,
    access_log,
    chain_heads,
    ensure_heads,
    token_changes,
    tokens,
)

CHAINS: dict[str, Table] = {"access_log": access_log, "token_changes": token_changes}


def canonical_time(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # SQLite keeps no zone: every time stored is UTC
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def canonical_datetime(value: dt.datetime) -> dt.datetime:
    """A stored time as tz-aware UTC (SQLite keeps no zone: every time stored is UTC)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def content_of(chain: str, row: Mapping[str, Any]) -> bytes:
    """The canonical content of a row of ``chain`` (every column but id and chain_hash)."""
    table = CHAINS[chain]
    content = {c.name: canonical_time(row.get(c.name)) for c in table.columns
               if c.name not in ("id", "chain_hash")}
    return json.dumps([chain, content], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def link(previous: str, chain: str, row: Mapping[str, Any]) -> str:
    """The chain hash of ``row`` after a row whose chain hash is ``previous`` (hex)."""
    return hashlib.sha256(bytes.fromhex(previous) + content_of(chain, row)).hexdigest()


def utc(now: dt.datetime) -> dt.datetime:
    """A time as stored: tz-aware UTC (SQLite would drop another zone's offset).  A naive
    time is one read back from SQLite, which keeps every time as UTC without its zone."""
    return canonical_datetime(now)


def lock(conn: Connection, chain: str) -> tuple[int, str]:
    """Take ``chain``'s append lock for the rest of the transaction; (rows, head)."""
    heads = chain_heads.c
    take = (update(chain_heads).where(heads.chain == chain).values(row_count=heads.row_count)
            .returning(heads.row_count, heads.head))
    row = conn.execute(take).first()
    if row is None:
        ensure_heads(conn)
        row = conn.execute(take).one()
    return int(row[0]), str(row[1])


def append(conn: Connection, chain: str, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``chain``'s table, chained, in the caller's transaction (which
    this serialises with every other appender of the chain until it ends)."""
    if not rows:
        return
    heads = chain_heads.c
    count, head = lock(conn, chain)
    for row in rows:
        head = row["chain_hash"] = link(head, chain, row)
    table = CHAINS[chain]
    last = max(conn.execute(insert(table).returning(table.c.id), rows).scalars())
    conn.execute(update(chain_heads).where(heads.chain == chain).values(
        row_count=count + len(rows), last_id=last, head=head))


def adopt_tokens(engine: Engine, now: dt.datetime) -> int:
    """An older store: record its existing tokens as ``adopted`` changes, once (the token
    changes start then).  How many were adopted."""
    with engine.begin() as conn:
        lock(conn, "token_changes")
        if conn.execute(select(token_changes.c.id).limit(1)).first() is not None:
            return 0
        found = list(conn.execute(select(tokens).order_by(tokens.c.id)).mappings())
        rows = [{"at": utc(now), "token_id": t["id"], "change": "adopted", "name": t["name"],
                 "role": t["role"], "region_code": t["region_code"],
                 "region_level": t["region_level"], "token_hash": t["token_hash"],
                 "by": t["created_by"]} for t in found]
        rows += [{**row, "at": utc(canonical_datetime(t["revoked_at"])), "change": "revoked"}
                 for row, t in zip(list(rows), found) if t["revoked_at"] is not None]
        append(conn, "token_changes", rows)
        return len(found)


# verification -------------------------------------------------------------------------
@dataclass
class ChainReport:
    """One chain: rows chained, rows from before the chain, its head, and what is wrong
    (the first bad row first)."""

    chain: str
    rows: int = 0
    before_chain: int = 0
    head: str = GENESIS
    commitments: int = 0
    findings: list[str] = field(default_factory=list)
    first_bad_row: int | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def message(self) -> str:
        if self.ok:
            older = f", {self.before_chain} older rows unchained" if self.before_chain else ""
            return (f"{self.chain}: OK, {self.rows} rows chained, head {self.head[:16]}…, "
                    f"{self.commitments} signed heads held{older}")
        return f"{self.chain}: {self.findings[0]}"

    def to_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "ok": self.ok, "message": self.message,
                "rows": self.rows, "before_chain": self.before_chain, "head": self.head,
                "commitments": self.commitments, "first_bad_row": self.first_bad_row,
                "findings": self.findings}


def _bad(report: ChainReport, row_id: int | None, message: str) -> None:
    if report.first_bad_row is None and row_id is not None:
        report.first_bad_row = row_id
    report.findings.append(message)


def verify_chain(conn: Connection, chain: str, commitments: Iterable[Any] = ()) -> ChainReport:
    """Walk ``chain`` in id order (see the module docstring).  ``commitments``: objects with
    ``checkpoint_id``, ``chain``, ``rows`` and ``head`` (``audit.chains.Commitment``)."""
    table = CHAINS[chain]
    report = ChainReport(chain)
    signed = sorted((c for c in commitments if c.chain == chain), key=lambda c: c.rows)
    report.commitments = len(signed)
    at_count: dict[int, tuple[int, str]] = {}  # rows chained → (row id, hash)
    wanted = {c.rows for c in signed}
    previous, previous_id = GENESIS, 0
    result = conn.execution_options(yield_per=5000).execute(select(table).order_by(table.c.id))
    for row in result.mappings():
        rid, stored = row["id"], row["chain_hash"]
        if stored is None:
            if report.rows:
                _bad(report, rid, f"row {rid} has no chain hash, after {report.rows} chained "
                                  f"rows (its hash was removed)")
            else:
                report.before_chain += 1
            previous_id = rid
            continue
        expected = link(previous, chain, row)
        if stored != expected and report.first_bad_row is None:
            gap = rid - previous_id - 1
            if gap > 0 and report.rows:
                _bad(report, rid, f"row {rid} does not follow row {previous_id}: "
                                  f"rows {previous_id + 1}..{rid - 1} are missing (deleted?) "
                                  f"or row {rid} was changed")
            else:
                _bad(report, rid, f"row {rid} was changed: its content no longer hashes to "
                                  f"its chain hash")
        report.rows += 1
        previous, previous_id = stored, rid
        if report.rows in wanted:
            at_count[report.rows] = (rid, stored)
    report.head = previous
    heads = conn.execute(select(chain_heads.c.row_count, chain_heads.c.head)
                         .where(chain_heads.c.chain == chain)).first()
    if heads is not None and (heads.row_count, heads.head) != (report.rows, report.head):
        _bad(report, previous_id + 1 if heads.row_count > report.rows else None,
             f"chain_heads says {heads.row_count} rows ending in {heads.head[:16]}…, the "
             f"table holds {report.rows} ending in {report.head[:16]}…"
             + (": the last rows were deleted" if heads.row_count > report.rows else ""))
    for c in signed:
        got = at_count.get(c.rows)
        if got is None:
            _bad(report, previous_id + 1, f"checkpoint {c.checkpoint_id} signed {c.rows} rows, "
                                          f"the table holds {report.rows}: rows were deleted")
        elif got[1] != c.head:
            _bad(report, None, f"checkpoint {c.checkpoint_id} signed {c.rows} rows ending in "
                               f"{c.head[:16]}…, row {got[0]} (the {c.rows}th) hashes to "
                               f"{got[1][:16]}…: the chain was rewritten after it was signed")
    return report


def verify_tokens(conn: Connection, report: ChainReport) -> None:
    """Each row of ``api_tokens`` must be what its recorded changes made it."""
    made: dict[str, dict[str, Any]] = {}
    revoked: dict[str, Any] = {}
    for change in conn.execute(select(token_changes).order_by(token_changes.c.id)).mappings():
        if change["change"] in ("created", "adopted"):
            made[change["token_id"]] = dict(change)
        elif change["change"] == "revoked":
            revoked.setdefault(change["token_id"], change["at"])
    seen = set()
    for row in conn.execute(select(tokens).order_by(tokens.c.id)).mappings():
        seen.add(row["id"])
        change = made.get(row["id"])
        if change is None:
            _bad(report, None, f"token {row['id']} ({row['role']}) has no recorded creation: "
                               f"inserted behind the application's back")
            continue
        differ = [name for name in ("name", "role", "region_code", "region_level",
                                    "token_hash")
                  if row[name] != change[name]]
        if change["change"] == "created":
            if canonical_time(row["created_at"]) != canonical_time(change["at"]):
                differ.append("created_at")
            if row["created_by"] != change["by"]:
                differ.append("created_by")
        if canonical_time(row["revoked_at"]) != canonical_time(revoked.get(row["id"])):
            differ.append("revoked_at")
        if differ:
            _bad(report, change["id"], f"token {row['id']}: {', '.join(differ)} differ from "
                                       f"its recorded changes (change {change['id']})")
    for token_id, change in made.items():
        if token_id not in seen:
            _bad(report, change["id"], f"token {token_id} was created (change {change['id']}) "
                                       f"but its row is gone")


def verify_chains(engine: Engine, commitments: Iterable[Any] = ()) -> list[ChainReport]:
    """Every chain, held against ``chain_heads`` and the heads the checkpoints signed; the
    token table against the token changes."""
    commitments = list(commitments)
    with engine.connect() as conn:
        reports = [verify_chain(conn, chain, commitments) for chain in CHAINS]
        verify_tokens(conn, reports[1])
    return reports
