"""Past one machine with PostgreSQL's own engines (docs/SCALE.md): the application on an
event log that is a partitioned table (``docker/partition-events.sql``: HASH on
``originator_id``, so the primary key that optimistic concurrency rests on stays whole).

Commands are stored through it (the events land in every partition), a write on a stale
version is still refused, and the read models caught up incrementally from the
partitioned log equal the same log replayed into an ordinary schema.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError

from factories import TOWNSHIP, a_funded_account, a_registered_household, household_payment, run
from conftest import Store
from domain.fund_account import FundAccount
from factories import a_county_world
from projections import runner
from projections.tracking import dump
from store.engines import engine_for

pytestmark = pytest.mark.usefixtures("close_read_models")
PARTS = 4
T = str(FundAccount.create_id(TOWNSHIP, "central"))
TABLES = [t for p in runner.PROJECTIONS for t in p.tables]


CONVERT = Path(__file__).resolve().parent.parent / "docker" / "partition-events.sql"


def partitioned(store: Store) -> tuple[str, Path]:
    """A fresh store whose event table was made by the event store, then converted to a
    hash-partitioned one by ``docker/partition-events.sql`` (as psql would run it)."""
    first = store.new_app()  # the event store's own tables, types and functions
    url, pepper = first.database_url, first.pepper_file
    first.close()
    schema = url.rsplit("schema=", 1)[1]
    sql = CONVERT.read_text().replace(":\"schema\"", f'"{schema}"').replace(":parts", str(PARTS))
    sql = sql.replace("\\gexec", ";")  # psql runs the rows the SELECT makes
    admin = store.server.admin
    with admin.transaction():
        for statement in [s for s in _statements(sql)
                          if s.strip() and s.strip().upper() not in ("BEGIN", "COMMIT")]:
            if statement.lstrip().upper().startswith("SELECT FORMAT"):
                for (made,) in admin.execute(statement).fetchall():
                    admin.execute(made)
            else:
                admin.execute(statement)
    return url, pepper


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).split(";")


def app_without_ddl(store: Store, url: str, pepper: Path):
    """The application on ``url`` with the event store's CREATE_TABLE off: it must not try
    to make its unique index on notification_id (impossible on a partitioned table)."""
    from store.settings import Settings
    from domain.application import Zhuisu
    from store.settings import utc_now

    settings = Settings(database_url=url, id_pepper_file=pepper)
    app = Zhuisu({**settings.eventsourcing_env(), "CREATE_TABLE": "false"}, clock=utc_now)
    app.database_url, app.pepper_file = url, pepper
    store._apps.append(app)
    return app


def test_the_application_runs_on_a_partitioned_event_log(store):
    if store.kind != "postgres":
        pytest.skip("declarative partitioning is PostgreSQL's")
    url, pepper = partitioned(store)
    app = app_without_ddl(store, url, pepper)
    world = a_county_world(app)
    a_funded_account(world, TOWNSHIP, 10_000_000)
    for i in range(6):
        hid = a_registered_household(world, f"H{i}")
        run(world, "FundAccount.Disbursed", T, household_payment(hid, 10_000 + i))
    runner.catch_up(app)

    schema = url.rsplit("schema=", 1)[1]
    admin = store.server.admin
    spread = dict(admin.execute(
        f'SELECT tableoid::regclass::text, count(*) FROM "{schema}".zhuisu_events '
        "GROUP BY 1").fetchall())
    assert len(spread) == PARTS and sum(spread.values()) == app.recorder.max_notification_id()
    kind = admin.execute("SELECT relkind FROM pg_class c JOIN pg_namespace n ON "
                         "n.oid = c.relnamespace WHERE n.nspname = %s AND "
                         "c.relname = 'zhuisu_events'", (schema,)).fetchone()[0]
    assert kind == "p"  # the event store adopted the partitioned table

    last = app.recorder.select_notifications(1, 1)[0]  # an event stored again: refused
    stale = app.recorder.select_events(last.originator_id, lte=last.originator_version)[-1]
    with pytest.raises(IntegrityError):
        app.recorder.insert_events([stale])

    elsewhere = store.new_database_url()  # an ordinary schema: the same log replayed
    runner.catch_up(app, engine=engine_for(elsewhere))
    with engine_for(url).connect() as a, engine_for(elsewhere).connect() as b:
        assert dump(a, TABLES) == dump(b, TABLES)
