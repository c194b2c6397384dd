"""The access log (who looked at which household) and the token changes are hash chains
whose heads every checkpoint signs: an insider who drops the append-only triggers and
edits, deletes or re-chains rows with raw SQL is found by ``zhuisu verify``, which names
the first bad row."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from access import chain
from access.reads import AccessLog, Read
from access.roles import ApiRole, Principal
from access.tables import access_log, open_engine
from access.tokens import Tokens, token_hash
from audit import log
from audit.chains import committed_heads, heads_in_text
from audit.store import AuditConfig, AuditStore
from cli import app as cli
from domain.application import Zhuisu

pytestmark = pytest.mark.usefixtures("restore_logging")  # the CLI configures logging

NOW = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)
INSPECTOR = Principal("t-inspector", "县纪委 王检查", ApiRole.INSPECTOR, "522625", "county")
VILLAGE = {"province": "52", "city": "5226", "county": "522625", "township": "522625100",
           "village": "522625100001"}


@pytest.fixture
def env(app: Zhuisu, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"ZHUISU_DATABASE_URL": app.database_url,
              "ZHUISU_ID_PEPPER_FILE": str(app.pepper_file),
              "ZHUISU_LOG_KEY_FILE": str(tmp_path / "log-key")}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture
def engine(app: Zhuisu):
    engine = open_engine(app.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def audit(app: Zhuisu, env: dict[str, str]):
    store = AuditStore(AuditConfig(app.database_url, Path(env["ZHUISU_LOG_KEY_FILE"])))
    yield store
    store.close()


def reads(engine: Engine, n: int, first: int = 0) -> None:
    access = AccessLog(engine)
    for i in range(first, first + n):
        access.record(INSPECTOR, [Read("household", f"h-{i}", VILLAGE)], method="GET",
                      route="/households/{household_id}", request_id=f"r-{i}",
                      now=NOW + dt.timedelta(seconds=i))


def sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def drop_triggers(engine: Engine) -> None:
    """What an insider with the database's owner rights does first."""
    for table in ("api_access_log", "api_token_changes"):
        if engine.dialect.name == "sqlite":
            sql(engine, f"DROP TRIGGER {table}_no_update")
            sql(engine, f"DROP TRIGGER {table}_no_delete")
        else:
            sql(engine, f"DROP TRIGGER {table}_append_only ON {table}")


def verify(engine: Engine, audit: AuditStore | None = None) -> list[chain.ChainReport]:
    return chain.verify_chains(engine, committed_heads(audit)[0] if audit else ())


def test_chains_verify_and_every_checkpoint_signs_their_heads(engine: Engine,
                                                              audit: AuditStore) -> None:
    tokens = Tokens(engine)
    _, record = tokens.create(name="县纪委 王检查", role=ApiRole.INSPECTOR, region=None,
                              created_by="test", now=NOW)
    tokens.revoke(record.id, NOW, by="cli:ops")
    reads(engine, 5)
    access_log, token_changes = verify(engine)
    assert access_log.ok and token_changes.ok, (access_log.findings, token_changes.findings)
    assert (access_log.rows, token_changes.rows) == (5, 2)

    note = log.make_checkpoint(audit).note
    signed = heads_in_text(note)
    assert signed == {"access_log": (5, access_log.head), "token_changes": (2,
                                                                            token_changes.head)}
    reads(engine, 2, first=5)
    log.make_checkpoint(audit)
    reports = verify(engine, audit)
    assert all(r.ok for r in reports) and reports[0].commitments == 2


def test_an_edited_row_is_named(engine: Engine, audit: AuditStore, env: dict[str, str]) -> None:
    reads(engine, 6)
    log.make_checkpoint(audit)
    drop_triggers(engine)
    sql(engine, "UPDATE api_access_log SET actor = '别人' WHERE id = 3")

    report = verify(engine, audit)[0]
    assert report.first_bad_row == 3
    assert "row 3 was changed" in report.findings[0]

    result = CliRunner().invoke(cli, ["verify"])
    assert result.exit_code == 3
    assert "access_log: row 3 was changed" in result.stdout
    assert "first bad row of access_log: 3" in result.stdout


def test_a_deleted_row_is_named_by_the_gap(engine: Engine) -> None:
    reads(engine, 6)
    drop_triggers(engine)
    sql(engine, "DELETE FROM api_access_log WHERE id = 4")
    report = verify(engine)[0]
    assert report.first_bad_row == 5
    assert "rows 4..4 are missing" in report.findings[0]


def test_deleting_the_last_rows_contradicts_the_heads(engine: Engine, audit: AuditStore) -> None:
    reads(engine, 6)
    log.make_checkpoint(audit)
    drop_triggers(engine)
    sql(engine, "DELETE FROM api_access_log WHERE id >= 5")
    report = verify(engine, audit)[0]
    assert not report.ok
    assert "the last rows were deleted" in report.findings[0]
    assert any("checkpoint" in f and "signed 6 rows" in f for f in report.findings)


def test_a_chain_rewritten_in_full_contradicts_a_signed_head(engine: Engine,
                                                             audit: AuditStore) -> None:
    """The insider deletes a row and re-chains everything after it, heads table included:
    every link holds, but not the head a checkpoint signed."""
    reads(engine, 6)
    log.make_checkpoint(audit)
    drop_triggers(engine)
    sql(engine, "DELETE FROM api_access_log WHERE id = 2")
    with engine.begin() as conn:
        head = chain.GENESIS
        rows = conn.execute(select(access_log).order_by(access_log.c.id)).mappings().all()
        for row in rows:
            head = chain.link(head, "access_log", row)
            conn.execute(text("UPDATE api_access_log SET chain_hash = :h WHERE id = :i"),
                         {"h": head, "i": row["id"]})
        conn.execute(text("UPDATE chain_heads SET row_count = :n, head = :h "
                          "WHERE chain = 'access_log'"), {"n": len(rows), "h": head})
    assert verify(engine)[0].ok  # without the signed heads, nothing shows
    report = verify(engine, audit)[0]
    assert not report.ok
    assert "checkpoint" in report.findings[0] and "signed 6 rows" in report.findings[0]


def test_a_token_slipped_into_the_table_or_unrevoked_is_found(engine: Engine) -> None:
    tokens = Tokens(engine)
    _, revoked = tokens.create(name="old", role=ApiRole.REVIEWER, region=None,
                               created_by="test", now=NOW)
    tokens.revoke(revoked.id, NOW, by="test")
    assert verify(engine)[1].ok
    sql(engine, "INSERT INTO api_tokens (id, name, token_hash, role, created_at, created_by) "
                "VALUES ('backdoor', 'x', :h, 'admin', :at, 'test')",
        h=token_hash("zs_known"), at=NOW)
    sql(engine, "UPDATE api_tokens SET revoked_at = NULL WHERE id = :i", i=revoked.id)
    findings = verify(engine)[1].findings
    assert any("token backdoor (admin) has no recorded creation" in f for f in findings)
    assert any(f"token {revoked.id}: revoked_at differ" in f for f in findings)


def test_an_edited_token_change_is_named(engine: Engine) -> None:
    tokens = Tokens(engine)
    for name in ("a", "b", "c"):
        tokens.create(name=name, role=ApiRole.REVIEWER, region=None, created_by="t", now=NOW)
    drop_triggers(engine)
    sql(engine, "UPDATE api_token_changes SET role = 'admin' WHERE id = 2")
    report = verify(engine)[1]
    assert report.first_bad_row == 2


def test_concurrent_appends_make_one_chain(engine: Engine) -> None:
    access = AccessLog(engine)

    def reader(k: int) -> None:
        for i in range(15):
            access.record(INSPECTOR, [Read("household", f"h-{k}-{i}", VILLAGE)] * 2,
                          method="GET", route="/households", request_id=None, now=NOW)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify(engine)[0]
    assert report.ok, report.findings
    assert report.rows == 6 * 15 * 2


def test_an_older_store_is_brought_into_the_chains(app: Zhuisu) -> None:
    """Rows and tokens made before the chains existed: kept, reported as unchained, and
    everything after them chained."""
    engine = open_engine(app.database_url)
    try:
        drop_triggers(engine)
        sql(engine, "DROP TABLE chain_heads")
        sql(engine, "DROP TABLE api_token_changes")
        sql(engine, "DROP TABLE api_access_log")
        serial, at = (("INTEGER", "TIMESTAMP") if engine.dialect.name == "sqlite"
                      else ("BIGSERIAL", "TIMESTAMP WITH TIME ZONE"))
        sql(engine, f"CREATE TABLE api_access_log (id {serial} PRIMARY KEY, at {at}, "
                    "token_id VARCHAR(32), actor VARCHAR(200), role VARCHAR(32), "
                    "method VARCHAR(8), route VARCHAR(200), subject_kind VARCHAR(32), "
                    "subject_id VARCHAR(64), subject_region VARCHAR(400), "
                    "request_id VARCHAR(128))")
        sql(engine, "INSERT INTO api_access_log (at, token_id, actor, role, method, route, "
                    "subject_kind, subject_id, subject_region) VALUES (:at, 't', 'a', "
                    "'inspector', 'GET', '/h', 'household', 'h1', '/52/')", at=NOW)
        sql(engine, "INSERT INTO api_tokens (id, name, token_hash, role, created_at, "
                    "created_by, revoked_at) VALUES ('old', 'x', :h, 'reviewer', :at, 'test', "
                    ":at)", h=token_hash("zs_old"), at=NOW)
    finally:
        engine.dispose()
    engine = open_engine(app.database_url)  # the upgrade: a column, the heads
    try:
        Tokens(engine)  # the existing token adopted into the token changes
        reads(engine, 2)
        access_log, token_changes = verify(engine)
        assert access_log.ok and token_changes.ok, (access_log.findings, token_changes.findings)
        assert (access_log.before_chain, access_log.rows) == (1, 2)
        assert token_changes.rows == 2  # adopted, and its revocation
    finally:
        engine.dispose()
