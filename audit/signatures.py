"""The signatures stored with the events, checked again from the stored bytes alone.

The Merkle tree proves that the log was not changed *after* an event became a leaf; it
says nothing about the event itself.  Someone with write access to the events table could
append a row copied from a real payment, its signatures kept and its amount changed, and
the next catch-up would make it a leaf like any other.  So nothing becomes a leaf before
its signatures are checked again here (``tree_store.catch_up``), and ``zhuisu verify
--signatures`` re-checks every stored one (``verify_signatures``).

What is checked, for each stored event (``check``):

- a signed step (its event is one of ``domain.application.STEPS``) carries a non-empty
  list of signatures; any event that carries signatures has each of them checked;
- each signature names an official registered earlier in the log, and one of that
  official's keys (``domain.official.Key``) that was *usable* for the step — valid on the
  step's business date and not revoked before the event's record time — as the log stood
  just before the event (its position): the officials are rebuilt from their own events
  in log order (``Signers``), never read from anything outside the log;
- each Ed25519 signature verifies over the step's canonical message (``domain.signing``):
  step name, subject (the event's aggregate), the event's signed content
  (``domain.signed.signed_content``: every field but the framework's and the derived
  ones) and the signer's declaration (official id, role, key id).

- the same signed step (subject, step and content: ``domain.signing.content_digest``) was
  not recorded before: the application answers a repeated step "nothing new" and never
  stores it twice, so a second copy is a replay (signatures do not cover the version).
  The tree keeps the digest of each signed step it took in (``log_signed_steps``; a store
  whose tree predates it has none for the older leaves until ``tree_store.rebuild``);
  ``verify_signatures`` keeps them in memory.

An event that cannot be decoded but should carry signatures (a signed step's topic, or
the word ``"signatures"`` in its state) fails.  Positions and responsibilities are not
re-derived here (authorisation, ``domain.authorisation``): a signature that verifies with
a key its official held binds that official, and the tree's job is only to refuse what
no key-holder signed.  Events without signatures (administration, derived counterparts
such as ``FundAccount.AllocationReceived``) are covered by the tree and the checkpoints
only.

"As the log stood just before the event" is the application's own rule read in log order:
a key rotation or revocation recorded *between* a step's authorisation and its storage
(two writers racing) would make that step fail here; the alarm then asks a person to look.

Decoding uses the application's transcodings (``domain.application.DateAsISO`` and the
library's); a store configured with a compressor or a cipher is not supported here.

Rows of a signed manifest (a payment batch, a bank return, a roster import:
``domain.batch``) carry the manifest's signatures, which were verified once at the
manifest: each row is checked instead to be the next row of the manifest open before it,
with its signatures and shared fields, and the last row to give the signed Merkle root
(a row changed, dropped, added or moved fails).  A page that starts inside a batch reads
the manifest and the earlier rows back from the store (they are stored together, in order).

Why one file: the officials rebuilt in log order, the replay digests and the open
manifests are one pass over the log, used alike by the tree and by ``verify``.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    UUIDAsHex,
)
from sqlalchemy import Connection

from audit.findings import Finding
from audit.store import AuditStore, log_signed_steps, normalise_row, opened
from domain import batch as batches
from domain.application import STEPS, DateAsISO
from domain.merkle import hash_leaf, root_from_leaf_hashes
from domain.official import Official
from domain.signed import signed_content, step_name
from domain.signing import (
    canonical_json,
    content_digest,
    step_message,
    verify_signature,
)

OFFICIAL_TOPIC = f"{Official.__module__}:{Official.__qualname__}."
SIGNATURES = b'"signatures"'
CHUNK = 5000
Job = tuple[bytes, str, bytes, str]  # public key, base64 signature, message, why it fails


def event_mapper() -> Mapper:
    """A mapper with the application's transcodings (``Zhuisu.register_transcodings``)."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


@dataclass(frozen=True)
class BadSignature:
    """The first stored event whose signatures do not hold, and why."""

    position: int
    reason: str


# Manifest steps (domain.batch): their rows follow them in the log, each carrying the
# manifest's signatures and folding into its Merkle root.
MANIFESTS = {"FundAccount.BatchOrdered": ("batch_id", batches.PAYMENT_ROW,
                                          batches.payment_row_of),
             "FundAccount.ReturnsRecorded": ("return_id", batches.RETURN_ROW,
                                             batches.return_row_of),
             "Roster.Imported": ("import_id", batches.ROSTER_ROW, batches.roster_row_of)}
ROW_STEPS = {"FundAccount.Disbursed": "FundAccount.BatchOrdered",
             "FundAccount.PaymentReturned": "FundAccount.ReturnsRecorded",
             "Household.Applied": "Roster.Imported"}
# Fields every row shares with its manifest (a roster's households keep their own dates).
SHARED_FIELDS = {"FundAccount.BatchOrdered": ("effective_date", "document_no"),
                 "FundAccount.ReturnsRecorded": ("effective_date", "document_no"),
                 "Roster.Imported": ()}


@dataclass
class OpenManifest:
    """A signed manifest whose rows are being read: what they must match, and their
    leaves so far."""

    step: str
    count: int
    root: str
    signatures: list
    fields: dict[str, Any]
    leaves: list[bytes] = field(default_factory=list)


def _manifest_of(event: Any) -> tuple[str, OpenManifest] | None:
    step = step_name(event)
    if step not in MANIFESTS:
        return None
    id_field = MANIFESTS[step][0]
    return str(getattr(event, id_field)), OpenManifest(
        step, event.row_count, event.rows_root, list(event.signatures),
        {k: getattr(event, k, None) for k in SHARED_FIELDS[step]})


@dataclass
class Signers:
    """The officials as the log has made them so far, from their own events in log order."""

    officials: dict[uuid.UUID, Any] = field(default_factory=dict)
    broken: dict[uuid.UUID, str] = field(default_factory=dict)

    def apply(self, event: Any) -> None:
        oid = event.originator_id
        if oid in self.broken:
            return
        try:
            self.officials[oid] = event.mutate(self.officials.get(oid))
        except Exception as exc:  # a gap, a repeat or a bad value: the official is unusable
            self.officials.pop(oid, None)
            self.broken[oid] = (f"the events of official {oid} do not replay at version "
                                f"{event.originator_version} ({type(exc).__name__})")

    def knows(self, oid: uuid.UUID) -> bool:
        return oid in self.officials or oid in self.broken


class SignatureCheck:
    """Checks stored rows (``records.Record`` tuples) in log order; see the module docstring.

    ``prime`` first, when the rows do not start at the beginning of the log: it rebuilds,
    from the officials' events before the rows, every official the rows' signatures name.
    """

    def __init__(self) -> None:
        self.mapper = event_mapper()
        self.signers = Signers()
        self.decoded: dict[int, Any] = {}
        self.digests: list[tuple[int, bytes]] = []  # (position, content digest) per step
        self.seen: dict[bytes, int] = {}  # content digest → first position (in memory)
        self.checked = 0
        self.signatures = 0
        self.manifests: dict[str, OpenManifest] = {}  # manifest id → its open rows

    # decoding -------------------------------------------------------------------------
    def _decode(self, row: Sequence) -> Any:
        _, oid, version, topic, state = normalise_row(row)
        stored = StoredEvent(uuid.UUID(oid.decode("ascii")), version, topic.decode(), state)
        return self.mapper.to_domain_event(stored)

    @staticmethod
    def _kind(row: Sequence) -> str | None:
        """'signed', 'official' or None (neither: nothing to check or learn)."""
        topic, state = row[3], row[4]
        if not isinstance(topic, bytes) or not isinstance(state, bytes):
            _, _, _, topic, state = normalise_row(row)
        text = topic.decode("utf-8", "replace")
        if text.startswith(OFFICIAL_TOPIC):
            return "official"
        if text.rpartition(":")[2] in STEPS or SIGNATURES in state:
            return "signed"
        return None

    def prime(self, store: AuditStore, conn: Connection, rows: Sequence[Sequence],
              before: int) -> None:
        """Rebuild the officials the rows' signatures name from their events up to
        position ``before`` (inclusive), before the rows are checked."""
        wanted: set[uuid.UUID] = set()
        for row in rows:
            if self._kind(row) != "signed":
                continue
            try:
                event = self._decode(row)
            except Exception:
                continue  # reported by check()
            self.decoded[row[0]] = event
            for sig in getattr(event, "signatures", None) or []:
                try:
                    wanted.add(uuid.UUID(str(sig["official_id"])))
                except (TypeError, KeyError, ValueError, AttributeError):
                    continue
        self._prime_manifests(store, conn, rows, before)
        wanted = {w for w in wanted if not self.signers.knows(w)}
        if not wanted:
            return
        for row in store.events.of_aggregates(conn, sorted(wanted), before):
            try:
                self.signers.apply(self._decode(row))
            except Exception:
                oid = uuid.UUID(normalise_row(row)[1].decode("ascii"))
                self.signers.broken[oid] = (f"the event of official {oid} at notification id "
                                            f"{row[0]} cannot be decoded")

    def _prime_manifests(self, store: AuditStore, conn: Connection, rows: Sequence[Sequence],
                         before: int) -> None:
        """A batch whose first rows lie before ``before`` (a page boundary): its manifest
        (already a leaf, checked then) and those rows, read back from the store."""
        for row in rows:
            event = self.decoded.get(row[0])
            rowinfo = getattr(event, "batch", None) if event is not None else None
            if not isinstance(rowinfo, dict) or step_name(event) not in ROW_STEPS:
                continue
            index = rowinfo.get("row")
            manifest_id = next((rowinfo[k] for k in ("batch_id", "return_id", "import_id")
                                if k in rowinfo), None)
            if str(manifest_id) in self.manifests or not isinstance(index, int) or index < 1:
                continue
            # A manifest and its rows are stored in one transaction, the rows right after it.
            at = row[0] - index - 1
            if at > before or at < 1:
                continue  # the manifest is in this page, or missing: check() names it
            for old in store.events.between(conn, at - 1, before, limit=index + 1):
                try:
                    decoded = self._decode(old)
                except Exception:
                    break
                opened_ = _manifest_of(decoded)
                if opened_ is not None:
                    self.manifests[opened_[0]] = opened_[1]
                elif self._fold_row(decoded) is not None:
                    break

    # checking -------------------------------------------------------------------------
    def check(self, row: Sequence) -> str | None:
        """None if the row holds (or carries nothing to check), else why not."""
        found = self.pending(row)
        if found is None or isinstance(found, str):
            return found
        for public_key, signature, message, why in found:
            if not verify_signature(public_key, signature, message):
                return why
        return None

    def pending(self, row: Sequence) -> str | list[Job] | None:
        """Everything but the Ed25519 verification: None (nothing to check), why the row
        fails, or the signatures left to verify (``Job``: key, signature, message, why)."""
        kind = self._kind(row)
        if kind is None:
            return None
        position = row[0]
        try:
            event = self.decoded.pop(position, None) or self._decode(row)
        except Exception as exc:
            if kind == "official":
                return None  # learnt nothing; a signature naming this official will fail
            return f"it should carry signatures but cannot be decoded ({type(exc).__name__})"
        if kind == "official":
            if self.signers.knows(event.originator_id) or event.originator_version == 1:
                self.signers.apply(event)
            return None
        self.checked += 1
        return self._signatures(position, event)

    def _fold_row(self, event: Any) -> str | None:
        """A batch row: it must be the next row of its open manifest, carry the manifest's
        signatures, business date and document number; the last row closes the manifest,
        whose root the rows must give.  None if it holds, else why not."""
        step = step_name(event)
        manifest_step = ROW_STEPS.get(step)
        if manifest_step is None:
            return f"{step} cannot be a row of a batch"
        try:
            manifest_id, index, signed_row = MANIFESTS[manifest_step][2](vars(event))
        except (KeyError, TypeError, AttributeError):
            return f"its batch reference is malformed"
        key = str(manifest_id)
        opened_ = self.manifests.get(key)
        if opened_ is None or opened_.step != manifest_step:
            return (f"row {index} of batch {manifest_id}: no signed manifest of that batch is "
                    "open before it in the log (a row is recorded with its batch, once)")
        if index != len(opened_.leaves):
            return (f"row {index} of batch {manifest_id} out of place: row "
                    f"{len(opened_.leaves)} was due")
        if list(event.signatures) != opened_.signatures:
            return f"row {index} of batch {manifest_id} does not carry its manifest's signatures"
        for name, value in opened_.fields.items():
            if getattr(event, name, None) != value:
                return f"row {index} of batch {manifest_id}: its {name} is not the manifest's"
        tag = MANIFESTS[manifest_step][1]
        try:
            leaf = batches.row_leaf(tag, str(manifest_id), index, signed_row)
        except Exception as exc:
            return f"row {index} of batch {manifest_id} cannot be encoded ({type(exc).__name__})"
        opened_.leaves.append(hash_leaf(leaf))
        if len(opened_.leaves) == opened_.count:
            del self.manifests[key]
            if root_from_leaf_hashes(opened_.leaves).hex() != opened_.root:
                return (f"the {opened_.count} rows of batch {manifest_id} do not give the "
                        "Merkle root its officials signed: a row was changed, dropped or added")
        elif len(opened_.leaves) > opened_.count:
            return f"batch {manifest_id} has more rows than its manifest's {opened_.count}"
        return None

    def _signatures(self, position: int, event: Any) -> str | list[Job]:
        step = step_name(event)
        if getattr(event, "batch", None) is not None:
            return self._fold_row(event) or []
        if self.manifests:  # its rows come right after a manifest, none between
            open_id, opened_ = next(iter(self.manifests.items()))
            return (f"batch {open_id} is incomplete: {step} follows after "
                    f"{len(opened_.leaves)} of its {opened_.count} rows")
        sigs = getattr(event, "signatures", None)
        if not isinstance(sigs, list) or not sigs:
            return f"{step} is a signed step but carries no signatures"
        try:
            content = canonical_json(signed_content(event))
        except Exception as exc:
            return f"its content cannot be encoded ({type(exc).__name__})"
        digest = bytes.fromhex(content_digest(step, event.originator_id, content))
        first = self.seen.setdefault(digest, position)
        if first != position:
            return replayed(step, first)
        self.digests.append((position, digest))
        manifest = _manifest_of(event)
        if manifest is not None:
            if manifest[1].count == 0:
                if manifest[1].root != batches.EMPTY_ROOT_HEX:
                    return f"batch {manifest[0]} has no rows but its root is not the empty root"
            else:
                self.manifests[manifest[0]] = manifest[1]
        day, now = getattr(event, "effective_date", None), getattr(event, "timestamp", None)
        jobs: list[Job] = []
        for i, sig in enumerate(sigs):
            where = f"signature {i}"
            if not isinstance(sig, dict) or not all(
                    isinstance(sig.get(k), str) for k in ("official_id", "role", "key_id",
                                                          "signature")):
                return f"{where}: expected official_id, role, key_id and signature"
            try:
                oid = uuid.UUID(sig["official_id"])
            except ValueError:
                return f"{where}: official id {sig['official_id']!r} is not a UUID"
            if oid in self.signers.broken:
                return f"{where}: {self.signers.broken[oid]}"
            official = self.signers.officials.get(oid)
            if official is None:
                return f"{where}: official {oid} is not registered before it in the log"
            key = getattr(official, "keys", {}).get(sig["key_id"])
            if key is None:
                return f"{where}: official {official.code} has no key {sig['key_id']} before it"
            try:
                usable = key.usable(day, now)
            except TypeError:
                usable = False
            if not usable:
                return (f"{where}: key {sig['key_id']} of official {official.code} was not "
                        f"usable on {day} (recorded {now}): not yet valid, rotated or revoked")
            message = step_message(step, event.originator_id, content, sig["official_id"],
                                   sig["role"], sig["key_id"])
            self.signatures += 1
            jobs.append((key.public_key, sig["signature"], message,
                         f"{where}: the {sig['role']} signature of official {official.code} "
                         f"does not verify over the stored content of {step}"))
        return jobs

    def first_bad(self, rows: Iterable[Sequence]) -> BadSignature | None:
        for row in rows:
            reason = self.check(row)
            if reason is not None:
                return BadSignature(row[0], reason)
        return None


def replayed(step: str, first: int) -> str:
    return (f"it replays the {step} recorded at notification id {first} (same subject and "
            f"content, signatures and all): a signed step is recorded once")


def check_new_rows(store: AuditStore, conn: Connection, rows: Sequence[Sequence],
                   before: int) -> tuple[BadSignature | None, list[tuple[int, bytes]]]:
    """The first of ``rows`` (the records after position ``before``, in order) whose
    signatures do not hold or that replays a signed step the tree holds, or None; and the
    (position, digest) of each signed step before it (``tree_store.catch_up`` records
    them, ``verify`` checks the records not yet in the tree)."""
    check = SignatureCheck()
    check.prime(store, conn, rows, before)
    bad = check.first_bad(rows)
    digests = [d for d in check.digests if bad is None or d[0] < bad.position]
    column = log_signed_steps.c.digest
    for k in range(0, len(digests), 500):
        chunk = {d: p for p, d in digests[k:k + 500]}
        stored = conn.execute(log_signed_steps.select().where(column.in_(list(chunk)))).all()
        if stored:
            position, first = min((chunk[bytes(r.digest)], r.position) for r in stored)
            event = next(r for r in rows if r[0] == position)
            bad = BadSignature(position, replayed(bytes(event[3]).decode(
                "utf-8", "replace").rpartition(":")[2], first))
            digests = [d for d in digests if d[0] < position]
            break
    return bad, digests


@dataclass(frozen=True)
class SignatureReport:
    """What ``verify_signatures`` found: the first bad event, counts, time."""

    events: int
    signed_events: int
    signatures: int
    bad: int
    first: Finding | None
    seconds: float


def verify_signatures(source: Any, *, upto: int | None = None,
                      workers: int = 1) -> SignatureReport:
    """Re-check every stored signature from the start of the log (``zhuisu verify
    --signatures``); the first bad event by position, and how many are bad.

    The log is read and decoded in this process (the officials must be rebuilt in log
    order); with ``workers`` > 1 the Ed25519 verifications, most of the cost, are spread
    over that many forked processes.
    """
    began = time.perf_counter()
    check = SignatureCheck()
    events = 0
    bad: dict[int, str] = {}
    pool = (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
            if workers > 1 and "fork" in multiprocessing.get_all_start_methods() else None)
    futures: list[Future] = []
    with opened(source) as store, store.engine.connect() as conn:
        try:
            after, end = -(2**63), upto if upto is not None else 2**63 - 1
            while True:
                rows = store.events.between(conn, after, end, limit=CHUNK)
                if not rows:
                    break
                events += len(rows)
                jobs: list[tuple[int, Job]] = []
                for row in rows:
                    found = check.pending(row)
                    if isinstance(found, str):
                        bad.setdefault(row[0], found)
                    elif found:
                        jobs += [(row[0], job) for job in found]
                if pool is None:
                    bad.update((p, why) for p, why in _failed(jobs) if p not in bad)
                else:
                    step = max(1, -(-len(jobs) // workers))
                    futures += [pool.submit(_failed, jobs[k:k + step])
                                for k in range(0, len(jobs), step)]
                after = rows[-1][0]
            for future in futures:
                for p, why in future.result():
                    bad.setdefault(p, why)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        first = None
        if bad:
            position = min(bad)
            found_leaf = store.raw(conn, f"SELECT leaf_index FROM "
                                         f"{store.table_sql('merkle_leaves')} WHERE position = ?",
                                   (position,))
            index = found_leaf[0][0] if found_leaf else None
            where = f"leaf {index}" if index is not None else "not in the tree"
            first = Finding("signature", f"notification id {position} ({where}): "
                            f"{bad[position]}", leaf_index=index, position=position)
    return SignatureReport(events, check.checked, check.signatures, len(bad), first,
                           time.perf_counter() - began)


def _failed(jobs: list[tuple[int, Job]]) -> list[tuple[int, str]]:
    """(position, why) of each signature that does not verify (a worker's part)."""
    return [(p, why) for p, (public_key, signature, message, why) in jobs
            if not verify_signature(public_key, signature, message)]
