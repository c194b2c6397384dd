"""Which aggregates bear on a replay (时间回溯的范围): an index of aggregates by region,
by household, by account, kept as a read model with its tracking position.

A replay of one village, one household or one account as of a past point needs the
events of only a few aggregates, because the read models it shows are kept aggregate by
aggregate: a row of ``register_households`` is made by its household's own events, a row
of ``balance_accounts`` (and its flows and movements) by its account's own events (an
allocation is an event on each of the two accounts; a reversal or recovery refers to a
movement of the same account), a region's row by its ``Region.Created``, a helper's name
by its official's ``Official.Registered``.  So:

- a village: its region, its households, the officials assigned as their helpers (帮扶责
  任人, named in the view), and the accounts held at the village and at its township
  (村账乡代管) with the township's region;
- a household: its own events and its helpers';
- an account: its own events.

``replay_scope`` holds one row per (scope, aggregate): ``scope`` is a region code
(the region itself, the households that applied in a village, the accounts opened there,
the helpers assigned to the village's households) or a household id (its helpers), with
the log position of the event that put the aggregate there.  ``replay_regions`` holds each
region's parent (a village's township), ``replay_households`` each household's village
(for the helper rows).  Rows are only ever added, each by one event, so the rows at a
tracking position are exactly those of the events up to it; a row added after a replayed
position names an aggregate whose events up to that position change nothing the answer
shows (filtered out by ``position`` anyway).

``scope_ids`` answers the ids of a scope as of a log position, reading this index only.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, Column, Connection, String, Table, select

from projections.events import Event
from projections.projection import KEYS_PER_QUERY, Projection, Rows, handles
from projections.tracking import metadata

scope = Table(
    "replay_scope", metadata,
    Column("scope", String(64), primary_key=True),  # a region code or a household id
    Column("aggregate_id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),  # region, household, account, helper
    Column("position", BigInteger, nullable=False),  # the event that put it there
)

regions = Table(
    "replay_regions", metadata,
    Column("code", String(64), primary_key=True),
    Column("parent_code", String(64)),
    Column("position", BigInteger, nullable=False),
)

households = Table(
    "replay_households", metadata,
    Column("household_id", String(36), primary_key=True),
    Column("village_code", String(64), nullable=False),
)


def _uuid(value: object) -> str | None:
    """The canonical form of an id given in an event, None when it is no UUID (then no
    aggregate has it, and nothing replayed can depend on it)."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


class ReplayIndex(Projection):
    name = "replay_index"
    version = 1
    tables = (scope, regions, households)

    def prefetch(self, events: list[Event], rows: Rows) -> None:
        helped = [e for e in events if e.step == "Household.HelperAssigned"]
        if not helped:
            return
        rows.load(households, {(e.originator_id,) for e in helped})
        keys = set()
        for e in helped:
            official = _uuid(e.get("official_id"))
            found = rows.get(households, e.originator_id)
            keys.add((e.originator_id, official))
            if found is not None:
                keys.add((found["village_code"], official))
        rows.load(scope, {k for k in keys if k[1] is not None})

    def _add(self, rows: Rows, where: str, aggregate_id: str, kind: str, position: int) -> None:
        if rows.get(scope, where, aggregate_id) is None:
            rows.insert(scope, {"scope": where, "aggregate_id": aggregate_id, "kind": kind,
                                "position": position})

    @handles("Region.Created")
    def region_created(self, e: Event, rows: Rows) -> None:
        if rows.get(regions, e["code"]) is None:
            rows.insert(regions, {"code": e["code"], "parent_code": e.get("parent_code"),
                                  "position": e.position})
        self._add(rows, e["code"], e.originator_id, "region", e.position)

    @handles("Household.Applied")
    def applied(self, e: Event, rows: Rows) -> None:
        village = e["village_code"]
        if rows.get(households, e.originator_id) is None:
            rows.insert(households, {"household_id": e.originator_id, "village_code": village})
        self._add(rows, village, e.originator_id, "household", e.position)

    @handles("FundAccount.Opened")
    def opened(self, e: Event, rows: Rows) -> None:
        self._add(rows, e["region_code"], e.originator_id, "account", e.position)

    @handles("Household.HelperAssigned")
    def helper_assigned(self, e: Event, rows: Rows) -> None:
        official = _uuid(e.get("official_id"))
        if official is None:
            return
        self._add(rows, e.originator_id, official, "helper", e.position)
        found = rows.get(households, e.originator_id)
        if found is not None:
            self._add(rows, found["village_code"], official, "helper", e.position)


# what a replay reads -------------------------------------------------------------------------
def _in_scopes(conn: Connection, wheres: list[str], upto: int) -> list[str]:
    out: list[str] = []
    for i in range(0, len(wheres), KEYS_PER_QUERY):
        chunk = wheres[i:i + KEYS_PER_QUERY]
        out += conn.execute(select(scope.c.aggregate_id).where(
            scope.c.scope.in_(chunk), scope.c.position <= upto)).scalars().all()
    return out


def village_ids(conn: Connection, village_code: str, upto: int) -> list[str]:
    """Every aggregate a village's replay to ``upto`` reads: its region, households and
    their helpers, the accounts at the village and at its township, the township."""
    parent = conn.execute(select(regions.c.parent_code).where(
        regions.c.code == village_code, regions.c.position <= upto)).scalar()
    wheres = [village_code] + ([parent] if parent else [])
    return sorted(set(_in_scopes(conn, wheres, upto)))


def household_ids(conn: Connection, household_id: str, upto: int) -> list[str]:
    """A household and the officials ever assigned as its helpers by ``upto``."""
    return sorted({household_id, *_in_scopes(conn, [household_id], upto)})


def account_ids(conn: Connection, account_id: str, upto: int) -> list[str]:
    """An account's balances are made by its own events only."""
    return [account_id]
