"""Every stored snapshot held against a replay of its aggregate from the verified log.

Snapshots (``domain.application``: ``FundAccount`` every 200 events) live outside the
log, in the application's snapshot table, so neither the Merkle tree nor the checkpoints
cover them.  The application serves only snapshots whose seal (an HMAC keyed from the ID
pepper) verifies; this check needs no key at all: for each snapshotted aggregate it
replays the aggregate's events from version 1 — the very records checks A and B of
``audit.verify`` hold to the tree — and at each snapshot's version compares the
snapshot's state with the replayed one, both as the JSON values the application's
transcoder writes (so key order does not matter).
A snapshot that differs, cannot be decoded, or stands at a version the log does not reach
is a finding of kind ``snapshot`` naming the aggregate id and the version.  A snapshot
that matches but carries no seal (one taken before seals) is harmless: it is never
served.

Cost: one replay of each snapshotted aggregate up to its last snapshot, decoding each of
its events once (``bench/verify.py`` reports it).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic
from sqlalchemy import Connection, inspect

from audit.findings import Finding
from audit.signatures import event_mapper
from audit.store import AuditStore
from domain.application import Zhuisu, unseal


@dataclass(frozen=True)
class SnapshotReport:
    snapshots: int
    aggregates: int
    events_replayed: int
    findings: tuple[Finding, ...]
    seconds: float


def _has_table(store: AuditStore, conn: Connection) -> bool:
    if store.dialect == "sqlite":
        return inspect(conn).has_table("stored_snapshots")
    return inspect(conn).has_table(f"{Zhuisu.name.lower()}_snapshots",
                                   schema=store.schema or "public")


def verify_snapshots(store: AuditStore, conn: Connection) -> SnapshotReport:
    """Replay each snapshotted aggregate and compare every snapshot of it (docstring)."""
    began = time.perf_counter()
    if not _has_table(store, conn):
        return SnapshotReport(0, 0, 0, (), 0.0)
    table = store.snapshots_table
    keys = store.raw(conn, f"SELECT originator_id, originator_version FROM {table} "
                           f"ORDER BY originator_id, originator_version")
    versions: dict[uuid.UUID, list[int]] = {}
    for oid, version in keys:
        versions.setdefault(uuid.UUID(str(oid)), []).append(int(version))
    mapper = event_mapper()
    findings: list[Finding] = []
    replayed = 0
    select = (f"SELECT originator_version, topic, state FROM {table} WHERE originator_id = ? "
              f"ORDER BY originator_version")
    for oid, wanted in versions.items():
        param = oid.hex if store.dialect == "sqlite" else oid
        snapshots = {int(v): (t, bytes(s)) for v, t, s in store.raw(conn, select, (param,))}
        aggregate, broken = None, False
        rows = store.events.of_aggregates(conn, [oid], 2**63 - 1)
        rows = sorted((r for r in rows if r[2] <= wanted[-1]), key=lambda r: r[2])
        for row in rows:
            try:
                event = mapper.to_domain_event(StoredEvent(
                    oid, row[2], bytes(row[3]).decode(), bytes(row[4])))
                aggregate = event.mutate(aggregate)
            except Exception as exc:
                findings.append(Finding("snapshot", f"snapshots of aggregate {oid}: its events "
                                        f"do not replay at version {row[2]} "
                                        f"({type(exc).__name__}), so its snapshots cannot be "
                                        f"checked", position=row[0]))
                broken = True
                break
            replayed += 1
            if row[2] in snapshots:
                finding = _compare(mapper, oid, row[2], *snapshots.pop(row[2]), aggregate)
                if finding is not None:
                    findings.append(finding)
        for version in [] if broken else sorted(snapshots):
            findings.append(Finding("snapshot", f"snapshot of aggregate {oid} at version "
                                    f"{version}: expected a version the log reaches, got one "
                                    f"beyond its last event"))
    return SnapshotReport(len(keys), len(versions), replayed, tuple(findings),
                          time.perf_counter() - began)


def _compare(mapper: Any, oid: uuid.UUID, version: int, topic: str, state: bytes,
             aggregate: object) -> Finding | None:
    where = f"snapshot of aggregate {oid} at version {version}"
    _, inner = unseal(state)
    try:  # the stored JSON as plain values: no domain objects to build, only to compare
        stored = json.loads(inner)
        got_topic, got_state = stored["topic"], stored["state"]
        expected = getattr(resolve_topic(topic), "take", Snapshot.take)(aggregate)
        want_state = json.loads(mapper.transcoder.encode(expected.state))
    except Exception as exc:
        return Finding("snapshot", f"{where}: cannot be decoded ({type(exc).__name__}); it "
                       f"is never served")
    if not isinstance(got_state, dict):
        return Finding("snapshot", f"{where}: its state is not an object; it is never served")
    if got_topic != expected.topic or got_state != want_state:
        fields = sorted(k for k in set(got_state) | set(want_state)
                        if got_state.get(k) != want_state.get(k))
        return Finding("snapshot", f"{where}: differs from the aggregate replayed from the "
                       f"log (fields {', '.join(fields) or 'topic'}); it is never served, "
                       f"but the snapshot table was edited", fields=tuple(fields))
    return None
