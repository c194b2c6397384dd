"""A threshold changed: recompute one rule's flags (optionally in one region), not the read
models, and record which thresholds the flags were computed with.

``recompute(url, rule_id, region=…)``:

1. runs the flags projection alone (``projections.flags.Flags`` with the current
   ``RuleSettings``) from position 0 into a scratch database beside the store (a schema
   on PostgreSQL, a file on SQLite), up to the live flags' position: only the events the
   flags handle are read, no other projection runs;
2. in one transaction of the live database, the flags' tracking row locked (so no batch
   moves the live flags meanwhile; the scratch is first brought to exactly that
   position): deletes the rule's flags (those of the region's subtree) and their
   ``flag_signers`` rows, inserts the scratch's flags of the rule (same region) and
   their signers, and — for a recompute of every region — replaces the state the rule's
   threshold shapes (``RULE_STATE``: idle funds' accounts and the clock's bound, the
   households' payments marked duplicate or split, the split groups), so the live flags
   continue from there exactly as a full rebuild with the new thresholds would;
3. records the rule's thresholds (``flag_thresholds``: rule, region, values, position,
   when) and, once every threshold that differs from those the flags were built with
   has been recomputed for every region, sets the flags' tracking version to the
   current one (so no full rebuild follows).

Readers see the old flags of the rule or the new ones, never a mixture.

At start-up (``check``, called by ``zhuisu flags recompute --check`` and the server's
start): if the flags' stored version is the current one, the thresholds are recorded as
the flags' baseline (row ``*``); if not, the thresholds that differ from the baseline
and the rules they affect are reported (a log warning).  Nothing is recomputed silently
by ``check``: the runner's blue/green rebuild (``projections.bluegreen``) rebuilds the
whole flags projection beside the live one at its next catch-up, unless an operator
recomputes the affected rules first, which is faster and switches nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import asdict
from typing import Any

import structlog
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    insert,
    or_,
    select,
    text,
    update,
)

from inspection.rules import RULES, RuleSettings
from projections import runner
from projections.flags import Flags
from projections.flags import tables as ft
from projections.tracking import ensure_schema, forget, lock_positions, tracking
from store.engines import engine_for, new_engine, writer
from store.schema import schema_lock

log = structlog.get_logger("zhuisu.flags")

# which thresholds each rule's flags depend on
RULE_THRESHOLDS: dict[str, tuple[str, ...]] = {
    "IDLE_FUNDS": ("idle_days",),
    "BACKDATED": ("backdate_days",),
    "SPLIT_PAYMENT": ("split_window_days", "approval_threshold_fen"),
    "RELAPSE_SOON": ("relapse_window_days",),
    "PAY_DUPLICATE": ("duplicate_period",),
    "PAY_ACCOUNT_CHANGED": ("account_change_days",),
}
# the projection's state a rule's threshold shapes (replaced with the flags, all regions)
RULE_STATE: dict[str, tuple[Table, ...]] = {
    "IDLE_FUNDS": (ft.accounts, ft.clock),
    "PAY_DUPLICATE": (ft.households,),
    "SPLIT_PAYMENT": (ft.households, ft.split_groups),
}
ALL_REGIONS = ""

thresholds_metadata = MetaData()
thresholds = Table(
    "flag_thresholds", thresholds_metadata,
    Column("rule_id", String(40), primary_key=True),  # '*': the flags' baseline
    Column("region", String(32), primary_key=True),  # '' every region
    Column("settings", JSON, nullable=False),  # the thresholds used
    Column("position", BigInteger, nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
)


def rules_of(setting: str) -> list[str]:
    return [r for r, names in RULE_THRESHOLDS.items() if setting in names]


def _ensure(conn: Connection) -> None:
    thresholds.create(conn, checkfirst=True)


def _stored(conn: Connection) -> tuple[int | None, int]:
    row = conn.execute(select(tracking.c.version, tracking.c.position)
                       .where(tracking.c.name == Flags.name)).first()
    return (row.version, row.position) if row is not None else (None, 0)


def check(engine: Engine, settings: RuleSettings | None = None) -> dict[str, Any]:
    """Compare the flags' thresholds with the current settings (see the module's text)."""
    settings = settings or RuleSettings.from_env()
    current = asdict(settings)
    wanted = Flags(settings).version
    with writer(engine).begin() as conn:
        schema_lock(conn, "zhuisu-flag-thresholds")
        _ensure(conn)
        version, position = _stored(conn)
        base = conn.execute(select(thresholds.c.settings).where(
            thresholds.c.rule_id == "*", thresholds.c.region == ALL_REGIONS)).scalar()
        if version == wanted:
            if base != current:
                _record(conn, "*", ALL_REGIONS, current, position)
            return {"status": "current", "settings": current}
    if version is None:
        return {"status": "not built", "settings": current}
    if base is None:
        log.warning("flags built with other thresholds or layout; no record of which: "
                    "the flags projection is rebuilt beside the live one")
        return {"status": "changed", "changed": None, "rules": None}
    changed = {k: {"was": base.get(k), "now": v} for k, v in current.items() if base.get(k) != v}
    rules = sorted({r for k in changed for r in rules_of(k)})
    log.warning("flag thresholds changed since the flags were computed",
                changed=changed, rules=rules,
                hint="zhuisu flags recompute --rule RULE (each), or let the projections "
                     "rebuild the flags beside the live ones")
    return {"status": "changed", "changed": changed, "rules": rules}


def check_at_start(app_or_url: Any) -> None:
    """``check`` for the server's start: a failure is logged, never a reason not to start."""
    try:
        source = runner.source_for(app_or_url)
        engine = engine_for(source.url)
        with engine.connect() as conn:
            built = engine.dialect.has_table(conn, "projection_tracking")
        if built:
            check(engine)
    except Exception:  # noqa: BLE001 - reported, the server starts all the same
        log.exception("flag thresholds: check failed")


def _record(conn: Connection, rule_id: str, region: str, values: dict, position: int) -> None:
    conn.execute(delete(thresholds).where(thresholds.c.rule_id == rule_id,
                                          thresholds.c.region == region))
    conn.execute(insert(thresholds).values(rule_id=rule_id, region=region, settings=values,
                                           position=position,
                                           computed_at=dt.datetime.now(dt.UTC)))


# the scratch database --------------------------------------------------------------------
def _scratch(engine: Engine) -> tuple[Engine, str]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            live = conn.execute(text("SELECT current_schema()")).scalar_one()
        schema = f"{live[:40]}__flag_scratch"
        with writer(engine).begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        return create_engine(engine.url, pool_size=1, max_overflow=1, connect_args={
            "connect_timeout": 5,
            "options": f"-cjit=off -csynchronous_commit=off -csearch_path={schema}"}), schema
    path = f"{engine.url.database}.flag-scratch-{os.getpid()}"
    _unlink(path)
    return new_engine(f"sqlite:///{path}", "read_models"), path


def _drop_scratch(engine: Engine, scratch: Engine, where: str) -> None:
    forget(scratch)
    scratch.dispose()
    if engine.dialect.name == "postgresql":
        with writer(engine).begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{where}" CASCADE')
    else:
        _unlink(where)


def _unlink(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass


def _in_region(region: str | None) -> Any:
    if not region:
        return None
    return or_(*[ft.flags.c[level] == region for level in ft.LEVELS])


# recompute -------------------------------------------------------------------------------
def recompute(app_or_url: Any, rule_id: str, *, region: str | None = None,
              settings: RuleSettings | None = None) -> dict[str, Any]:
    """Recompute ``rule_id``'s flags (in ``region``'s subtree) with ``settings`` (default:
    the environment's).  Returns counts, the position and the seconds taken."""
    if rule_id not in RULES:
        raise ValueError(f"no rule {rule_id!r}; one of {sorted(RULES)}")
    settings = settings or RuleSettings.from_env()
    started = time.perf_counter()
    source = runner.source_for(app_or_url)
    engine = engine_for(source.url)
    ensure_schema(engine, runner.by_name([Flags.name]))  # no catch-up: not a rebuild
    projection = Flags(settings)
    with writer(engine).begin() as conn:
        _ensure(conn)
        _, position = _stored(conn)
    scratch, where = _scratch(engine)
    try:
        runner.replay(source, [projection], scratch, until=position)
        scratch_seconds = time.perf_counter() - started
        with writer(engine).begin() as conn:
            held = lock_positions(conn, [Flags.name], wait=True)[Flags.name]
            if held != position:  # the live flags moved meanwhile: to exactly there
                runner.replay(source, [projection], scratch, until=held)
                position = held
            counts = _swap(conn, scratch, rule_id, region, settings, position)
    finally:
        _drop_scratch(engine, scratch, where)
    out = {"rule_id": rule_id, "region": region or None, "position": position,
           "settings": {k: asdict(settings)[k] for k in RULE_THRESHOLDS.get(rule_id, ())},
           **counts, "scratch_seconds": round(scratch_seconds, 2),
           "seconds": round(time.perf_counter() - started, 2)}
    log.info("flags recomputed", **{k: v for k, v in out.items() if k != "settings"})
    return out


def _swap(conn: Connection, scratch: Engine, rule_id: str, region: str | None,
          settings: RuleSettings, position: int) -> dict[str, Any]:
    f, s = ft.flags, ft.flag_signers
    where = [f.c.rule_id == rule_id]
    scope = _in_region(region)
    if scope is not None:
        where.append(scope)
    with scratch.connect() as sc:
        new_flags = [dict(r) for r in sc.execute(select(f).where(*where)).mappings()]
        ids = [r["flag_id"] for r in new_flags]
        new_signers = [dict(r) for r in sc.execute(select(s).where(s.c.flag_id.in_(
            select(f.c.flag_id).where(*where)))).mappings()]
        state = {}
        if not region:
            for table in RULE_STATE.get(rule_id, ()):
                state[table] = [dict(r) for r in sc.execute(select(table)).mappings()]
    old = select(f.c.flag_id).where(*where)
    removed = conn.execute(delete(s).where(s.c.flag_id.in_(old))).rowcount
    removed = conn.execute(delete(f).where(*where)).rowcount
    if new_flags:
        conn.execute(insert(f), new_flags)
    if new_signers:
        conn.execute(insert(s), new_signers)
    for table, rows in state.items():
        conn.execute(delete(table))
        if rows:
            conn.execute(insert(table), rows)
    values = {k: asdict(settings)[k] for k in RULE_THRESHOLDS.get(rule_id, ())}
    _record(conn, rule_id, region or ALL_REGIONS, values, position)
    switched = False
    if not region:
        switched = _settle(conn, settings, rule_id, values, position)
    return {"removed": removed, "flags": len(ids), "switched_version": switched}


def _settle(conn: Connection, settings: RuleSettings, rule_id: str, values: dict,
            position: int) -> bool:
    """The rule's thresholds join the baseline; when the baseline is then the current
    settings, the flags' tracking version becomes the current one."""
    base = conn.execute(select(thresholds.c.settings).where(
        thresholds.c.rule_id == "*", thresholds.c.region == ALL_REGIONS)).scalar()
    if base is None:
        return False
    base = {**base, **values}
    conn.execute(update(thresholds).where(thresholds.c.rule_id == "*",
                                          thresholds.c.region == ALL_REGIONS)
                 .values(settings=base))
    if json.dumps(base, sort_keys=True) != json.dumps(asdict(settings), sort_keys=True):
        return False
    conn.execute(update(tracking).where(tracking.c.name == Flags.name)
                 .values(version=Flags(settings).version))
    return True
