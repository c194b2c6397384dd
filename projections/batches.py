"""Payment batches (支付令 + 分户清单), their bank returns (回盘) and roster imports (花名册):
the reconciliation read model (对账).

``batch_batches``: one row per batch — account, purpose, date, document number, source
file and its SHA-256, rows root, signers (the manifest's signatures), the bank return
when recorded (its id, date, document, file, signers) and the counts and fen of rows
ordered (下达), returned (退回) and re-issued (重发).  ``batch_rows``: one row per row —
its payment, payee, amount, card hashes, source row, and whether the bank returned it
(with the reason) and which later payment re-issued it.  ``batch_movements`` finds a
row by its payment (account, movement id) for a return or a re-issue.

A row's state is derived when read (``row_state``): ``pending`` until the batch's bank
return is recorded, then ``credited`` (入账) unless the return names it: ``returned``, or
``reissued`` once a row of a later batch names it in ``reissue_of``.  A batch's credited
rows and fen are ordered − returned once its return is recorded; before, they are
pending (``None``).  A batch's ``state``: ``pending`` (no return yet), ``credited``
(every row credited), ``returned`` (some returned row not re-issued), ``reissued``
(every returned row re-issued).

``batch_rosters`` / ``batch_roster_rows``: each roster import (``Roster.Imported``) and
the households it made (``Household.Applied`` with a ``batch``).

Rows, manifests and returns are events of one aggregate (the account, or the roster and
its households written together), in log order.  Queries: ``list_batches``,
``batch_view``, ``batch_rows_page``, ``batch_row``, ``roster_view``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    select,
)

from domain.errors import NotFound
from projections import responsibility as rs
from projections.events import Event
from projections.projection import Projection, Rows, handles
from projections.queries import Db, connected, plain
from projections.tracking import metadata

LEVELS = ("province", "city", "county", "township", "village")
STATES = ("pending", "credited", "returned", "reissued")

accounts = Table(
    "batch_accounts", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("name", Text, nullable=False),
    Column("region_code", String(32), nullable=False),
    Column("region_path", JSON, nullable=False),
)

batches = Table(
    "batch_batches", metadata,
    Column("batch_id", String(36), primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("account_name", Text, nullable=False),
    Column("region_code", String(32), nullable=False),
    *[Column(level, String(32)) for level in LEVELS[:-1]],  # the account's region path
    Column("effective_date", Date, nullable=False),
    Column("purpose", String(48), nullable=False),
    Column("document_no", Text, nullable=False),
    Column("payee_kind", String(16), nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("rows_root", String(64), nullable=False),
    Column("source_file", Text),
    Column("source_sha256", Text),
    Column("signers", JSON, nullable=False),  # [{official_id, role, key_id, position, …}]
    Column("log_position", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("return_id", String(36)),
    Column("returned_on", Date),
    Column("return_document_no", Text),
    Column("return_source_file", Text),
    Column("return_source_sha256", Text),
    Column("return_rows_root", String(64)),
    Column("return_signers", JSON),
    Column("return_position", BigInteger),
    Column("returned_rows", Integer, nullable=False),
    Column("returned_fen", BigInteger, nullable=False),
    Column("reissued_rows", Integer, nullable=False),
    Column("reissued_fen", BigInteger, nullable=False),
)
Index("batch_batches_account", batches.c.account_id, batches.c.effective_date)
for _level in LEVELS[:-1]:
    Index(f"batch_batches_{_level}", batches.c[_level])

rows_ = Table(
    "batch_rows", metadata,
    Column("batch_id", String(36), primary_key=True),
    Column("row", Integer, primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("movement_id", String(36), nullable=False),
    Column("payee_kind", String(16), nullable=False),
    Column("payee_id", String(64), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("bank_account_hash", Text),
    Column("holder_id_hash", Text),
    Column("source_row", Integer),
    Column("reissue_of", String(36)),  # the returned payment this row re-issues
    Column("log_position", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("returned", Integer, nullable=False),  # 1: the bank returned it
    Column("return_row", Integer),
    Column("returned_reason", Text),
    Column("returned_movement_id", String(36)),
    Column("bank_serial", Text),
    Column("returned_position", BigInteger),
    Column("reissued_by", String(36)),  # the payment that re-issued it
    Column("reissued_batch_id", String(36)),
)
Index("batch_rows_payee", rows_.c.payee_id)

movements = Table(  # a payment of a batch, by its account and movement id
    "batch_movements", metadata,
    Column("account_id", String(36), primary_key=True),
    Column("movement_id", String(36), primary_key=True),
    Column("batch_id", String(36), nullable=False),
    Column("row", Integer, nullable=False),
)

rosters = Table(
    "batch_rosters", metadata,
    Column("import_id", String(36), primary_key=True),
    Column("roster_id", String(36), nullable=False),
    Column("county_code", String(32), nullable=False),
    *[Column(level, String(32)) for level in LEVELS[:-1]],
    Column("effective_date", Date, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("rows_root", String(64), nullable=False),
    Column("source_file", Text),
    Column("source_sha256", Text),
    Column("signers", JSON, nullable=False),
    Column("log_position", BigInteger, nullable=False),
    Column("households", Integer, nullable=False),  # imported so far
    Column("exited", Integer, nullable=False),
)

roster_rows = Table(
    "batch_roster_rows", metadata,
    Column("import_id", String(36), primary_key=True),
    Column("row", Integer, primary_key=True),
    Column("household_id", String(36), nullable=False),
    Column("household_code", Text, nullable=False),
    Column("village_code", String(32), nullable=False),
    Column("head_name", Text, nullable=False),
    Column("members_count", Integer, nullable=False),
    Column("effective_date", Date, nullable=False),
    Column("exited_on", Date),
    Column("source_rows", JSON, nullable=False),
    Column("log_position", BigInteger, nullable=False),
)


def _signers(e: Event) -> list[dict]:
    return [{"official_id": s["official_id"], "role": s["role"], "key_id": s["key_id"],
             "position": s.get("position"), "position_region": s.get("position_region"),
             "responsibility": s.get("responsibility")} for s in e["signatures"]]


class Batches(Projection):
    name = "batches"
    version = 1
    tables = (accounts, batches, rows_, movements, rosters, roster_rows)

    def prefetch(self, events: list[Event], rows: Rows) -> None:
        rows.load(accounts, {(e.originator_id,) for e in events
                             if e.step == "FundAccount.BatchOrdered"})
        rows.load(movements, [(e.originator_id, e["of_movement_id"]) for e in events
                              if e.step == "FundAccount.PaymentReturned"]
                  + [(e.originator_id, e["batch"]["reissue_of"]) for e in events
                     if e.step == "FundAccount.Disbursed" and e.get("batch")
                     and e["batch"].get("reissue_of")])

    @handles("FundAccount.Opened")
    def opened(self, e: Event, rows: Rows) -> None:
        rows.insert(accounts, {"account_id": e.originator_id, "name": e["name"],
                               "region_code": e["region_code"],
                               "region_path": e["region_path"]})

    @handles("FundAccount.BatchOrdered")
    def ordered(self, e: Event, rows: Rows) -> None:
        account = rows.need(accounts, e.originator_id)
        path = account["region_path"]
        rows.insert(batches, {
            "batch_id": e["batch_id"], "account_id": e.originator_id,
            "account_name": account["name"], "region_code": account["region_code"],
            **{level: path.get(level) for level in LEVELS[:-1]},
            "effective_date": e.day, "purpose": e["purpose"], "document_no": e["document_no"],
            "payee_kind": e["payee_kind"], "row_count": e["row_count"],
            "total_fen": e["total_fen"], "rows_root": e["rows_root"],
            "source_file": e.get("source_file"), "source_sha256": e.get("source_sha256"),
            "signers": _signers(e), "log_position": e.position, "version": e.version,
            "return_id": None, "returned_on": None, "return_document_no": None,
            "return_source_file": None, "return_source_sha256": None,
            "return_rows_root": None, "return_signers": None, "return_position": None,
            "returned_rows": 0, "returned_fen": 0, "reissued_rows": 0, "reissued_fen": 0})

    @handles("FundAccount.Disbursed")
    def disbursed(self, e: Event, rows: Rows) -> None:
        row = e.get("batch")
        if not row:
            return
        rows.insert(rows_, {
            "batch_id": row["batch_id"], "row": row["row"], "account_id": e.originator_id,
            "movement_id": e["movement_id"], "payee_kind": e["payee_kind"],
            "payee_id": e["payee_id"], "amount_fen": e["amount_fen"],
            "bank_account_hash": row.get("bank_account_hash"),
            "holder_id_hash": row.get("holder_id_hash"), "source_row": row.get("source_row"),
            "reissue_of": row.get("reissue_of"), "log_position": e.position,
            "version": e.version, "returned": 0, "return_row": None, "returned_reason": None,
            "returned_movement_id": None, "bank_serial": None, "returned_position": None,
            "reissued_by": None, "reissued_batch_id": None})
        rows.insert(movements, {"account_id": e.originator_id, "movement_id": e["movement_id"],
                                "batch_id": row["batch_id"], "row": row["row"]})
        if row.get("reissue_of"):
            found = rows.get(movements, e.originator_id, row["reissue_of"])
            if found is None:  # a re-issue of a payment made alone: nothing to reconcile
                return
            original = rows.need(rows_, found["batch_id"], found["row"])
            original.update(reissued_by=e["movement_id"], reissued_batch_id=row["batch_id"])
            rows.changed(rows_, original)
            b = rows.need(batches, found["batch_id"])
            b["reissued_rows"] += 1
            b["reissued_fen"] += original["amount_fen"]
            rows.changed(batches, b)

    @handles("FundAccount.ReturnsRecorded")
    def returns_recorded(self, e: Event, rows: Rows) -> None:
        b = rows.need(batches, e["batch_id"])
        b.update(return_id=e["return_id"], returned_on=e.day,
                 return_document_no=e["document_no"], return_source_file=e.get("source_file"),
                 return_source_sha256=e.get("source_sha256"), return_rows_root=e["rows_root"],
                 return_signers=_signers(e), return_position=e.position)
        rows.changed(batches, b)

    @handles("FundAccount.PaymentReturned")
    def payment_returned(self, e: Event, rows: Rows) -> None:
        found = rows.get(movements, e.originator_id, e["of_movement_id"])
        if found is None:
            return
        r = rows.need(rows_, found["batch_id"], found["row"])
        ret = e.get("batch") or {}
        r.update(returned=1, return_row=ret.get("row"), returned_reason=e["reason"],
                 returned_movement_id=e["movement_id"], bank_serial=ret.get("bank_serial"),
                 returned_position=e.position)
        rows.changed(rows_, r)
        b = rows.need(batches, found["batch_id"])
        b["returned_rows"] += 1
        b["returned_fen"] += e["amount_fen"]
        rows.changed(batches, b)

    # 花名册 ---------------------------------------------------------------------------------
    @handles("Roster.Imported")
    def imported(self, e: Event, rows: Rows) -> None:
        path = e["region_path"]
        rows.insert(rosters, {
            "import_id": e["import_id"], "roster_id": e.originator_id,
            "county_code": e["county_code"], **{level: path.get(level) for level in LEVELS[:-1]},
            "effective_date": e.day, "row_count": e["row_count"], "rows_root": e["rows_root"],
            "source_file": e.get("source_file"), "source_sha256": e.get("source_sha256"),
            "signers": _signers(e), "log_position": e.position, "households": 0, "exited": 0})

    @handles("Household.Applied")
    def household(self, e: Event, rows: Rows) -> None:
        row = e.get("batch")
        if not row:
            return
        exited = row.get("exited_on")
        rows.insert(roster_rows, {
            "import_id": row["import_id"], "row": row["row"], "household_id": e.originator_id,
            "household_code": e["household_code"], "village_code": e["village_code"],
            "head_name": e["head_name"], "members_count": len(e["members"]),
            "effective_date": e.day, "exited_on": _date(exited),
            "source_rows": list(row.get("source_rows") or []), "log_position": e.position})
        r = rows.get(rosters, row["import_id"])
        if r is not None:
            r["households"] += 1
            r["exited"] += 1 if exited else 0
            rows.changed(rosters, r)


def _date(value: Any) -> Any:
    import datetime as dt

    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


# queries ----------------------------------------------------------------------------------
def row_state(batch: dict, row: dict) -> str:
    """pending | credited | returned | reissued (see the module docstring)."""
    if row["returned"]:
        return "reissued" if row["reissued_by"] else "returned"
    return "credited" if batch["return_id"] else "pending"


def batch_state(b: dict) -> str:
    if not b["return_id"]:
        return "pending"
    if not b["returned_rows"]:
        return "credited"
    return "reissued" if b["reissued_rows"] >= b["returned_rows"] else "returned"


def reconciliation(b: dict) -> dict[str, Any]:
    """下达 / 退回 / 入账 / 重发: rows and fen."""
    recorded = b["return_id"] is not None
    return plain({"state": batch_state(b),
            "ordered": {"rows": b["row_count"], "fen": b["total_fen"]},
            "returned": {"rows": b["returned_rows"], "fen": b["returned_fen"]},
            "credited": {"rows": b["row_count"] - b["returned_rows"] if recorded else None,
                         "fen": b["total_fen"] - b["returned_fen"] if recorded else None},
            "pending": {"rows": 0 if recorded else b["row_count"],
                        "fen": 0 if recorded else b["total_fen"]},
            "reissued": {"rows": b["reissued_rows"], "fen": b["reissued_fen"]},
            "bank_return": None if not recorded else {
                "return_id": b["return_id"], "effective_date": b["returned_on"],
                "document_no": b["return_document_no"], "source_file": b["return_source_file"],
                "source_sha256": b["return_source_sha256"], "rows_root": b["return_rows_root"],
                "log_position": b["return_position"]}})


def _named(conn: Any, signers: list[dict] | None) -> list[dict]:
    if not signers:
        return []
    ids = sorted({s["official_id"] for s in signers})
    found = {r["official_id"]: dict(r) for r in conn.execute(
        select(rs.officials).where(rs.officials.c.official_id.in_(ids))).mappings()}
    return [{**s, "code": found.get(s["official_id"], {}).get("code"),
             "name": found.get(s["official_id"], {}).get("name")} for s in signers]


def _summary(b: dict) -> dict[str, Any]:
    return {k: b[k] for k in ("batch_id", "account_id", "account_name", "region_code",
                              "effective_date", "purpose", "document_no", "payee_kind",
                              "row_count", "total_fen", "source_file", "source_sha256",
                              "log_position")} | {"reconciliation": reconciliation(b)}


def _state_clause(state: str) -> Any:
    t = batches.c
    if state == "pending":
        return t.return_id.is_(None)
    if state == "credited":
        return t.return_id.is_not(None) & (t.returned_rows == 0)
    if state == "returned":
        return t.return_id.is_not(None) & (t.returned_rows > 0) & (t.reissued_rows < t.returned_rows)
    return t.return_id.is_not(None) & (t.returned_rows > 0) & (t.reissued_rows >= t.returned_rows)


def list_batches(db: Db, *, account_id: str | None = None, level: str | None = None,
                 code: str | None = None, state: str | None = None, limit: int = 50,
                 offset: int = 0) -> tuple[list[dict], int | None]:
    """Batches newest first, within an account, a region subtree (the account's region:
    ``level`` from province to township; a village has no account) and a state."""
    q = select(batches)
    if account_id:
        q = q.where(batches.c.account_id == account_id)
    if level and code:
        if level == "village":
            return [], None
        q = q.where(batches.c[level] == code)
    if state:
        q = q.where(_state_clause(state))
    q = q.order_by(batches.c.effective_date.desc(), batches.c.log_position.desc())
    with connected(db) as conn:
        found = [dict(r) for r in conn.execute(q.limit(limit + 1).offset(offset)).mappings()]
    more = len(found) > limit
    return plain([_summary(b) for b in found[:limit]]), (offset + limit if more else None)


def get_batch(db: Db, batch_id: str) -> dict:
    with connected(db) as conn:
        b = conn.execute(select(batches).where(batches.c.batch_id == str(batch_id))
                         ).mappings().first()
    if b is None:
        raise NotFound(f"no batch {batch_id}", field="batch_id")
    return dict(b)


def batch_view(db: Db, batch_id: str, *, limit: int = 50, offset: int = 0) -> dict:
    """The manifest, its signers with names, the bank return's, the reconciliation and a
    page of rows with their state."""
    with connected(db) as conn:
        b = get_batch(conn, batch_id)
        manifest = {k: b[k] for k in ("batch_id", "account_id", "account_name", "region_code",
                                      "effective_date", "purpose", "document_no", "payee_kind",
                                      "row_count", "total_fen", "rows_root", "source_file",
                                      "source_sha256", "log_position")}
        page, next_offset = batch_rows_page(conn, b, limit=limit, offset=offset)
        by_state = dict(conn.execute(
            select(rows_.c.returned, func.count()).where(rows_.c.batch_id == b["batch_id"])
            .group_by(rows_.c.returned)).all())
        out = {"manifest": manifest, "signers": _named(conn, b["signers"]),
               "return_signers": _named(conn, b["return_signers"]),
               "reconciliation": reconciliation(b),
               "rows_recorded": sum(by_state.values()),
               "rows": page, "limit": limit, "offset": offset, "next_offset": next_offset}
    return plain(out)


ROW_FIELDS = ("row", "movement_id", "payee_kind", "payee_id", "amount_fen",
              "bank_account_hash", "holder_id_hash", "source_row", "reissue_of",
              "log_position", "returned_reason", "returned_movement_id", "bank_serial",
              "returned_position", "reissued_by", "reissued_batch_id")


def _row_out(b: dict, r: dict) -> dict:
    return {**{k: r[k] for k in ROW_FIELDS}, "state": row_state(b, r)}


def batch_rows_page(db: Db, b: dict, *, limit: int = 50, offset: int = 0,
                    state: str | None = None) -> tuple[list[dict], int | None]:
    q = select(rows_).where(rows_.c.batch_id == b["batch_id"]).order_by(rows_.c.row)
    with connected(db) as conn:
        found = [dict(r) for r in conn.execute(q).mappings()] if state else [
            dict(r) for r in conn.execute(q.limit(limit + 1).offset(offset)).mappings()]
    out = [_row_out(b, r) for r in found]
    if state:
        out = [r for r in out if r["state"] == state][offset:offset + limit + 1]
    more = len(out) > limit
    return plain(out[:limit]), (offset + limit if more else None)


def batch_row(db: Db, batch_id: str, row: int) -> tuple[dict, dict]:
    """(the batch, one of its rows with its state)."""
    with connected(db) as conn:
        b = get_batch(conn, batch_id)
        r = conn.execute(select(rows_).where(rows_.c.batch_id == b["batch_id"],
                                             rows_.c.row == row)).mappings().first()
    if r is None:
        raise NotFound(f"batch {batch_id} has no row {row}", field="row")
    return b, plain(_row_out(b, dict(r)))


def batch_all_rows(db: Db, batch_id: str) -> list[dict]:
    """Every row of a batch in order (the read model's copy; a proof is built from the
    log's events, not from these)."""
    with connected(db) as conn:
        return [dict(r) for r in conn.execute(
            select(rows_).where(rows_.c.batch_id == str(batch_id)).order_by(rows_.c.row)
        ).mappings()]


def batches_of_account(db: Db, account_id: str, limit: int = 20) -> list[dict]:
    return list_batches(db, account_id=account_id, limit=limit)[0]


def roster_view(db: Db, import_id: str, *, limit: int = 50, offset: int = 0) -> dict:
    """A roster import: file, SHA-256, root, signers with names, households (a page)."""
    with connected(db) as conn:
        r = conn.execute(select(rosters).where(rosters.c.import_id == str(import_id))
                         ).mappings().first()
        if r is None:
            raise NotFound(f"no roster import {import_id}", field="import_id")
        r = dict(r)
        found = [dict(x) for x in conn.execute(
            select(roster_rows).where(roster_rows.c.import_id == r["import_id"])
            .order_by(roster_rows.c.row).limit(limit + 1).offset(offset)).mappings()]
        signers = _named(conn, r["signers"])
    more = len(found) > limit
    manifest = {k: r[k] for k in ("import_id", "roster_id", "county_code", "effective_date",
                                  "row_count", "rows_root", "source_file", "source_sha256",
                                  "log_position")}
    manifest["region_path"] = {lv: r[lv] for lv in LEVELS[:-1] if r[lv]}
    return plain({"manifest": manifest, "signers": signers,
                  "households_imported": r["households"], "exited": r["exited"],
                  "households": [{k: x[k] for k in ("row", "household_id", "household_code",
                                                    "village_code", "head_name",
                                                    "members_count", "effective_date",
                                                    "exited_on", "source_rows",
                                                    "log_position")} for x in found[:limit]],
                  "limit": limit, "offset": offset,
                  "next_offset": offset + limit if more else None})
