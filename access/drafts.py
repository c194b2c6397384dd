"""The signing queue (签字队列): a step waits for its signatures, then runs once.

The preparer (经办), the reviewer (审核) and the approver (审批) sign at different times on
different machines.  A *draft* holds one step exactly as it will be signed — step, subject,
content (and, for a payment batch, its ``rows``) — and the signatures as they arrive:

- **submit**: the step and its fields are checked up front as ``Zhuisu.execute`` checks
  them (unknown step, missing or extra field, bounds), so a bad draft is refused at once,
  naming the field; a creation step's subject is derived from its code.
- **sign**: ``message`` gives the exact bytes one official signs
  (``domain.signing.step_message``); each signature is verified on arrival — the official
  exists, the key is theirs and usable on the step's business date, the signature
  verifies, the role is one the step needs and not yet signed, and one official signs
  in one role only — and refused otherwise, naming the field.
- **execute**: when the last role the step needs (``domain.positions``, what ``GET
  /steps`` lists) is signed, the command is run by ``Zhuisu.execute`` — the very checks of
  ``POST /commands``.  The draft is claimed first by a compare-and-set of its state
  (``open`` → ``executing``, in the transaction that adds the last signature, serialised
  on the draft's row), so it runs once however many signers race; the others get the
  result.  A refusal stays on the draft (``refused``: rule, status, detail, field); an
  executed draft keeps the result and the log positions of its events.
- drafts **expire** (``ZHUISU_DRAFT_DAYS``, default 7): an expired draft is neither signed
  nor executed (state ``expired``); the preparer may **withdraw** an open draft.

Drafts are not events: they live in their own tables beside the access tables
(``drafts``, ``draft_signatures``).  Who did what to a draft — submit, sign, withdraw,
execute, refusal — is a row of the access log (``access.reads``, chained by
``access.chain``) written in the same transaction as the change: subject kind
``draft_submitted`` / ``draft_signed`` / ``draft_withdrawn`` / ``draft_executed`` /
``draft_refused``, subject id the draft's id, region the draft's subject's.

Why one file: the tables, the states and the one compare-and-set that moves a draft from
``open`` to ``executing`` are a single invariant (a step runs once); split, the guard and
the states it guards would have to be read side by side anyway.

Who may: the adapters decide (HTTP ``api.routes.drafts``, console ``console.screens.drafts``,
CLI ``cli.drafts``) with ``access.roles``.  Accounts and tokens are not bound to officials,
so a signer is any caller whose role submits steps and whose jurisdiction covers the draft;
the Ed25519 signature by a registered official's key is what proves the official.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import RecordConflictError
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from access import chain
from access.errors import Problem, Refusal, refusal_problem
from access.reads import region_key
from access.roles import Principal
from domain.application import CREATION_STEPS, ROW_STEPS, STEPS, Zhuisu, check_envelope
from domain.errors import (
    InvalidInput,
    NotFound,
    SeparationOfDuties,
    SignatureInvalid,
    SignerNotAuthorised,
)
from domain.household import Household
from domain.limits import check_values
from domain.roster import Roster
from domain.official import Official
from domain.positions import STEP_RULES, money_rules
from domain.project import Project
from domain.signing import Role, canonical_json, step_message, unb64, verify_signature
from store.schema import create_tables

DAYS_ENV = "ZHUISU_DRAFT_DAYS"
DEFAULT_DAYS = 7
OPEN, EXECUTING, EXECUTED, REFUSED, WITHDRAWN, EXPIRED = (
    "open", "executing", "executed", "refused", "withdrawn", "expired")
STATES = (OPEN, EXECUTING, EXECUTED, REFUSED, WITHDRAWN, EXPIRED)
ROLE_ORDER = [Role.PREPARER, Role.REVIEWER, Role.APPROVER, Role.WITNESS]
KIND_OF = {"Household": "household", "FundAccount": "account", "Project": "project"}
# creation steps: the content field naming the region, and the code the subject derives from
CREATION_REGION = {"Household.Applied": "village_code", "Project.Approved": "region_code",
                   "Roster.Imported": "county_code"}
CREATION_ID: dict[str, tuple[str, Callable[..., Any]]] = {
    "Household.Applied": ("household_code", Household.create_id),
    "Project.Approved": ("project_code", Project.create_id),
    "Roster.Imported": ("import_id", Roster.create_id)}  # 花名册导入
EXECUTING_WAIT = 10.0  # seconds a racing signer waits for the other's execution

metadata = MetaData()
drafts = Table(
    "drafts", metadata,
    Column("id", String(32), primary_key=True),
    Column("step", String(100), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("content", Text, nullable=False),  # canonical JSON: exactly what is signed
    Column("rows", Text),  # JSON list, passed on unchanged (payment batches); None: none
    Column("region_path", Text, nullable=False),  # JSON {level: code} of the subject
    Column("region_key", String(400), nullable=False, index=True),  # access.reads.region_key
    Column("required_roles", String(100), nullable=False),  # "preparer,reviewer,approver"
    Column("state", String(16), nullable=False, index=True),
    Column("version", Integer, nullable=False),  # moved by every change (the row lock)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_by_token", String(64), nullable=False),
    Column("created_role", String(32), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("finished_by", String(200)),
    Column("result", Text),  # JSON: executed — step, subject, recorded, positions
    Column("problem", Text),  # JSON: refused — type, title, status, detail, rule, field
)
signatures = Table(
    "draft_signatures", metadata,
    Column("draft_id", String(32), primary_key=True),
    Column("role", String(16), primary_key=True),  # one signature per role
    Column("official_id", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(200), nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("added_by", String(200), nullable=False),
    Column("added_by_token", String(64), nullable=False),
)


class DraftNotOpen(Refusal):
    """The draft is executed, refused, withdrawn, expired or being executed."""

    status = 409


class RoleAlreadySigned(Refusal):
    """Another signature in this role is already on the draft."""

    status = 409


class NotTheDraftsPreparer(Refusal):
    """Only whoever submitted a draft may withdraw it."""


def draft_days() -> int:
    raw = os.environ.get(DAYS_ENV, "").strip()
    if not raw:
        return DEFAULT_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise InvalidInput(f"must be a whole number of days, got {raw!r}", field=DAYS_ENV) from None
    if not 1 <= days <= 366:
        raise InvalidInput("must be 1 to 366 days", field=DAYS_ENV)
    return days


def required_roles(step: str) -> list[str]:
    """The roles the step must be signed in (the rules of ``domain.positions``; the same
    roles ``GET /steps`` lists), in the order 经办, 审核, 审批, 见证."""
    if step in STEP_RULES:
        roles = set(STEP_RULES[step].roles)
    else:
        roles = {r for _, rule in money_rules(step) for r in rule.roles}
    return [r.value for r in ROLE_ORDER if r in roles]


def step_region(app: Zhuisu, step: str, subject: str,
                content: Mapping[str, Any]) -> tuple[dict[str, str], str]:
    """The region path of the step's subject and the field that names it (as ``POST
    /commands`` decides jurisdiction: a creation step's region is the one its content names)."""
    if step in CREATION_REGION:
        name = CREATION_REGION[step]
        code = content.get(name)
        if not isinstance(code, str):
            raise InvalidInput(f"{step} needs {name}, a region code", field=f"content.{name}")
        return dict(app.region(code, f"content.{name}").path), f"content.{name}"
    aggregate = app.load(STEPS[step][0], subject, "subject")
    return dict(getattr(aggregate, "region_path", {}) or {}), "subject"


@dataclass(frozen=True)
class SignatureOut:
    role: str
    official_id: str
    key_id: str
    signature: str
    added_at: dt.datetime
    added_by: str

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "official_id": self.official_id, "key_id": self.key_id,
                "signature": self.signature, "added_at": self.added_at.isoformat(),
                "added_by": self.added_by}


@dataclass(frozen=True)
class Draft:
    id: str
    step: str
    subject: str
    content: dict[str, Any]
    rows: list[Any] | None
    region_path: dict[str, str]
    required: list[str]
    stored_state: str
    created_at: dt.datetime
    expires_at: dt.datetime
    created_by: str
    created_by_token: str
    finished_at: dt.datetime | None
    finished_by: str | None
    result: dict[str, Any] | None
    problem: dict[str, Any] | None
    signatures: list[SignatureOut]
    now: dt.datetime
    ran_now: bool = False  # this call ran the command (not a retry, not a racer)

    @property
    def state(self) -> str:
        if self.stored_state == OPEN and self.now >= self.expires_at:
            return EXPIRED
        return self.stored_state

    @property
    def signed_roles(self) -> list[str]:
        return [s.role for s in self.signatures]

    @property
    def missing_roles(self) -> list[str]:
        return [r for r in self.required if r not in self.signed_roles]

    @property
    def subject_kind(self) -> str:
        """The kind of subject it is for the access log (a roster import: its county)."""
        return KIND_OF.get(self.step.split(".", 1)[0], "region")

    @property
    def subject_ref(self) -> str:
        if self.subject_kind == "region":
            return list(self.region_path.values())[-1] if self.region_path else self.subject
        return self.subject

    def payee_ids(self) -> list[str]:
        """The households the content pays (a payment's payee, a batch's rows)."""
        found = []
        if self.content.get("payee_kind") == "household" and self.content.get("payee_id"):
            found.append(str(self.content["payee_id"]))
        if self.content.get("payee_kind") == "household":
            found += [str(r["payee_id"]) for r in self.rows or []
                      if isinstance(r, Mapping) and r.get("payee_id")]
        return list(dict.fromkeys(found))

    def command(self) -> dict[str, Any]:
        """The complete command envelope, as ``POST /commands`` takes it."""
        command: dict[str, Any] = {
            "step": self.step, "subject": self.subject, "content": self.content,
            "signatures": [{"official_id": s.official_id, "role": s.role, "key_id": s.key_id,
                            "signature": s.signature} for s in self.signatures]}
        if self.rows is not None:
            command["rows"] = self.rows
        return command

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "step": self.step, "subject": self.subject, "state": self.state,
                "required_roles": self.required, "signed_roles": self.signed_roles,
                "missing_roles": self.missing_roles,
                "rows_count": None if self.rows is None else len(self.rows),
                "created_at": self.created_at.isoformat(), "created_by": self.created_by,
                "expires_at": self.expires_at.isoformat()}

    def as_dict(self) -> dict[str, Any]:
        return {**self.summary(), "content": self.content,
                "signatures": [s.as_dict() for s in self.signatures],
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "finished_by": self.finished_by, "result": self.result,
                "refusal": self.problem}


@dataclass(frozen=True)
class Via:
    """How an action reached the queue, for its access-log row."""

    method: str
    route: str
    request_id: str | None = None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else chain.canonical_datetime(value)


class Drafts:
    """The signing queue on the store's database (``engine``: ``access.tables.open_engine``)."""

    def __init__(self, engine: Engine, app: Zhuisu, *, days: int | None = None,
                 clock: Callable[[], dt.datetime] | None = None):
        self.engine = engine
        self.app = app
        self.days = draft_days() if days is None else days
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        create_tables(engine, metadata, owner="zhuisu-drafts")

    # reading ------------------------------------------------------------------------
    def get(self, draft_id: str, field: str = "draft_id") -> Draft:
        with self.engine.connect() as conn:
            row = conn.execute(select(drafts).where(drafts.c.id == str(draft_id))).first()
            if row is None:
                raise NotFound(f"no draft {draft_id}", field=field)
            sigs = conn.execute(select(signatures).where(
                signatures.c.draft_id == str(draft_id))).all()
        return self._draft(row._mapping, [s._mapping for s in sigs])

    def list(self, principal: Principal, *, state: str | None = None,
             waiting_for: str | None = None, role: str | None = None,
             limit: int = 50, offset: int = 0) -> list[Draft]:
        """Drafts in the principal's jurisdiction, newest first.  ``state`` one of
        ``STATES``; ``waiting_for`` an official's id: open drafts still missing a role
        (``role``, if given) that official has not signed in."""
        c = drafts.c
        query = select(drafts).order_by(c.created_at.desc(), c.id)
        if principal.region_code is not None:
            code = "".join("\\" + ch if ch in "\\%_" else ch for ch in principal.region_code)
            query = query.where(c.region_key.like(f"%/{code}/%", escape="\\"))
        now = self.clock()
        if state == EXPIRED:
            query = query.where(c.state == OPEN, c.expires_at <= now)
        elif state == OPEN or waiting_for is not None or role is not None:
            query = query.where(c.state == OPEN, c.expires_at > now)
        elif state is not None:
            query = query.where(c.state == state)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            ids = [r._mapping["id"] for r in rows]
            sigs: dict[str, list[Any]] = {}
            for i in range(0, len(ids), 500):
                for s in conn.execute(select(signatures).where(
                        signatures.c.draft_id.in_(ids[i:i + 500]))):
                    sigs.setdefault(s._mapping["draft_id"], []).append(s._mapping)
        found = [self._draft(r._mapping, sigs.get(r._mapping["id"], [])) for r in rows]
        if waiting_for is not None:
            found = [d for d in found if d.missing_roles
                     and waiting_for not in {s.official_id for s in d.signatures}]
        if role is not None:
            found = [d for d in found if role in d.missing_roles]
        return found[offset:offset + limit]

    def message(self, draft_id: str, official_id: str, role: str, key_id: str) -> bytes:
        """The exact bytes ``official_id`` signs in ``role`` with ``key_id``."""
        draft = self.get(draft_id)
        official = self._signer(draft, official_id, role, "official_id", "role")
        key_id = str(key_id).strip()
        if not key_id:
            raise InvalidInput("must be the key id of zhuisu keygen", field="key_id")
        if key_id not in official.keys:
            raise SignatureInvalid(f"official {official.code} has no key {key_id}",
                                   field="key_id")
        return step_message(draft.step, draft.subject, draft.content, str(official.id), role,
                            key_id)

    # writing ------------------------------------------------------------------------
    def submit(self, principal: Principal, via: Via, *, step: Any, subject: Any, content: Any,
               rows: Any = None, signature: Mapping[str, Any] | None = None) -> Draft:
        """A new draft (after the checks ``Zhuisu.execute`` makes up front); with the
        preparer's own signature, added as any signature is."""
        step, subject, content, rows = self._checked(step, subject, content, rows)
        path, _ = step_region(self.app, step, subject, content)
        now = self.clock()
        row = {"id": uuid.uuid4().hex, "step": step, "subject": subject,
               "content": canonical_json(content).decode("utf-8"),
               "rows": None if rows is None else json.dumps(rows, ensure_ascii=False),
               "region_path": json.dumps(path, ensure_ascii=False),
               "region_key": region_key(path), "required_roles": ",".join(required_roles(step)),
               "state": OPEN, "version": 0, "created_at": now,
               "expires_at": now + dt.timedelta(days=self.days), "created_by": principal.name,
               "created_by_token": principal.token_id, "created_role": principal.role.value}
        draft = self._draft(row, [])
        if signature is not None:  # verified before anything is stored
            self._verified(draft, signature, "signature")
        with self.engine.begin() as conn:
            conn.execute(insert(drafts).values(**row))
            self._log(conn, principal, via, draft, "draft_submitted", now)
        if signature is not None:
            return self.add_signature(principal, via, draft.id, signature, field="signature")
        return self.get(draft.id)

    def add_signature(self, principal: Principal, via: Via, draft_id: str,
                      signature: Mapping[str, Any], field: str = "") -> Draft:
        """Add one verified signature; when it is the last the step needs, execute the
        command (once) and record its result or refusal."""
        prefix = f"{field}." if field else ""
        draft = self.get(draft_id)
        if draft.state != OPEN:
            same = self._stored_same(draft, signature)
            if same and draft.state in (EXECUTED, REFUSED, EXECUTING):
                return self._settled(draft_id)  # a retry, or the racer: the result
            raise DraftNotOpen(f"draft {draft.id} is {draft.state}; it takes no signature",
                               field="draft_id")
        if self._stored_same(draft, signature):  # a retry of a stored signature
            return self._maybe_execute(principal, via, draft_id) or self._settled(draft_id)
        sig = self._verified(draft, signature, field)
        try:
            complete = self._add(principal, via, draft, sig, prefix)
        except (DraftNotOpen, RoleAlreadySigned):
            if self._stored_same(self.get(draft_id), signature):  # a racer: the result
                return self._settled(draft_id)
            raise
        if complete:
            return self._execute(principal, via, draft_id)
        return self.get(draft_id)

    def _add(self, principal: Principal, via: Via, draft: Draft, sig: dict[str, str],
             prefix: str) -> bool:
        """Store the signature (and claim the draft if it is the last); True if claimed."""
        draft_id = draft.id
        now = self.clock()
        with self.engine.begin() as conn:
            current = self._lock(conn, draft_id, now)
            signed = {s["role"]: s for s in conn.execute(select(signatures).where(
                signatures.c.draft_id == draft_id)).mappings()}
            if sig["role"] in signed:
                raise RoleAlreadySigned(f"the {sig['role']} signature is already on draft "
                                        f"{draft_id}", field=f"{prefix}role")
            if sig["official_id"] in {s["official_id"] for s in signed.values()}:
                raise SeparationOfDuties("one official may sign a step in one role only",
                                         field=f"{prefix}official_id")
            conn.execute(insert(signatures).values(
                draft_id=draft_id, added_at=now, added_by=principal.name,
                added_by_token=principal.token_id, **sig))
            self._log(conn, principal, via, draft, "draft_signed", now)
            complete = set(current["required_roles"].split(",")) <= {*signed, sig["role"]}
            return complete and self._claim(conn, draft_id)

    def withdraw(self, principal: Principal, via: Via, draft_id: str) -> Draft:
        draft = self.get(draft_id)
        if draft.created_by_token != principal.token_id:
            raise NotTheDraftsPreparer(f"draft {draft_id} was submitted by {draft.created_by}; "
                                       "only they may withdraw it", field="draft_id")
        now = self.clock()
        with self.engine.begin() as conn:
            self._lock(conn, draft_id, now)
            conn.execute(update(drafts).where(drafts.c.id == draft_id).values(
                state=WITHDRAWN, finished_at=now, finished_by=principal.name))
            self._log(conn, principal, via, draft, "draft_withdrawn", now)
        return self.get(draft_id)

    # the parts ----------------------------------------------------------------------
    def _checked(self, step: Any, subject: Any, content: Any,
                 rows: Any) -> tuple[str, str, dict[str, Any], list[Any] | None]:
        """What ``Zhuisu.execute`` checks before it runs a step, in its order and words."""
        check_envelope(step, content)
        canonical_json(content)  # refuses floats
        if rows is not None and step not in ROW_STEPS:
            raise InvalidInput(f"{step} carries no rows; only {sorted(ROW_STEPS)} do",
                               field="rows")
        if rows is not None:
            if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
                raise InvalidInput("must be a list of row objects", field="rows")
            check_values(list(rows), "rows")
        if step in CREATION_ID:
            name, make_id = CREATION_ID[step]
            derived = str(make_id(str(content.get(name))))
            if subject not in (None, "") and str(subject) != derived:
                raise InvalidInput(f"the subject of {step} is {derived}, derived from its "
                                   f"{name}", field="subject")
            subject = derived
        try:
            subject = str(UUID(str(subject)))
        except ValueError:
            raise InvalidInput("must be the subject aggregate's UUID", field="subject") from None
        if step not in CREATION_STEPS:
            self.app.load(STEPS[step][0], subject, "subject")
        return step, subject, dict(content), None if rows is None else list(rows)

    def _signer(self, draft: Draft, official_id: Any, role: Any, official_field: str,
                role_field: str) -> Official:
        if role not in draft.required:
            raise InvalidInput(f"{draft.step} is signed by {', '.join(draft.required)}; not by "
                               f"{role!r}", field=role_field)
        try:
            return self.app.load(Official, str(official_id), official_field)
        except NotFound:
            raise SignerNotAuthorised(f"no official {official_id}",
                                      field=official_field) from None

    def _verified(self, draft: Draft, raw: Mapping[str, Any], field: str) -> dict[str, str]:
        """The signature, if it may go on the draft: its official exists, the key is theirs
        and usable on the step's business date, and it verifies over the draft's content."""
        p = f"{field}." if field else ""
        if not isinstance(raw, Mapping):
            raise InvalidInput("must be an object: official_id, role, key_id, signature",
                               field=field or "body")
        for name in ("official_id", "role", "key_id", "signature"):
            if not isinstance(raw.get(name), str) or not raw[name].strip():
                raise InvalidInput("must be a non-empty string", field=f"{p}{name}")
        extra = sorted(set(raw) - {"official_id", "role", "key_id", "signature"})
        if extra:
            raise InvalidInput("not a field of a signature", field=f"{p}{extra[0]}")
        role = raw["role"]
        official = self._signer(draft, raw["official_id"], role, f"{p}official_id", f"{p}role")
        official_id = str(official.id)
        key = official.keys.get(raw["key_id"])
        if key is None:
            raise SignatureInvalid(f"official {official.code} has no key {raw['key_id']}",
                                   field=f"{p}key_id")
        day = self._business_day(draft)
        if not key.usable(day, self.app.clock()):
            raise SignatureInvalid(
                f"key {raw['key_id']} of official {official.code} was not valid on "
                f"{day.isoformat()} (not yet registered, rotated or revoked)", field=f"{p}key_id")
        unb64(raw["signature"], f"{p}signature")
        message = step_message(draft.step, draft.subject, draft.content, official_id, role,
                               raw["key_id"])
        if not verify_signature(key.public_key, raw["signature"], message):
            raise SignatureInvalid(f"{role} signature of official {official.code} does not "
                                   f"verify over the canonical content of {draft.step}",
                                   field=f"{p}signature")
        return {"official_id": official_id, "role": role, "key_id": raw["key_id"],
                "signature": raw["signature"]}

    def _business_day(self, draft: Draft) -> dt.date:
        value = draft.content.get("effective_date")
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()

    @staticmethod
    def _stored_same(draft: Draft, raw: Any) -> bool:
        if not isinstance(raw, Mapping):
            return False
        return any(s.role == raw.get("role") and s.key_id == raw.get("key_id")
                   and s.signature == raw.get("signature") for s in draft.signatures)

    def _lock(self, conn: Any, draft_id: str, now: dt.datetime) -> Mapping[str, Any]:
        """Take the draft's row for this transaction (an UPDATE: the row lock on
        PostgreSQL, the write lock on SQLite) if it is open and not expired."""
        c = drafts.c
        taken = conn.execute(update(drafts).where(c.id == draft_id, c.state == OPEN,
                                                  c.expires_at > now)
                             .values(version=c.version + 1)).rowcount
        row = conn.execute(select(drafts).where(c.id == draft_id)).mappings().first()
        if row is None:
            raise NotFound(f"no draft {draft_id}", field="draft_id")
        if not taken:
            state = EXPIRED if row["state"] == OPEN else row["state"]
            raise DraftNotOpen(f"draft {draft_id} is {state}", field="draft_id")
        return row

    @staticmethod
    def _claim(conn: Any, draft_id: str) -> bool:
        """Compare-and-set open → executing: True for the one caller that gets to run it."""
        c = drafts.c
        return bool(conn.execute(update(drafts).where(c.id == draft_id, c.state == OPEN)
                                 .values(state=EXECUTING, version=c.version + 1)).rowcount)

    def _maybe_execute(self, principal: Principal, via: Via, draft_id: str) -> Draft | None:
        """A complete open draft left by a failed execution: claim and run it."""
        draft = self.get(draft_id)
        if draft.state != OPEN or draft.missing_roles:
            return None
        with self.engine.begin() as conn:
            if not self._claim(conn, draft_id):
                return None
        return self._execute(principal, via, draft_id)

    def _execute(self, principal: Principal, via: Via, draft_id: str) -> Draft:
        draft = self.get(draft_id)
        recorder = self.app.recorder
        before = recorder.max_notification_id() or 0
        problem: Problem | None = None
        result: dict[str, Any] | None = None
        try:
            for attempt in range(3):
                try:
                    result = self.app.execute(draft.command())
                    break
                except RecordConflictError:
                    if attempt == 2:
                        raise
        except Exception as exc:
            problem = refusal_problem(exc)
            if problem is None:  # not a refusal (a bug, the store away): open again
                with self.engine.begin() as conn:
                    conn.execute(update(drafts).where(
                        drafts.c.id == draft_id, drafts.c.state == EXECUTING).values(state=OPEN))
                raise
        now = self.clock()
        values: dict[str, Any] = {"finished_at": now, "finished_by": principal.name}
        if problem is not None:
            values.update(state=REFUSED, problem=json.dumps(problem.as_dict(), ensure_ascii=False))
        else:
            assert result is not None
            after = recorder.max_notification_id() or 0
            positions = [n.id for n in recorder.select_notifications(
                start=before + 1, limit=max(after - before, 1), stop=after)
                if str(n.originator_id) == result["subject"]] if after > before else []
            values.update(state=EXECUTED, result=json.dumps(
                {**result, "positions": positions}, ensure_ascii=False))
        with self.engine.begin() as conn:
            conn.execute(update(drafts).where(drafts.c.id == draft_id,
                                              drafts.c.state == EXECUTING).values(**values))
            self._log(conn, principal, via, draft,
                      "draft_refused" if problem else "draft_executed", now)
        return dataclasses.replace(self.get(draft_id), ran_now=True)

    def _settled(self, draft_id: str) -> Draft:
        """The draft once no execution is running (a racing signer waits for the result)."""
        deadline = time.monotonic() + EXECUTING_WAIT
        draft = self.get(draft_id)
        while draft.state == EXECUTING and time.monotonic() < deadline:
            time.sleep(0.05)
            draft = self.get(draft_id)
        return draft

    def _log(self, conn: Any, principal: Principal, via: Via, draft: Draft, kind: str,
             now: dt.datetime) -> None:
        chain.append(conn, "access_log", [{
            "at": chain.utc(now), "token_id": principal.token_id, "actor": principal.name,
            "role": principal.role.value, "method": via.method, "route": via.route,
            "subject_kind": kind, "subject_id": draft.id,
            "subject_region": region_key(draft.region_path), "request_id": via.request_id}])

    def _draft(self, m: Mapping[str, Any], sigs: list[Mapping[str, Any]]) -> Draft:
        order = {r.value: i for i, r in enumerate(ROLE_ORDER)}
        return Draft(
            id=m["id"], step=m["step"], subject=m["subject"], content=json.loads(m["content"]),
            rows=None if m["rows"] is None else json.loads(m["rows"]),
            region_path=json.loads(m["region_path"]),
            required=[r for r in m["required_roles"].split(",") if r],
            stored_state=m["state"], created_at=_utc(m["created_at"]),  # type: ignore[arg-type]
            expires_at=_utc(m["expires_at"]),  # type: ignore[arg-type]
            created_by=m["created_by"], created_by_token=m["created_by_token"],
            finished_at=_utc(m.get("finished_at")), finished_by=m.get("finished_by"),
            result=json.loads(m["result"]) if m.get("result") else None,
            problem=json.loads(m["problem"]) if m.get("problem") else None,
            signatures=sorted((SignatureOut(s["role"], s["official_id"], s["key_id"],
                                            s["signature"], _utc(s["added_at"]),  # type: ignore[arg-type]
                                            s["added_by"]) for s in sigs),
                              key=lambda s: order.get(s.role, 9)),
            now=chain.canonical_datetime(self.clock()))


def drafts_on(state: Any) -> Drafts:
    """The queue of a running server (its ``app.state``: the application and the access
    tables' engine), made on first use and kept there."""
    queue = getattr(state, "drafts", None)
    if queue is None or queue.app is not state.zhuisu:
        queue = Drafts(state.access_log.engine, state.zhuisu)
        state.drafts = queue
    return queue
