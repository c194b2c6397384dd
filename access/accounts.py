"""People's accounts (人员账号) for the console: password, second factor, sessions.

Machines use bearer tokens (``access.tokens``); people sign in to the console (检查台) with
a user name, a password and a TOTP code (the second factor 等保 expects of government
systems).  Each account has one role and one region subtree, exactly as a token has, so the
same table (``access.roles``) decides what a person may see and do.

- Passwords are kept only as argon2id hashes (``argon2-cffi``); TOTP secrets (RFC 6238,
  30 s, 6 digits, ``pyotp``) are kept to check codes, never shown after creation.
- ``MAX_FAILURES`` failed sign-ins in a row lock the account for ``LOCK_MINUTES``; a
  success resets the count.  A code already used cannot be used again (replay).
- A session is a random id (cookie) kept only as its SHA-256, with its own CSRF token; it
  ends on sign-out, after ``IDLE_MINUTES`` without a request, and after ``MAX_HOURS``.
- Every sign-in, success or not, and every sign-out is in the access log (kind
  ``sign_in``; the caller writes it with ``access.reads``).

An administrator makes accounts (``zhuisu account create``, or the console); a demo store
gets one account per role (``demo_accounts``), written to a file of mode 0600, never to
the repository.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)

from access.errors import Refusal
from access.roles import ApiRole, Principal
from access.tokens import write_secret
from domain.errors import AlreadyExists, InvalidInput, NotFound
from domain.region import Region
from store.schema import create_tables

MAX_FAILURES = 5
LOCK_MINUTES = 15
IDLE_MINUTES = 30
MAX_HOURS = 12
ISSUER = "zhuisu 追溯"
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")

metadata = MetaData()
accounts = Table(
    "console_accounts", metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("role", String(32), nullable=False),
    Column("region_code", String(64)),
    Column("region_level", String(16)),
    Column("password_hash", String(200), nullable=False),
    Column("totp_secret", String(64), nullable=False),
    Column("last_totp_step", Integer, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True)),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("demo", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
)
sessions = Table(
    "console_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("account_id", String(32), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("no such account")  # equal work for unknown names


class SignInRefused(Refusal):
    """A sign-in that did not pass: wrong name, password or code, or a locked account."""

    status = 401


class AccountLocked(SignInRefused):
    """Too many failed sign-ins in a row: the account waits ``LOCK_MINUTES``."""

    status = 423


@dataclass(frozen=True)
class Account:
    id: str
    username: str
    name: str
    role: ApiRole
    region_code: str | None
    region_level: str | None
    disabled: bool
    demo: bool
    locked_until: dt.datetime | None

    @property
    def principal(self) -> Principal:
        return Principal(f"acct:{self.id}", self.name, self.role, self.region_code,
                         self.region_level)


@dataclass(frozen=True)
class NewAccount:
    """What the administrator hands over, once: the password and the TOTP secret."""

    account: Account
    password: str
    totp_secret: str

    @property
    def totp_uri(self) -> str:
        return pyotp.TOTP(self.totp_secret).provisioning_uri(name=self.account.username,
                                                             issuer_name=ISSUER)


@dataclass(frozen=True)
class Session:
    id: str  # the cookie's value; only its hash is stored
    csrf: str
    account: Account


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite keeps no zone; we store UTC
        return value.replace(tzinfo=dt.UTC)
    return value


def _account(row: object) -> Account:
    m = row._mapping  # type: ignore[attr-defined]
    return Account(m["id"], m["username"], m["name"], ApiRole(m["role"]), m["region_code"],
                   m["region_level"], bool(m["disabled"]), bool(m["demo"]),
                   _utc(m["locked_until"]))


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def check_password(password: str) -> None:
    if len(password) < 12 or len(password) > 200:
        raise InvalidInput("a password needs 12 to 200 characters", field="password")
    if len({c.isdigit() for c in password} | {c.isalpha() for c in password}) < 2:
        raise InvalidInput("a password needs letters and digits", field="password")


class Accounts:
    """People's accounts and their sessions, in the store's database."""

    def __init__(self, engine: Engine):
        self.engine = engine
        create_tables(engine, metadata, owner="zhuisu-console-accounts")

    # administration -------------------------------------------------------------------
    def create(self, username: str, name: str, role: ApiRole | str, region: Region | None,
               *, created_by: str, now: dt.datetime, password: str | None = None,
               demo: bool = False) -> NewAccount:
        username = username.strip().lower()
        if not (3 <= len(username) <= 64) or set(username) - USERNAME_CHARS:
            raise InvalidInput("3 to 64 of a–z, 0–9, '.', '_' and '-'", field="username")
        if not name.strip() or len(name) > 100:
            raise InvalidInput("a name of 1 to 100 characters", field="name")
        try:
            role = ApiRole(role)
        except ValueError as exc:
            raise InvalidInput(f"must be one of {[r.value for r in ApiRole]}",
                               field="role") from exc
        if password is None:
            password = secrets.token_urlsafe(12) + "7a"
        check_password(password)
        secret = pyotp.random_base32()
        row = {"id": uuid.uuid4().hex, "username": username, "name": name.strip(),
               "role": role.value,
               "region_code": region.code if region else None,
               "region_level": region.level.value if region else None,
               "password_hash": _hasher.hash(password), "totp_secret": secret,
               "last_totp_step": 0, "failures": 0, "locked_until": None, "disabled": False,
               "demo": demo, "created_at": now, "created_by": created_by}
        with self.engine.begin() as conn:
            if conn.execute(select(accounts.c.id).where(accounts.c.username == username)).first():
                raise AlreadyExists(f"an account {username} exists", field="username")
            conn.execute(insert(accounts).values(**row))
        return NewAccount(self.get(username), password, secret)

    def get(self, username: str) -> Account:
        with self.engine.connect() as conn:
            row = conn.execute(select(accounts).where(
                accounts.c.username == username.strip().lower())).first()
        if row is None:
            raise NotFound(f"no account {username}", field="username")
        return _account(row)

    def list(self) -> list[Account]:
        with self.engine.connect() as conn:
            return [_account(r) for r in conn.execute(select(accounts)
                                                      .order_by(accounts.c.username))]

    def any(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(accounts.c.id).limit(1)).first() is not None

    def disable(self, username: str) -> None:
        account = self.get(username)
        with self.engine.begin() as conn:
            conn.execute(update(accounts).where(accounts.c.id == account.id)
                         .values(disabled=True))
            conn.execute(delete(sessions).where(sessions.c.account_id == account.id))

    def unlock(self, username: str) -> None:
        account = self.get(username)
        with self.engine.begin() as conn:
            conn.execute(update(accounts).where(accounts.c.id == account.id)
                         .values(failures=0, locked_until=None))

    def demo_code(self, username: str, now: dt.datetime) -> str:
        """The current TOTP code of a demo account (never of a real one)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(accounts.c.totp_secret, accounts.c.demo).where(
                accounts.c.username == username.strip().lower())).first()
        if row is None:
            raise NotFound(f"no account {username}", field="username")
        if not row.demo:
            raise InvalidInput("codes are shown only for demo accounts", field="username")
        return pyotp.TOTP(row.totp_secret).at(now)

    # signing in -----------------------------------------------------------------------
    def sign_in(self, username: str, password: str, code: str, now: dt.datetime) -> Session:
        """A new session, or ``SignInRefused`` / ``AccountLocked`` (the failure counted)."""
        refusal: SignInRefused | None = None
        with self.engine.begin() as conn:
            row = conn.execute(select(accounts).where(
                accounts.c.username == username.strip().lower())).first()
            if row is None:
                _verify(_DUMMY_HASH, password)
                refusal = SignInRefused("用户名、密码或动态口令不正确 (wrong user name, "
                                        "password or code)", field="username")
            else:
                m = row._mapping
                refusal = self._check(conn, m, password, code, now)
                if refusal is None:
                    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
                    conn.execute(insert(sessions).values(
                        id_hash=_hash(session_id), account_id=m["id"], csrf=csrf,
                        started_at=now, last_seen=now))
        if refusal is not None:  # raised after the commit: the failure stays counted
            raise refusal
        return Session(session_id, csrf, _account(row))

    def _check(self, conn: Any, m: Any, password: str, code: str,
               now: dt.datetime) -> SignInRefused | None:
        """None if the sign-in passes (the failure count reset), else the refusal, with the
        failure counted (and the account locked at ``MAX_FAILURES``)."""
        locked_until = _utc(m["locked_until"])
        if locked_until is not None and locked_until > now:
            return AccountLocked(
                f"账号已锁定，请于 {locked_until.astimezone(_CST):%H:%M} 后再试 (locked after "
                f"{MAX_FAILURES} failed sign-ins until {locked_until.isoformat()})",
                field="username")
        step = _totp_step(m["totp_secret"], code, now)
        if (not m["disabled"] and _verify(m["password_hash"], password)
                and step is not None and step > m["last_totp_step"]):
            conn.execute(update(accounts).where(accounts.c.id == m["id"]).values(
                failures=0, locked_until=None, last_totp_step=step))
            return None
        failures = m["failures"] + 1
        if failures >= MAX_FAILURES:
            conn.execute(update(accounts).where(accounts.c.id == m["id"]).values(
                failures=0, locked_until=now + dt.timedelta(minutes=LOCK_MINUTES)))
            return AccountLocked(f"连续 {MAX_FAILURES} 次失败，账号锁定 {LOCK_MINUTES} 分钟 "
                                 f"(account locked for {LOCK_MINUTES} minutes)", field="username")
        conn.execute(update(accounts).where(accounts.c.id == m["id"]).values(failures=failures))
        return SignInRefused("用户名、密码或动态口令不正确 (wrong user name, password or code)",
                             field="username")

    def session(self, session_id: str, now: dt.datetime) -> Session | None:
        """The live session of a cookie (its idle time reset), or None if it has ended."""
        if not session_id or len(session_id) > 100:
            return None
        key = _hash(session_id)
        with self.engine.begin() as conn:
            row = conn.execute(select(sessions, accounts).join(
                accounts, accounts.c.id == sessions.c.account_id).where(
                sessions.c.id_hash == key)).first()
            if row is None:
                return None
            m = row._mapping
            last_seen, started = _utc(m["last_seen"]), _utc(m["started_at"])
            assert last_seen is not None and started is not None
            if (m["disabled"] or now - last_seen > dt.timedelta(minutes=IDLE_MINUTES)
                    or now - started > dt.timedelta(hours=MAX_HOURS)):
                conn.execute(delete(sessions).where(sessions.c.id_hash == key))
                return None
            conn.execute(update(sessions).where(sessions.c.id_hash == key)
                         .values(last_seen=now))
        return Session(session_id, m["csrf"], _account(row))

    def sign_out(self, session_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.id_hash == _hash(session_id)))


_CST = dt.timezone(dt.timedelta(hours=8))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _totp_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The 30-second step ``code`` belongs to (this one or its neighbours), or None."""
    code = (code or "").strip()
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    for drift in (0, -1, 1):
        at = now + dt.timedelta(seconds=30 * drift)
        if secrets.compare_digest(totp.at(at), code):
            return int(at.timestamp()) // 30
    return None


DEMO_ROLES = ("inspector", "reviewer", "fund_officer", "township_reviewer", "admin")


def demo_accounts(people: Accounts, county: Region, path: Path,
                  now: dt.datetime) -> Path | None:
    """One account per role for the demo county, written to ``path`` (mode 0600) once."""
    if people.any():
        return None
    lines = ["# 追溯 检查台 demo accounts (演示账号) — keep this file private.",
             "# Sign in at http://127.0.0.1:8000/ with the user name, the password and the",
             "# 6-digit code of an authenticator app set up with the secret (or print the",
             "# current code: .venv/bin/zhuisu account code USERNAME).", ""]
    for role in DEMO_ROLES:
        new = people.create(f"demo-{role.replace('_', '-')}", f"演示 {role}", role,
                            None if role == "admin" else county, created_by="demo",
                            now=now, demo=True)
        lines += [f"username: {new.account.username}", f"role:     {role}",
                  f"password: {new.password}", f"totp:     {new.totp_secret}",
                  f"otpauth:  {new.totp_uri}", ""]
    write_secret(path, "\n".join(lines))
    return path
