"""The comparison projection's tables (``projections.compare``): the matches, and what the
models look back at.

``cmp_matches`` holds one row per match (``{model_id}:{subject}``: the subject names what
was found — a payment and a person, a household and a person — never the snapshot, so a
newer snapshot finding the same thing is the same match, which keeps pointing at the
snapshot and row that first showed it).  ``cmp_snapshots`` every imported snapshot and
whether it is its register's current one (``cmp_current``, by department and kind);
``cmp_households`` and ``cmp_members`` the households as the models need them (members
by ID hash, identification signers, register status, causes, the payments received).
A change to any of them is a change of ``Comparison.LAYOUT``.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Date, Index, String, Table, Text

from projections.flags.tables import LEVELS
from projections.tracking import metadata

matches = Table(
    "cmp_matches", metadata,
    Column("match_id", Text, primary_key=True),
    Column("model_id", String(40), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("register_kind", String(24)),
    Column("snapshot_id", String(36)),  # None: a model of the log alone
    Column("row_no", BigInteger),
    Column("household_id", String(36), nullable=False),
    Column("id_hash", String(64)),
    Column("region_code", String(32)),
    Column("region_path", JSON, nullable=False),
    *[Column(level, String(32)) for level in LEVELS],
    Column("effective_date", Date),
    Column("log_position", BigInteger, nullable=False),  # of the event that made it
    Column("evidence", JSON, nullable=False),
    Column("signers", JSON, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("explanation_zh", Text, nullable=False),
    Column("explanation_en", Text, nullable=False),
)
Index("cmp_matches_household", matches.c.household_id, info={"handlers_need": True})
Index("cmp_matches_model", matches.c.model_id, matches.c.match_id)
Index("cmp_matches_snapshot", matches.c.snapshot_id)
for _level in LEVELS:
    Index(f"cmp_matches_{_level}", matches.c[_level])

snapshots = Table(
    "cmp_snapshots", metadata,
    Column("snapshot_id", String(36), primary_key=True),
    Column("department", Text, nullable=False),
    Column("kind", String(24), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("filename", Text, nullable=False),
    Column("rows_read", BigInteger, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("rows_root", String(64), nullable=False),
    Column("imported_by", Text, nullable=False),
    Column("log_position", BigInteger, nullable=False),
    Column("superseded_by", String(36)),  # None: current (or never current)
)

current = Table(
    "cmp_current", metadata,
    Column("department", Text, primary_key=True),
    Column("kind", String(24), primary_key=True),
    Column("snapshot_id", String(36), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("log_position", BigInteger, nullable=False),
)

households = Table(
    "cmp_households", metadata,
    Column("household_id", String(36), primary_key=True),
    Column("code", Text),  # None until its application is seen
    Column("region_path", JSON),
    Column("applied_on", Date),
    Column("applied_position", BigInteger),
    Column("registered_on", Date),  # first county approval; None: not (yet) registered
    Column("registered_position", BigInteger),
    Column("causes", JSON, nullable=False),
    Column("disabled_cause", Boolean, nullable=False),
    Column("members", JSON, nullable=False),  # [[id hash, name], …]
    Column("id_signers", JSON, nullable=False),  # [official id, …] (identification)
    Column("id_positions", JSON, nullable=False),  # log positions of identification steps
    Column("payments", JSON, nullable=False),  # [{movement_id, account_id, paid_on, …}]
)
Index("cmp_households_disabled", households.c.disabled_cause, info={"handlers_need": True})

members = Table(
    "cmp_members", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("household_id", String(36), primary_key=True),
    Column("name", Text, nullable=False),
)
