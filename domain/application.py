"""The application service: verbs that load aggregates, call one domain method, save.

``Zhuisu.execute`` takes a signed command envelope::

    {"step": "FundAccount.Disbursed", "subject": "<aggregate uuid>",
     "content": {...the step's fields...}, "signatures": [{official_id, role, key_id, signature}]}

``content`` is exactly what each signer signed (``domain.signing``).  Administrative verbs
(regions, units, officials and their keys, opening accounts) are not signed steps; the API
restricts them to administrators.  Record time comes from the injected clock — also the
timestamp stored with every event (``recording``) — so nothing here reads the system
clock itself.

Snapshots (``FundAccount`` every 200 events) are kept outside the log, in the library's
snapshot table, which neither the Merkle tree nor the signatures cover.  So each one is
*sealed* when it is taken (``SealedSnapshots``): its stored state is prefixed with
``SNAPSHOT_SEAL`` and an HMAC-SHA256 over (aggregate id, version, topic, state), keyed by
a key derived from the ID pepper (``HMAC(pepper, "zhuisu snapshot seal v1")``: the pepper
is already a secret kept in a file outside the database by every process that writes,
and the derivation keeps the two uses apart).  On load a snapshot whose seal does not
verify (edited, moved to another aggregate or version, or sealed under another key) is
never used: the aggregate is replayed from its events, and the refusal is logged at
error level (logger ``zhuisu.snapshots``) as an alarm.  Without a pepper (readers that
only decode the log) snapshots are neither taken nor read.  The seal only keeps a
snapshot from being *served* unchecked; ``zhuisu verify`` checks every snapshot without
any key, by replaying its aggregate from the verified log (``audit.snapshots``).

Why one file: the application service is one class (``Zhuisu``) whose verbs share its
repository, cache, clock and batch; the step catalogue (``STEPS``) beside them is the one
table every adapter reads.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import inspect
import logging
import struct
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, Repository
from eventsourcing.domain import Aggregate, CanCreateTimestamp
from eventsourcing.persistence import EventStore, JSONTranscoder, StoredEvent, Transcoding

from domain import batch
from domain.authorisation import Verifier, authorise, parse_signatures
from domain.case import (
    OVERSIGHT_LEVELS,
    OVERSIGHT_RESPONSIBILITIES,
    Basis,
    Case,
    PolicySuspended,
)
from domain.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    SignatureInvalid,
    SignerNotAuthorised,
)
from domain.fund_account import FundAccount
from domain.household import Household
from domain.identity import hash_id_number
from domain.limits import (
    REGION_CODE_MAX,
    appointment_date,
    check_fields,
    check_length,
    check_values,
    fact_date,
    plan_date,
    year_of_record,
)
from domain.official import Official
from domain.positions import STEP_RULES
from domain.project import Project
from domain.region import Region, RegionLevel, RegionPath, Unit
from domain.roster import Roster
from domain.repository import LockedCacheRepository
from domain.signed import Authoriser, signed_content, step_name
from domain.signing import canonical_json, step_message, verify_signature

A = TypeVar("A", bound=Aggregate)
F = TypeVar("F", bound=Callable[..., Any])

# Record time: eventsourcing stamps every new event itself (``CanCreateTimestamp``) with the
# system clock.  While a verb of ``Zhuisu`` runs, the stamp comes from that application's
# clock instead, so the record time stored with each event is the one the domain's rules
# saw (key revocation, ``BACKDATED``), and a simulated clock (the demo) simulates both.
_RECORD_CLOCK: ContextVar[Callable[[], dt.datetime] | None] = ContextVar(
    "zhuisu-record-clock", default=None)


def _stamp_events_with_the_record_clock() -> None:
    system_clock = CanCreateTimestamp.create_timestamp
    if getattr(system_clock, "zhuisu_record_clock", False):
        return

    def create_timestamp() -> dt.datetime:
        clock = _RECORD_CLOCK.get()
        return system_clock() if clock is None else clock()

    create_timestamp.zhuisu_record_clock = True  # type: ignore[attr-defined]
    CanCreateTimestamp.create_timestamp = staticmethod(create_timestamp)  # type: ignore[method-assign]


_stamp_events_with_the_record_clock()


def recording(method: F) -> F:
    """A verb that records events: they are stamped by the application's clock."""
    @functools.wraps(method)
    def verb(self: Zhuisu, *args: Any, **kwargs: Any) -> Any:
        token = _RECORD_CLOCK.set(self.clock)
        try:
            return method(self, *args, **kwargs)
        finally:
            _RECORD_CLOCK.reset(token)
    return verb  # type: ignore[return-value]


class DateAsISO(Transcoding):
    type = dt.date
    name = "date_iso"

    def encode(self, obj: dt.date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> dt.date:
        return dt.date.fromisoformat(data)


# sealed snapshots (see the module docstring) ------------------------------------------
SNAPSHOT_SEAL = b"zhuisu-seal/v1:"  # a sealed snapshot's stored state: this, the MAC, the state
_SEAL_LABEL = b"zhuisu snapshot seal v1"
_SEAL_HEAD = struct.Struct(">qII")
_snapshot_log = logging.getLogger("zhuisu.snapshots")


def snapshot_seal_key(id_pepper: bytes) -> bytes | None:
    """The snapshots' HMAC key, derived from the ID pepper (None without one)."""
    return hmac.new(id_pepper, _SEAL_LABEL, hashlib.sha256).digest() if id_pepper else None


def snapshot_mac(key: bytes, stored: StoredEvent) -> bytes:
    """HMAC-SHA256 of a snapshot's aggregate id, version, topic and (unsealed) state."""
    try:  # the same text whichever way a recorder hands the id back
        oid = UUID(str(stored.originator_id)).hex.encode()
    except ValueError:
        oid = str(stored.originator_id).encode()
    topic = stored.topic.encode()
    head = _SEAL_HEAD.pack(stored.originator_version, len(oid), len(topic))
    return hmac.new(key, head + oid + topic + bytes(stored.state), hashlib.sha256).digest()


def unseal(state: bytes) -> tuple[bytes | None, bytes]:
    """(MAC, state) of a stored snapshot's state; (None, state) if it carries no seal."""
    state, n = bytes(state), len(SNAPSHOT_SEAL)
    if state.startswith(SNAPSHOT_SEAL) and len(state) >= n + 32:
        return state[n:n + 32], state[n + 32:]
    return None, state


class SealedSnapshots(EventStore):
    """The snapshot store: seals what it puts, serves only what its seal vouches for."""

    def __init__(self, mapper: Any, recorder: Any, key: Callable[[], bytes | None]):
        super().__init__(mapper, recorder)
        self._key = key

    def put(self, domain_events: Any, **kwargs: Any) -> list[Any]:
        key = self._key()
        if key is None:
            return []
        stored = []
        for event in domain_events:
            s = self.mapper.to_stored_event(event)
            stored.append(StoredEvent(s.originator_id, s.originator_version, s.topic,
                                      SNAPSHOT_SEAL + snapshot_mac(key, s) + bytes(s.state)))
        self.recorder.insert_events(stored, **kwargs)
        return []

    def get(self, originator_id: Any, *, gt: int | None = None, lte: int | None = None,
            desc: bool = False, limit: int | None = None) -> Iterator[Any]:
        key = self._key()
        if key is None:
            return iter(())
        found: list[Any] = []
        while True:
            want = None if limit is None else limit - len(found)
            rows = self.recorder.select_events(originator_id, gt=gt, lte=lte, desc=desc,
                                               limit=want)
            refused = False
            for row in rows:
                mac, state = unseal(row.state)
                inner = StoredEvent(row.originator_id, row.originator_version, row.topic, state)
                if mac is not None and hmac.compare_digest(mac, snapshot_mac(key, inner)):
                    found.append(self.mapper.to_domain_event(inner))
                    continue
                refused = True
                _snapshot_log.error(
                    "integrity alarm: snapshot of aggregate %s at version %s refused (its seal "
                    "%s); the aggregate is replayed from its events instead; run zhuisu verify",
                    row.originator_id, row.originator_version,
                    "is missing" if mac is None else "does not verify")
            if not (refused and desc and want is not None and len(rows) == want):
                return iter(found)
            lte = rows[-1].originator_version - 1  # a refused one: look further back


def parse_date(value: object, field: str = "effective_date") -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput("must be a date YYYY-MM-DD", field=field)


# step → (aggregate class, method name, created by the step?)
STEPS: dict[str, tuple[type[Aggregate], str]] = {
    "Household.Applied": (Household, "apply_for_registration"),
    "Household.AppraisedByVillage": (Household, "appraise"),
    "Household.VerifiedByVillage": (Household, "verify"),
    "Household.NoticePosted": (Household, "post_notice"),
    "Household.ObjectionRaised": (Household, "raise_objection"),
    "Household.ObjectionResolved": (Household, "resolve_objection"),
    "Household.ReviewedByTownship": (Household, "review_by_township"),
    "Household.ApprovedByCounty": (Household, "approve_by_county"),
    "Household.HelperAssigned": (Household, "assign_helper"),
    "Household.AnnualReviewRecorded": (Household, "record_annual_review"),
    "Household.ExitProposed": (Household, "propose_exit"),
    "Household.ExitAppraised": (Household, "appraise_exit"),
    "Household.ExitConfirmedByHousehold": (Household, "confirm_exit_by_household"),
    "Household.ExitVerifiedByTownship": (Household, "verify_exit_by_township"),
    "Household.ExitApprovedByCounty": (Household, "approve_exit_by_county"),
    "Household.RemovedFromRegister": (Household, "remove"),
    "Household.Relapsed": (Household, "relapse"),
    "Project.Approved": (Project, "approve"),
    "Project.BeneficiaryAdded": (Project, "add_beneficiary"),
    "Project.AcceptedOnCompletion": (Project, "accept_on_completion"),
    "FundAccount.Received": (FundAccount, "receive"),
    "FundAccount.Allocated": (FundAccount, "allocate"),
    "FundAccount.Disbursed": (FundAccount, "disburse"),
    "FundAccount.Recovered": (FundAccount, "recover"),
    "FundAccount.Reversed": (FundAccount, "reverse"),
    "FundAccount.BatchOrdered": (FundAccount, "order_batch"),
    "FundAccount.ReturnsRecorded": (FundAccount, "record_returns"),
    "Roster.Imported": (Roster, "record"),
}
# Steps whose command carries ``rows`` beside its content: the manifest (content) commits
# to them by Merkle root, count and total, and is what the officials sign (domain.batch).
ROW_STEPS = {"FundAccount.BatchOrdered", "FundAccount.ReturnsRecorded", "Roster.Imported"}
CREATION_STEPS = {"Household.Applied", "Project.Approved", "Roster.Imported"}
DATE_FIELDS = {"effective_date"}
# Fields of a method that the service supplies, never the client.
SERVICE_ARGS = {"authorise", "region_path", "household", "project", "to", "counterpart",
                "rows", "households", "signatures"}
# Fields the client names and the service resolves into an aggregate (the signed content
# still carries the id): the account an allocation goes to.
RESOLVED_FIELDS = {"FundAccount.Allocated": {"to_account_id"}}


@functools.cache
def step_fields(step: str) -> frozenset[str]:
    cls, method = STEPS[step]
    params = inspect.signature(getattr(cls, method)).parameters
    return frozenset({n for n in params if n not in SERVICE_ARGS | {"self", "cls"}}
                     | RESOLVED_FIELDS.get(step, set()))


def check_envelope(step: Any, content: Any) -> None:
    """What a signed command must be before anything is loaded: a known step, and content
    with exactly that step's fields, each value within its limits (the signing queue makes
    the same checks when a draft is submitted)."""
    if not isinstance(step, str) or step not in STEPS:
        raise InvalidInput(f"unknown step; one of {sorted(STEPS)}", field="step")
    if not isinstance(content, Mapping):
        raise InvalidInput("must be an object with the step's fields", field="content")
    allowed = step_fields(step)
    extra = sorted(set(content) - allowed)
    if extra:
        raise InvalidInput(f"{step} has no field {extra[0]}; its fields are {sorted(allowed)}",
                           field=f"content.{extra[0]}")
    missing = sorted(allowed - set(content))
    if missing:
        raise InvalidInput(f"{step} needs {missing[0]}", field=f"content.{missing[0]}")
    check_values(dict(content), "")


class Zhuisu(Application):
    """追溯: one event store, one notification log, every aggregate of the domain."""

    name = "zhuisu"
    snapshotting_intervals = {FundAccount: 200}

    def __init__(self, env: Mapping[str, str] | None = None, *, id_pepper: bytes = b"",
                 clock: Callable[[], dt.datetime] | None = None,
                 verifier: Verifier = verify_signature) -> None:
        super().__init__(env)
        if clock is None:
            raise InvalidInput("the application needs a clock for record time", field="clock")
        self.id_pepper = id_pepper
        self.clock = clock
        self.verifier = verifier
        # The open batch of this thread / task, if any (see ``batch``): the aggregates it
        # touched, and their new events in the order the commands made them.
        self._batch_var: ContextVar[tuple[dict[UUID, Aggregate], list[Any]] | None] = \
            ContextVar(f"zhuisu-batch-{id(self)}", default=None)

    @property
    def _batch(self) -> dict[UUID, Aggregate] | None:
        batch = self._batch_var.get()
        return None if batch is None else batch[0]

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def construct_repository(self) -> Repository:
        """The library's repository, its aggregate cache read, fast-forwarded and copied
        under one lock per aggregate (``domain.repository``: concurrent commands)."""
        repository = super().construct_repository()
        repository.__class__ = LockedCacheRepository
        return repository

    def construct_snapshot_store(self) -> EventStore:
        """Snapshots sealed with a key derived from the ID pepper (module docstring)."""
        recorder = self.factory.aggregate_recorder(purpose="snapshots")
        return SealedSnapshots(self.mapper, recorder, self._snapshot_key)

    def _snapshot_key(self) -> bytes | None:
        pepper = getattr(self, "id_pepper", b"")
        cached = getattr(self, "_seal_key", None)
        if cached is None or cached[0] != pepper:
            cached = self._seal_key = (pepper, snapshot_seal_key(pepper))
        return cached[1]

    def _take_snapshots(self, processing_event: Any) -> None:
        """One snapshot per aggregate per save, at the last interval its new events cross
        (the library takes one at every crossing, each a replay from the store: a
        100,000-row batch would replay the account 500 times)."""
        if not (self.snapshots and self.snapshotting_intervals):
            return
        crossed: set[Any] = set()
        for event in processing_event.events:
            aggregate = processing_event.aggregates.get(event.originator_id)
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval is not None and event.originator_version % interval == 0:
                crossed.add(event.originator_id)
        if not crossed or self._snapshot_key() is None:
            return
        for aggregate_id in crossed:
            # The saved aggregate itself is the recorded state at its version: no replay.
            aggregate = processing_event.aggregates[aggregate_id]
            snapshot_class = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
            self.snapshots.put([snapshot_class.take(aggregate)])

    def take_snapshot(self, aggregate_id: Any, version: int | None = None,
                      projector_func: Any = None) -> None:
        """The library's, but only when the snapshot can be sealed (a pepper is set)."""
        if self._snapshot_key() is None:
            return
        if projector_func is None:
            super().take_snapshot(aggregate_id, version)
        else:
            super().take_snapshot(aggregate_id, version, projector_func)

    # loading and saving -----------------------------------------------------------
    def load(self, cls: type[A], aggregate_id: UUID | str, field: str = "subject") -> A:
        try:
            aid = aggregate_id if isinstance(aggregate_id, UUID) else UUID(str(aggregate_id))
        except ValueError as exc:
            raise InvalidInput("must be a UUID", field=field) from exc
        if self._batch is not None and aid in self._batch:
            agg = self._batch[aid]
        else:
            try:
                agg = self.repository.get(aid)
            except AggregateNotFoundError as exc:
                raise NotFound(f"no {cls.__name__} {aid}", field=field) from exc
            if self._batch is not None:
                self._batch[aid] = agg
        if not isinstance(agg, cls):
            raise NotFound(f"{aid} is a {type(agg).__name__}, not a {cls.__name__}", field=field)
        return agg

    def load_many(self, cls: type[A], ids: list[UUID], fields: list[str]) -> dict[UUID, A]:
        """Many aggregates at once (a batch's payees): their events read in chunks of one
        query each and replayed, the open batch's and the cache's own instances used where
        they are; an id that names nothing is left out (the caller names the row).  For
        aggregates without snapshots (households, projects): an aggregate with a snapshot
        is loaded the ordinary way."""
        found: dict[UUID, A] = {}
        wanted: dict[UUID, str] = {}
        for aid, field in zip(ids, fields):
            if aid in found or aid in wanted:
                continue
            if self._batch is not None and aid in self._batch:
                found[aid] = self.load(cls, aid, field)
            else:
                wanted[aid] = field
        mapper = self.mapper
        pending = list(wanted)
        for k in range(0, len(pending), 500):
            chunk = pending[k:k + 500]
            events: dict[UUID, list[Any]] = {}
            for stored in self._select_events_of(chunk):
                events.setdefault(UUID(str(stored.originator_id)), []).append(
                    mapper.to_domain_event(stored))
            for aid in chunk:
                if aid not in events:
                    continue
                agg = None
                for e in events[aid]:
                    agg = e.mutate(agg)
                if not isinstance(agg, cls):
                    raise NotFound(f"{aid} is a {type(agg).__name__}, not a {cls.__name__}",
                                   field=wanted[aid])
                found[aid] = agg
                if self._batch is not None:
                    self._batch[aid] = agg
        return found

    def _select_events_of(self, ids: list[UUID]) -> list[StoredEvent]:
        """Every stored event of ``ids``, in version order per aggregate (one query)."""
        recorder = self.recorder
        if not ids:
            return []
        if hasattr(recorder, "convert_originator_id"):  # SQLite
            marks = ", ".join("?" * len(ids))
            statement = (f"SELECT originator_id, originator_version, topic, state FROM "
                         f"{recorder.events_table_name} WHERE originator_id IN ({marks}) "
                         "ORDER BY originator_id, originator_version")
            with recorder.datastore.transaction(commit=False) as c:
                c.execute(statement, [i.hex for i in ids])
                return [StoredEvent(recorder.convert_originator_id(r["originator_id"]),
                                    r["originator_version"], r["topic"], r["state"])
                        for r in c.fetchall()]
        from psycopg.sql import SQL, Identifier

        statement = SQL("SELECT originator_id, originator_version, topic, state FROM "
                        "{schema}.{table} WHERE originator_id = ANY(%s) "
                        "ORDER BY originator_id, originator_version").format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (ids,))
            return [StoredEvent(r["originator_id"], r["originator_version"], r["topic"],
                                bytes(r["state"])) for r in curs.fetchall()]

    def exists(self, aggregate_id: UUID) -> bool:
        if self._batch is not None and aggregate_id in self._batch:
            return True
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def _commit(self, *aggregates: Aggregate | None) -> None:
        batch = self._batch_var.get()
        if batch is None:
            self.save(*aggregates)
            return
        touched, events = batch
        for agg in aggregates:
            if agg is not None:
                touched[agg.id] = agg
                events.extend(agg.collect_events())

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run many commands and store all their events in one transaction (bulk loads).

        Every command still passes every check; a refused command changes nothing, so the
        batch holds only accepted steps.  The events are stored in the order the commands
        made them, so the log reads as the commands ran.
        """
        touched: dict[UUID, Aggregate] = {}
        events: list[Any] = []
        token = self._batch_var.set((touched, events))
        stamp = _RECORD_CLOCK.set(self.clock)
        try:
            yield
            self.save(*events, *touched.values())
        finally:
            _RECORD_CLOCK.reset(stamp)
            self._batch_var.reset(token)

    # administration (unsigned; restricted by the API) -------------------------------
    @recording
    def create_region(self, code: str, name: str, level: str, parent_code: str | None,
                      population: int | None = None) -> UUID:
        check_fields(name=name, level=level, parent_code=parent_code)
        check_length(code, "code", REGION_CODE_MAX)
        try:
            lvl = RegionLevel(level)
        except ValueError as exc:
            raise InvalidInput(f"must be one of {[lv.value for lv in RegionLevel]}",
                               field="level") from exc
        parent = self.region(parent_code, "parent_code") if parent_code else None
        if self.exists(Region.create_id(code)):
            raise AlreadyExists(f"region {code} exists", field="code")
        region = Region.create(code, name, lvl, parent, population)
        self._commit(region)
        return region.id

    def region(self, code: str, field: str = "region_code") -> Region:
        return self.load(Region, Region.create_id(code), field)

    @recording
    def establish_unit(self, code: str, name: str, kind: str, region_code: str) -> UUID:
        check_fields(code=code, name=name, kind=kind, region_code=region_code)
        if self.exists(Unit.create_id(code)):
            raise AlreadyExists(f"unit {code} exists", field="code")
        unit = Unit.establish(code, name, kind, self.region(region_code))
        self._commit(unit)
        return unit.id

    @recording
    def register_official(self, code: str, name: str, unit_code: str, id_number: str) -> UUID:
        check_fields(code=code, name=name, unit_code=unit_code)
        unit = self.load(Unit, Unit.create_id(unit_code), "unit_code")
        if self.exists(Official.create_id(code)):
            raise AlreadyExists(f"official {code} exists", field="code")
        if not name:
            raise InvalidInput("must not be empty", field="name")
        official = Official(code=code, name=name, unit_code=unit.code, region_code=unit.region_code,
                            id_number_hash=hash_id_number(id_number, self.id_pepper))
        self._commit(official)
        return official.id

    def official(self, code: str, field: str = "official_code") -> Official:
        return self.load(Official, Official.create_id(code), field)

    @recording
    def take_position(self, official_code: str, kind: str, region_code: str, start: dt.date,
                      responsibility: str | None = None) -> None:
        check_fields(official_code=official_code, kind=kind, region_code=region_code,
                     responsibility=responsibility)
        official = self.official(official_code)
        region = self.region(region_code)
        official.take_position(kind, region, appointment_date(start, "start", self.clock()),
                               responsibility)
        held = official.positions[-1]
        region.record_holder(str(official.id), kind, held.responsibility, held.start)
        self._commit(official, region)

    @recording
    def leave_position(self, official_code: str, kind: str, region_code: str, end: dt.date) -> None:
        check_fields(official_code=official_code, kind=kind, region_code=region_code)
        end = appointment_date(end, "end", self.clock())
        official = self.official(official_code)
        official.leave_position(kind, region_code, end)
        region = self.region(region_code)
        region.record_holder_left(str(official.id), kind, end)
        self._commit(official, region)

    @recording
    def register_key(self, official_code: str, public_key_b64: str, valid_from: dt.date) -> str:
        official = self.official(official_code)
        check_fields(public_key=public_key_b64)
        key_id = official.register_key(public_key_b64,
                                       appointment_date(valid_from, "valid_from", self.clock()))
        self._commit(official)
        return key_id

    @recording
    def rotate_key(self, official_code: str, old_key_id: str, public_key_b64: str,
                   effective_date: dt.date) -> str:
        official = self.official(official_code)
        check_fields(old_key_id=old_key_id, public_key=public_key_b64)
        key_id = official.rotate_key(old_key_id, public_key_b64,
                                     appointment_date(effective_date, "effective_date",
                                                      self.clock()))
        self._commit(official)
        return key_id

    @recording
    def revoke_key(self, official_code: str, key_id: str, effective_date: dt.date,
                   reason: str) -> None:
        official = self.official(official_code)
        check_fields(key_id=key_id, reason=reason)
        official.revoke_key(key_id, appointment_date(effective_date, "effective_date",
                                                     self.clock()), reason, self.clock())
        self._commit(official)

    @recording
    def declare_relative(self, official_code: str, id_number: str, relation: str) -> None:
        check_fields(relation=relation)
        official = self.official(official_code)
        official.declare_relative(hash_id_number(id_number, self.id_pepper), relation)
        self._commit(official)

    @recording
    def open_account(self, region_code: str, fund_source: str, name: str = "") -> UUID:
        check_fields(region_code=region_code, fund_source=fund_source, name=name)
        region = self.region(region_code)
        if self.exists(FundAccount.create_id(region_code, fund_source)):
            raise AlreadyExists(f"account {region_code}/{fund_source} exists", field="fund_source")
        account = FundAccount.open(region_code=region.code, level=region.level,
                                   region_path=region.path, fund_source=fund_source, name=name)
        self._commit(account)
        return account.id

    def hash_id(self, id_number: str, field: str = "id_number") -> str:
        return hash_id_number(id_number, self.id_pepper, field)

    # signed steps -----------------------------------------------------------------
    def authoriser(self, signatures: Any) -> Authoriser:
        sigs = parse_signatures(signatures)
        officials: dict[str, Official] = {}
        for i, s in enumerate(sigs):
            try:
                officials[s.official_id] = self.load(Official, s.official_id,
                                                     f"signatures[{i}].official_id")
            except NotFound:
                continue  # reported by authorise() as an unknown signer
        now = self.clock()

        def check(**kw: Any) -> list[dict]:
            return authorise(signatures=sigs, now=now, officials=officials,
                             verify=self.verifier, **kw)

        return check

    @recording
    def execute(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """Run one signed step.  Returns the subject id and whether anything new was stored."""
        step, content = command.get("step"), command.get("content")
        check_envelope(step, content)
        now = self.clock()
        kwargs = {k: (fact_date(v, k, now) if k in DATE_FIELDS else v) for k, v in content.items()}
        if step in ROW_STEPS:
            kwargs["rows"] = command.get("rows")
        elif command.get("rows") is not None:
            raise InvalidInput(f"{step} carries no rows; only {sorted(ROW_STEPS)} do",
                               field="rows")
        authorise = self.authoriser(command.get("signatures"))
        handler = getattr(self, "_" + step.replace(".", "_").lower(), self._step_on_existing)
        subject, recorded = handler(step, command.get("subject"), kwargs, authorise)
        if not recorded:
            self._check_retry(step, subject, command.get("signatures"))
        return {"step": step, "subject": str(subject), "recorded": recorded}

    def _check_retry(self, step: str, subject: UUID, signatures: Any) -> None:
        """A retry of a step already stored is answered "nothing new" only when it carries
        the signatures stored with that step, or signatures that verify over its stored
        content; otherwise it is refused as a new step with a bad signature would be, so a
        retry tells nothing about what is stored to someone who cannot sign it."""
        sigs = parse_signatures(signatures)
        sent = {(s.official_id, s.role.value, s.key_id, s.signature) for s in sigs}
        stored = [e for e in self._events_of(subject)
                  if step_name(e) == step and getattr(e, "signatures", None)]
        for e in stored:
            if {(d["official_id"], d["role"], d["key_id"], d["signature"])
                    for d in e.signatures} == sent:
                return
        contents = [canonical_json(signed_content(e)) for e in stored]
        for i, sig in enumerate(sigs):
            field = f"signatures[{i}]"
            try:
                official = self.load(Official, sig.official_id, f"{field}.official_id")
            except NotFound as exc:
                raise SignerNotAuthorised(f"no official {sig.official_id}",
                                          field=f"{field}.official_id") from exc
            key = official.keys.get(sig.key_id)
            if key is None:
                raise SignatureInvalid(f"official {official.code} has no key {sig.key_id}",
                                       field=f"{field}.key_id")
            if not any(self.verifier(key.public_key, sig.signature, step_message(
                    step, subject, content, sig.official_id, sig.role.value, sig.key_id))
                    for content in contents):
                raise SignatureInvalid(
                    f"{sig.role.value} signature of official {official.code} does not verify "
                    f"over the canonical content of {step}", field=f"{field}.signature")

    def _events_of(self, aggregate_id: UUID) -> list[Any]:
        """The stored events of an aggregate, then any this batch has not stored yet."""
        aggregate_id = UUID(str(aggregate_id))
        events = list(self.repository.event_store.get(aggregate_id))
        batch = self._batch_var.get()
        if batch is not None:
            events += [e for e in batch[1] if e.originator_id == aggregate_id]
        return events

    def _step_on_existing(self, step: str, subject: Any, kwargs: dict[str, Any],
                          authorise: Authoriser) -> tuple[UUID, bool]:
        cls, method = STEPS[step]
        agg = self.load(cls, subject)
        version = agg.version
        getattr(agg, method)(**kwargs, authorise=authorise)
        self._commit(agg)
        return agg.id, agg.version != version

    def _household_applied(self, step: str, subject: Any, kw: dict[str, Any],
                           authorise: Authoriser) -> tuple[UUID, bool]:
        hid = Household.create_id(str(kw.get("household_code")))
        self._check_subject(subject, hid)
        village = self.region(str(kw.get("village_code")), "content.village_code")
        if village.level is not RegionLevel.VILLAGE:
            raise InvalidInput(f"{village.code} is a {village.level.value}, not a village",
                               field="content.village_code")
        if self.exists(hid):
            existing = self.load(Household, hid)
            if existing.already_accepted(step, {**kw}):
                return hid, False
            raise AlreadyExists(f"household {kw['household_code']} has already applied",
                                field="content.household_code")
        household = Household.apply_for_registration(**kw, region_path=village.path,
                                                     authorise=authorise)
        self._commit(household)
        return hid, True

    def _project_approved(self, step: str, subject: Any, kw: dict[str, Any],
                          authorise: Authoriser) -> tuple[UUID, bool]:
        pid = Project.create_id(str(kw.get("project_code")))
        self._check_subject(subject, pid)
        region = self.region(str(kw.get("region_code")), "content.region_code")
        if region.level not in (RegionLevel.VILLAGE, RegionLevel.TOWNSHIP, RegionLevel.COUNTY):
            raise InvalidInput("projects are located in a county, township or village",
                               field="content.region_code")
        if self.exists(pid):
            if self.load(Project, pid).already_accepted(step, kw):
                return pid, False
            raise AlreadyExists(f"project {kw['project_code']} exists", field="content.project_code")
        for i, h in enumerate(kw.get("beneficiary_household_ids") or []):
            self.load(Household, h, f"content.beneficiary_household_ids[{i}]")
        project = Project.approve(**kw, region_path=region.path, authorise=authorise)
        self._commit(project)
        return pid, True

    @staticmethod
    def _check_subject(subject: Any, expected: UUID) -> None:
        if subject not in (None, "", str(expected), expected):
            raise InvalidInput(f"the subject of this creation step is {expected}", field="subject")

    def _household_helperassigned(self, step: str, subject: Any, kw: dict[str, Any],
                                  authorise: Authoriser) -> tuple[UUID, bool]:
        self.load(Official, kw.get("official_id"), "content.official_id")
        return self._step_on_existing(step, subject, kw, authorise)

    def _project_beneficiaryadded(self, step: str, subject: Any, kw: dict[str, Any],
                                  authorise: Authoriser) -> tuple[UUID, bool]:
        """A beneficiary is a known household, as at approval."""
        self.load(Household, kw.get("household_id"), "content.household_id")
        return self._step_on_existing(step, subject, kw, authorise)

    def _fundaccount_allocated(self, step: str, subject: Any, kw: dict[str, Any],
                               authorise: Authoriser) -> tuple[UUID, bool]:
        account = self.load(FundAccount, subject)
        to = self.load(FundAccount, kw["to_account_id"], "content.to_account_id")
        version = account.version
        account.allocate(**{k: v for k, v in kw.items() if k != "to_account_id"}, to=to,
                         authorise=authorise)
        self._commit(account, to)
        return account.id, account.version != version

    def _fundaccount_disbursed(self, step: str, subject: Any, kw: dict[str, Any],
                               authorise: Authoriser) -> tuple[UUID, bool]:
        account = self.load(FundAccount, subject)
        household = project = None
        if kw.get("payee_kind") == "household":
            household = self.load(Household, kw.get("payee_id"), "content.payee_id")
        elif kw.get("payee_kind") == "project":
            project = self.load(Project, kw.get("payee_id"), "content.payee_id")
        elif kw.get("payee_kind") == "supplier" and kw.get("project_id"):
            project = self.load(Project, kw["project_id"], "content.project_id")
        version = account.version
        village = (household or project).region_path.get("village") if (household or project) \
            else None
        if village and not account.already_accepted("FundAccount.Disbursed", {
                **kw, "project_id": kw.get("project_id")}):
            case_no = self.region(village).suspension_of(str(kw.get("purpose")))
            if case_no is not None:
                raise PolicySuspended(
                    f"{kw.get('purpose')} payments to village {village} are suspended while "
                    f"case {case_no} is open and not rectified (暂停享受相关政策)",
                    field="content.purpose", case_no=case_no)
        account.disburse(**kw, household=household, project=project, authorise=authorise)
        self._commit(account, project)
        return account.id, account.version != version

    def _fundaccount_batchordered(self, step: str, subject: Any, kw: dict[str, Any],
                                  authorise: Authoriser) -> tuple[UUID, bool]:
        """支付令: load the account and every payee, refuse a village whose payments of the
        purpose are suspended by an open case, then pay the rows all or none."""
        account = self.load(FundAccount, subject)
        rows = kw.get("rows")
        ids, fields = [], []
        for i, row in enumerate(rows if isinstance(rows, list) else []):
            payee = row.get("payee_id") if isinstance(row, Mapping) else None
            try:
                ids.append(UUID(str(payee)))
            except ValueError:
                continue  # a malformed id is named by the row check
            fields.append(f"rows[{i}].payee_id")
        households = {str(k): v for k, v in self.load_many(Household, ids, fields).items()}
        version = account.version
        if not account.already_accepted(step, {k: v for k, v in kw.items() if k != "rows"}):
            for village in sorted({h.region_path.get("village") for h in households.values()}
                                  - {None}):
                case_no = self.region(village).suspension_of(str(kw.get("purpose")))
                if case_no is not None:
                    raise PolicySuspended(
                        f"{kw.get('purpose')} payments to village {village} are suspended "
                        f"while case {case_no} is open and not rectified (暂停享受相关政策)",
                        field="content.purpose", case_no=case_no)
        account.order_batch(**kw, households=households, authorise=authorise)
        self._commit(account)
        return account.id, account.version != version

    def _roster_imported(self, step: str, subject: Any, kw: dict[str, Any],
                         authorise: Authoriser) -> tuple[UUID, bool]:
        """花名册导入: the county signs the manifest once; every household row becomes a
        household on the register, all or none (``domain.roster``)."""
        import_id = str(kw.get("import_id"))
        try:
            import_id = str(UUID(import_id))
        except ValueError as exc:
            raise InvalidInput("must be a UUID chosen by the client", field="content.import_id") \
                from exc
        rid = Roster.create_id(import_id)
        self._check_subject(subject, rid)
        county = self.region(str(kw.get("county_code")), "content.county_code")
        if county.level is not RegionLevel.COUNTY:
            raise InvalidInput(f"{county.code} is a {county.level.value}, not a county",
                               field="content.county_code")
        rows = [batch.roster_row(r, i) for i, r in enumerate(batch.rows_list(kw.get("rows")))]
        batch.check_manifest(tag=batch.ROSTER_ROW, manifest_id=import_id, rows=rows,
                             row_count=kw.get("row_count"), total_fen=None,
                             root=kw.get("rows_root"))
        content = {k: v for k, v in kw.items() if k != "rows"}
        content["import_id"] = import_id
        for name in ("source_file", "source_sha256"):
            if not isinstance(content.get(name), str) or not content[name]:
                raise InvalidInput("a roster import names its file and the file's SHA-256",
                                   field=f"content.{name}")
        if self.exists(rid):
            if self.load(Roster, rid).already_accepted(step, content):
                return rid, False
            raise AlreadyExists(f"roster import {import_id} was recorded with other content",
                                field="content.import_id")
        paths: dict[str, RegionPath] = {}
        seen: set[str] = set()
        ids = [Household.create_id(str(row["household_code"])) for row in rows]
        on_record = {UUID(str(e.originator_id)) for k in range(0, len(ids), 500)
                     for e in self._select_events_of(ids[k:k + 500])}
        for i, row in enumerate(rows):
            code = str(row["village_code"])
            if code not in paths:
                village = self.region(code, f"rows[{i}].village_code")
                if village.level is not RegionLevel.VILLAGE or \
                        village.path.get("county") != county.code:
                    raise InvalidInput(f"{code} is not a village of county {county.code}",
                                       field=f"rows[{i}].village_code")
                paths[code] = village.path
            hid = ids[i]
            if str(hid) in seen:
                raise InvalidInput("the same household twice", field=f"rows[{i}].household_code")
            seen.add(str(hid))
            if hid in on_record or (self._batch is not None and hid in self._batch):
                raise AlreadyExists(f"household {row['household_code']} is already on record; "
                                    "a roster import adds new households only",
                                    field=f"rows[{i}].household_code")
        signatures = authorise(step=step, subject=rid, content=canonical_json(content),
                               rule=STEP_RULES[step], region_path=county.path,
                               day=content["effective_date"])
        roster = Roster.record(**content, rows=rows, region_path=county.path,
                               signatures=signatures)
        households = [Household.import_row(row=row, index=i, import_id=import_id,
                                           region_path=paths[str(row["village_code"])],
                                           signatures=signatures)
                      for i, row in enumerate(rows)]
        self._commit(roster, *households)
        return rid, True

    def _fundaccount_recovered(self, step: str, subject: Any, kw: dict[str, Any],
                               authorise: Authoriser) -> tuple[UUID, bool]:
        account = self.load(FundAccount, subject)
        project = self._project_of(account, kw.get("of_movement_id"))
        version = account.version
        account.recover(**kw, project=project, authorise=authorise)
        self._commit(account, project)
        return account.id, account.version != version

    def _fundaccount_reversed(self, step: str, subject: Any, kw: dict[str, Any],
                              authorise: Authoriser) -> tuple[UUID, bool]:
        account = self.load(FundAccount, subject)
        original = account.movements.get(str(kw.get("of_movement_id")), {})
        counterpart = None
        if original.get("kind") == "allocated":
            counterpart = self.load(FundAccount, original["counterparty"])
        project = self._project_of(account, kw.get("of_movement_id"))
        version = account.version
        account.reverse(**kw, counterpart=counterpart, project=project, authorise=authorise)
        self._commit(account, counterpart, project)
        return account.id, account.version != version

    def _project_of(self, account: FundAccount, movement_id: Any) -> Project | None:
        pid = account.project_of(str(movement_id))
        return self.load(Project, pid) if pid else None

    # cases (纪检监察) ------------------------------------------------------------------
    def case(self, case_no: str, field: str = "case_no") -> Case:
        return self.load(Case, Case.create_id(str(case_no)), field)

    def oversight_leaders(self, official_ids: list[str], day: dt.date) -> list[dict]:
        """一案双查: who held a responsibility position, on ``day``, over the village or
        township where each official held a position, and over the level above."""
        found: dict[str, dict] = {}
        for oid in official_ids:
            official = self.load(Official, oid, "persons")
            for pos in official.positions_on(day) or official.positions[-1:]:
                region = self.region(pos.region_code)
                if region.level.value not in OVERSIGHT_LEVELS:
                    continue
                over = [region] + ([self.region(region.parent_code)] if region.parent_code else [])
                for r in over:
                    for h in r.holders_on(day):
                        if h["responsibility"] not in OVERSIGHT_RESPONSIBILITIES or \
                                h["official_id"] in found or h["official_id"] in official_ids:
                            continue
                        found[h["official_id"]] = {
                            "official_id": h["official_id"], "basis": Basis.OVERSIGHT.value,
                            "region_code": r.code, "position": h["kind"],
                            "reason": f"一案双查: {h['kind']} ({h['responsibility']}) at {r.code} "
                                      f"on {day.isoformat()}, over {official.code} "
                                      f"({pos.kind} at {region.code})"}
        return list(found.values())

    @recording
    def open_case(self, *, case_no: str, case_type: str, title: str, region_code: str,
                  effective_date: Any, incident_date: Any = None,
                  subjects: list[dict] | None = None, evidence: list[dict] | None = None,
                  flag_ids: list[str] | None = None, suspend_policies: list[str] | None = None,
                  recorded_by: str) -> dict[str, Any]:
        """立案.  ``subjects``: [{official_id, reason}] — the persons whose conduct is in
        question; 一案双查 adds their leaders (see ``oversight_leaders``)."""
        check_fields(case_no=case_no, case_type=case_type, title=title, region_code=region_code,
                     subjects=subjects, evidence=evidence, flag_ids=flag_ids,
                     suspend_policies=suspend_policies, recorded_by=recorded_by)
        opened = fact_date(effective_date, "effective_date", self.clock())
        incident = (fact_date(incident_date, "incident_date", self.clock()) if incident_date
                    else opened)
        region = self.region(region_code)
        cid = Case.create_id(str(case_no))
        persons: list[dict] = []
        for i, s in enumerate(subjects or []):
            if not isinstance(s, Mapping) or not s.get("reason"):
                raise InvalidInput("each subject is {official_id, reason}",
                                   field=f"subjects[{i}]")
            official = self.load(Official, s.get("official_id"), f"subjects[{i}].official_id")
            if any(p["official_id"] == str(official.id) for p in persons):
                raise InvalidInput("the same official is listed twice",
                                   field=f"subjects[{i}].official_id")
            persons.append({"official_id": str(official.id), "basis": Basis.SUBJECT.value,
                            "reason": str(s["reason"]), "region_code": official.region_code,
                            "position": None})
        if self.exists(cid):
            case = self.load(Case, cid)
            if case.case_type == case_type and case.title == title and \
                    case.region_code == region.code and case.opened_on == opened:
                return {"case_id": str(cid), "recorded": False}
            raise AlreadyExists(f"case {case_no} exists", field="case_no")
        persons += self.oversight_leaders([p["official_id"] for p in persons], incident)
        case = Case.open(case_no=case_no, case_type=case_type, title=title,
                         region_code=region.code, region_path=region.path,
                         effective_date=opened, incident_date=incident, persons=persons,
                         evidence=evidence or [], flag_ids=flag_ids or [],
                         suspend_policies=suspend_policies or [], recorded_by=recorded_by)
        if case.suspend_policies:
            region.suspend_policies(str(cid), case.case_no, case.suspend_policies, opened)
            self._commit(case, region)
        else:
            self._commit(case)
        return {"case_id": str(cid), "recorded": True}

    @recording
    def case_step(self, case_no: str, verb: str, **kwargs: Any) -> dict[str, Any]:
        """One step on an open case: link_evidence, add_person, record_finding,
        impose_accountability, add_rectification_item, complete_rectification_item,
        rectify, close (see ``domain.case.Case``)."""
        allowed = {"link_evidence", "add_person", "record_finding", "impose_accountability",
                   "add_rectification_item", "complete_rectification_item", "rectify", "close"}
        if verb not in allowed:
            raise InvalidInput(f"one of {sorted(allowed)}", field="step")
        case = self.case(case_no)
        check_fields(case_no=case_no, **kwargs)
        if "effective_date" in kwargs:
            kwargs["effective_date"] = fact_date(kwargs["effective_date"], "effective_date",
                                                 self.clock())
        if "deadline" in kwargs:
            kwargs["deadline"] = plan_date(kwargs["deadline"], "deadline", self.clock())
        if verb in ("add_person", "impose_accountability") and "official_id" in kwargs:
            self.load(Official, kwargs["official_id"], "official_id")
        if verb == "add_rectification_item":
            self.load(Official, kwargs.get("official_id"), "official_id")
            self.load(Unit, Unit.create_id(str(kwargs.get("unit_code"))), "unit_code")
        try:
            method = getattr(case, verb)
            params = inspect.signature(method).parameters
            unknown = sorted(set(kwargs) - set(params))
            if unknown:
                raise InvalidInput(f"{verb} takes {sorted(params)}", field=unknown[0])
            missing = sorted(n for n, p in params.items()
                             if p.default is inspect.Parameter.empty and n not in kwargs)
            if missing:
                raise InvalidInput(f"{verb} needs {missing[0]}", field=missing[0])
            result = method(**kwargs)
        except TypeError as exc:  # pragma: no cover - guarded above
            raise InvalidInput(str(exc), field="step") from exc
        if verb == "rectify" and result and case.suspend_policies:
            village = self.region(case.region_code)
            village.resume_policies(str(case.id), kwargs["effective_date"])
            self._commit(case, village)
        else:
            self._commit(case)
        return {"case_id": str(case.id), "recorded": bool(result)}

    def payment_for_recovery(self, account_id: Any, movement_id: Any, field: str) -> dict:
        """A standing payment as a recovery order needs it: amount still out, signers."""
        account = self.load(FundAccount, account_id, f"{field}.account_id")
        mid = str(movement_id)
        m = account.movements.get(mid)
        if m is None or m["kind"] != "disbursed":
            raise NotFound(f"no payment {mid} on account {account.id}", field=f"{field}.movement_id")
        if m["reversed"]:
            raise InvalidInput("the payment was reversed; nothing to recover",
                               field=f"{field}.movement_id")
        signers = None
        for e in self.events.get(account.id):
            if type(e).__name__ == "Disbursed" and e.movement_id == mid:
                signers = [{"official_id": s["official_id"], "role": s["role"]}
                           for s in e.signatures]
                break
        assert signers is not None, "a standing payment has its Disbursed event"
        return {"account_id": str(account.id), "movement_id": mid,
                "outstanding_fen": m["amount"] - m["refunded"], "purpose": m["purpose"],
                "payee_kind": m.get("payee_kind"), "payee_id": m.get("payee_id"),
                "signers": signers}

    @recording
    def order_recovery(self, case_no: str, *, order_id: str, payments: list[dict],
                       effective_date: Any, reason: str, recorded_by: str) -> dict[str, Any]:
        """谁签字谁追回: an order to recover wrongly paid money from the payments' signers."""
        check_fields(case_no=case_no, order_id=order_id, payments=payments, reason=reason,
                     recorded_by=recorded_by)
        case = self.case(case_no)
        if not isinstance(payments, list) or not payments:
            raise InvalidInput("a recovery order names at least one payment", field="payments")
        found = []
        for i, p in enumerate(payments):
            if not isinstance(p, Mapping):
                raise InvalidInput("each payment is {account_id, movement_id, amount_fen}",
                                   field=f"payments[{i}]")
            info = self.payment_for_recovery(p.get("account_id"), p.get("movement_id"),
                                             f"payments[{i}]")
            found.append({**info, "amount_fen": p.get("amount_fen", info["outstanding_fen"])})
        recorded = case.order_recovery(order_id=order_id, payments=found,
                                       effective_date=fact_date(effective_date,
                                                                "effective_date", self.clock()),
                                       reason=reason, recorded_by=recorded_by)
        self._commit(case)
        return {"case_id": str(case.id), "recorded": recorded}

    @recording
    def record_survey(self, region_code: str, *, survey_id: str, year: int, effective_date: Any,
                      surveyed: int, satisfied: int, recorded_by: str) -> dict[str, Any]:
        """群众满意度调查 of a village, township or county."""
        check_fields(region_code=region_code, survey_id=survey_id, recorded_by=recorded_by)
        region = self.region(region_code)
        if not survey_id:
            raise InvalidInput("must not be empty", field="survey_id")
        year = year_of_record(year, "year", self.clock())
        recorded = region.record_survey(str(survey_id), year,
                                        fact_date(effective_date, "effective_date", self.clock()),
                                        surveyed, satisfied, recorded_by)
        self._commit(region)
        return {"region_id": str(region.id), "recorded": recorded}

    # reads ---------------------------------------------------------------------------
    def stored_events(self, aggregate_id: UUID, after: int = 0,
                      limit: int | None = None) -> list[Any]:
        """An aggregate's events in version order, ``after`` a version, at most ``limit``."""
        return list(self.events.get(aggregate_id, gt=after or None, limit=limit))
