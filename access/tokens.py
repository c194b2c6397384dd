"""Bearer tokens: issued for a role and a region subtree, stored only as their SHA-256.

A token is ``zs_`` + 43 URL-safe characters (32 random bytes); it is shown once, when it
is created, and never stored, logged or shown again.  The table keeps its hash, a public
id (what logs, the access log and ``zhuisu token revoke`` use), a name, the role and the
jurisdiction.  A revoked token stops working at once (every request looks it up).

Every creation and revocation is also a row of the token changes, a hash chain
(``access.chain``) in the same transaction, so a token slipped into the table, re-roled or
un-revoked with raw SQL no longer matches its recorded changes (``zhuisu verify``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, insert, select, update

from access import chain
from access.tables import token_changes, tokens
from access.roles import ApiRole, Principal
from domain.errors import InvalidInput, NotFound
from domain.region import Region

PREFIX = "zs_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    role: ApiRole
    region_code: str | None
    region_level: str | None
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None

    @property
    def principal(self) -> Principal:
        return Principal(self.id, self.name, self.role, self.region_code, self.region_level)


def _record(row: object) -> TokenRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return TokenRecord(m["id"], m["name"], ApiRole(m["role"]), m["region_code"],
                       m["region_level"], m["created_at"], m["created_by"], m["revoked_at"])


class Tokens:
    """The token table: create, authenticate, list, revoke."""

    def __init__(self, engine: Engine):
        self.engine = engine
        with engine.connect() as conn:  # an older store: its tokens join the chain once
            older = (conn.execute(select(token_changes.c.id).limit(1)).first() is None
                     and conn.execute(select(tokens.c.id).limit(1)).first() is not None)
        if older:
            chain.adopt_tokens(engine, dt.datetime.now(dt.UTC))

    def create(self, *, name: str, role: ApiRole | str, region: Region | None,
               created_by: str, now: dt.datetime) -> tuple[str, TokenRecord]:
        """A new token and its record; ``region`` None binds it to every region."""
        if not name or not name.strip() or len(name) > 200:
            raise InvalidInput("must be a non-empty name of at most 200 characters", field="name")
        try:
            role = ApiRole(role)
        except ValueError as exc:
            raise InvalidInput(f"must be one of {[r.value for r in ApiRole]}",
                               field="role") from exc
        token = PREFIX + secrets.token_urlsafe(32)
        now = chain.utc(now)
        record = TokenRecord(
            id=uuid.uuid4().hex, name=name.strip(), role=role,
            region_code=region.code if region else None,
            region_level=region.level.value if region else None,
            created_at=now, created_by=created_by, revoked_at=None)
        with self.engine.begin() as conn:
            chain.lock(conn, "token_changes")  # first: token and change in chain order
            conn.execute(insert(tokens).values(
                id=record.id, name=record.name, token_hash=token_hash(token),
                role=record.role.value, region_code=record.region_code,
                region_level=record.region_level, created_at=now, created_by=created_by))
            chain.append(conn, "token_changes", [{
                "at": now, "token_id": record.id, "change": "created", "name": record.name,
                "role": record.role.value, "region_code": record.region_code,
                "region_level": record.region_level, "token_hash": token_hash(token),
                "by": created_by}])
        return token, record

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a live token, or None (unknown, malformed or revoked)."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(
                tokens.c.token_hash == token_hash(token),
                tokens.c.revoked_at.is_(None))).first()
        return _record(row).principal if row is not None else None

    def list(self, include_revoked: bool = False) -> list[TokenRecord]:
        query = select(tokens).order_by(tokens.c.created_at, tokens.c.id)
        if not include_revoked:
            query = query.where(tokens.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def revoke(self, token_id: str, now: dt.datetime, by: str = "unknown") -> TokenRecord:
        """Revoke a token (idempotent); ``by``: who revoked it (kept in the token changes)."""
        now = chain.utc(now)
        with self.engine.begin() as conn:
            chain.lock(conn, "token_changes")
            row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
            if row is None:
                raise NotFound(f"no token {token_id}", field="token_id")
            m = row._mapping
            if m["revoked_at"] is None:
                conn.execute(update(tokens).where(tokens.c.id == token_id)
                             .values(revoked_at=now))
                chain.append(conn, "token_changes", [{
                    "at": now, "token_id": token_id, "change": "revoked", "name": m["name"],
                    "role": m["role"], "region_code": m["region_code"],
                    "region_level": m["region_level"], "token_hash": m["token_hash"],
                    "by": by}])
            row = conn.execute(select(tokens).where(tokens.c.id == token_id)).one()
        return _record(row)

    def has_live_admin(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(tokens.c.id).where(
                tokens.c.role == ApiRole.ADMIN.value,
                tokens.c.revoked_at.is_(None)).limit(1)).first() is not None


BOOTSTRAP_NAME = "first administrator"


def ensure_admin_token(tokens_: Tokens, path: Path, now: dt.datetime) -> Path | None:
    """When no live administrator's token exists, make one for every region and write it
    to ``path`` (mode 0600, replacing a stale file); return the path, or None if one exists.

    This is how a newcomer's first ``zhuisu serve`` gets a token for the README's tour;
    a deployment that creates its tokens first never gets this one.
    """
    if tokens_.has_live_admin():
        return None
    token, _ = tokens_.create(name=BOOTSTRAP_NAME, role=ApiRole.ADMIN, region=None,
                              created_by="zhuisu serve (first start)", now=now)
    write_secret(path, token)
    return path


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
