"""Who looked at what: an append-only record of reads of protected subjects.

Every read of personal or money data — a household, account, project, official, case,
flag, a region's figures, a log record — by any role (``access.roles.AUDITED_READERS``)
adds one row per subject shown, all of a request's rows in one insert: time, token id and
name, role, route, subject and the subject's region.  Rows are never changed or deleted (the
table's triggers refuse it), and the table is a hash chain (``access.chain``): a row
changed, deleted or slipped in with the triggers dropped is named by ``zhuisu verify``.
Administrators page through it (``GET /access-log``), each within their own jurisdiction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from access import chain
from access.tables import access_log
from access.roles import Principal


def region_key(region_path: Mapping[str, str]) -> str:
    """'/52/5226/522625/522625100/522625100001/': a subtree is a LIKE '%/code/%' away."""
    return "/" + "".join(f"{code}/" for code in region_path.values())


@dataclass(frozen=True)
class Read:
    """One subject shown to a reader."""

    kind: str
    id: str
    region_path: Mapping[str, str]


class AccessLog:
    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, principal: Principal, reads: Iterable[Read], *, method: str, route: str,
               request_id: str | None, now: dt.datetime) -> int:
        now = chain.utc(now)
        rows = [{"at": now, "token_id": principal.token_id, "actor": principal.name,
                 "role": principal.role.value, "method": method, "route": route,
                 "subject_kind": r.kind, "subject_id": r.id,
                 "subject_region": region_key(r.region_path), "request_id": request_id}
                for r in reads]
        if rows:  # chained (access.chain): serialised with the other appenders
            with self.engine.begin() as conn:
                chain.append(conn, "access_log", rows)
        return len(rows)

    def page(self, principal: Principal, *, after: int = 0, limit: int = 100,
             subject_id: str | None = None, token_id: str | None = None,
             role: str | None = None) -> list[dict[str, Any]]:
        """Entries after id ``after`` (oldest first) about subjects in the principal's
        jurisdiction, optionally of one subject, token or role."""
        c = access_log.c
        query = select(access_log).where(c.id > after).order_by(c.id).limit(limit)
        if principal.region_code is not None:
            code = "".join("\\" + ch if ch in "\\%_" else ch for ch in principal.region_code)
            query = query.where(c.subject_region.like(f"%/{code}/%", escape="\\"))
        if subject_id is not None:
            query = query.where(c.subject_id == subject_id)
        if token_id is not None:
            query = query.where(c.token_id == token_id)
        if role is not None:
            query = query.where(c.role == role)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_entry(row._mapping) for row in rows]


def _entry(m: Mapping[str, Any]) -> dict[str, Any]:
    at = m["at"]
    if at.tzinfo is None:  # SQLite keeps no zone; every time stored is UTC
        at = at.replace(tzinfo=dt.UTC)
    return {"id": m["id"], "at": at.isoformat(), "token_id": m["token_id"], "actor": m["actor"],
            "role": m["role"], "method": m["method"], "route": m["route"],
            "subject_kind": m["subject_kind"], "subject_id": m["subject_id"],
            "request_id": m["request_id"]}
