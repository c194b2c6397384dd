"""A checkpoint kept outside the store catches what the store's own checkpoints cannot:
a rewrite where the events, the tree, the stored checkpoints and their seals were all
recomputed by someone with full database access (``zhuisu verify --checkpoint FILE``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import log, tree_store
from audit.store import AuditConfig, AuditStore
from audit.verify import verify_log, verify_log_against
from domain.application import Zhuisu
from tests.test_audit_tamper import RawEvents, regions


@pytest.fixture
def audit(app: Zhuisu, tmp_path: Path):
    store = AuditStore(AuditConfig(app.database_url, tmp_path / "log-key", "zhuisu.test/log"))
    regions(app, 0, 12)  # 13 events
    yield store
    store.close()


def test_a_clean_store_verifies_against_the_kept_checkpoint(audit: AuditStore, app) -> None:
    kept = log.make_checkpoint(audit).note
    regions(app, 12, 4)
    log.make_checkpoint(audit)
    result = verify_log_against(audit, kept)
    assert result.ok, result.message


def test_a_full_rewrite_with_every_stored_checkpoint_redone_is_caught_by_the_kept_one(
        audit: AuditStore) -> None:
    kept = log.make_checkpoint(audit).note
    raw = RawEvents(audit)
    raw.run("UPDATE {t} SET state = ? WHERE {pos} = ?", bytes(raw.row(5)[3]) + b" ", 5)
    tree_store.rebuild(audit)
    with audit.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {audit.table_sql('log_checkpoint_leaves')}")
        conn.exec_driver_sql(f"DELETE FROM {audit.table_sql('log_checkpoints')}")
    log.make_checkpoint(audit)  # the insider signs the rewritten history afresh
    assert verify_log(audit).ok, "the store alone can no longer tell"

    result = verify_log_against(audit, kept)
    assert not result.ok
    assert result.kind == "rewritten"
    assert "before leaf 13" in result.message


def test_a_log_shorter_than_the_kept_checkpoint_is_truncated(audit: AuditStore) -> None:
    kept = log.make_checkpoint(audit).note
    raw = RawEvents(audit)
    raw.run("DELETE FROM {t} WHERE {pos} > ?", 10)
    tree_store.rebuild(audit)
    with audit.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {audit.table_sql('log_checkpoint_leaves')}")
        conn.exec_driver_sql(f"DELETE FROM {audit.table_sql('log_checkpoints')}")
    result = verify_log_against(audit, kept)
    assert (result.kind, result.first.leaf_index) == ("truncated", 10)


def test_a_kept_checkpoint_with_a_forged_signature_is_reported(audit: AuditStore) -> None:
    note = log.make_checkpoint(audit).note
    body, _, sig = note.rpartition("— ")
    forged = body + "— " + sig[:-6] + ("A" if sig[-6] != "A" else "B") + sig[-5:]
    result = verify_log_against(audit, forged)
    assert result.kind == "checkpoint"
