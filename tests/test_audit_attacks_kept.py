"""Issue 12, items 6 and 7: kept checkpoints locate a rewrite as precisely as they allow,
and a truncation found through one names the first missing leaf and the last intact id.

The store holds 25 events; checkpoints were kept outside it at 5, 10, 15, 20 and 25
leaves.  Then someone with full database access changes event 13 (leaf 12) or cuts the
log after event 10, rebuilds the tree and drops the stored checkpoints (and, in most
tests, their sealed leaf hashes).  Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from audit import log, tree_store
from audit.store import AuditConfig, AuditStore
from audit.verify import verify_log_against
from tests.test_audit_tamper import RawEvents, regions

ORIGIN = "zhuisu.test/log"


@pytest.fixture
def kept(app: Any, tmp_path: Path) -> Any:
    """(audit store, the kept notes at 5, 10, 15, 20 and 25 leaves)."""
    audit = AuditStore(AuditConfig(app.database_url, tmp_path / "log-key", ORIGIN))
    notes = []
    for first, count in ((0, 4), (4, 5), (9, 5), (14, 5), (19, 5)):
        regions(app, first, count)
        notes.append(log.make_checkpoint(audit).note)
    yield audit, notes
    audit.close()


def rewrite(audit: AuditStore, *, position: int | None = 13, cut_after: int | None = None,
            drop_seals: bool = True) -> None:
    raw = RawEvents(audit)
    if position is not None:
        raw.run("UPDATE {t} SET state = ? WHERE {pos} = ?",
                bytes(raw.row(position)[3]) + b" ", position)
    if cut_after is not None:
        raw.run("DELETE FROM {t} WHERE {pos} > ?", cut_after)
    tree_store.rebuild(audit)
    tables = ["log_checkpoint_leaves", "log_checkpoints"] if drop_seals else ["log_checkpoints"]
    with audit.engine.begin() as conn:
        for table in tables:
            conn.exec_driver_sql(f"DELETE FROM {audit.table_sql(table)}")


def test_several_kept_checkpoints_narrow_a_rewrite_down(kept: Any) -> None:
    audit, notes = kept
    rewrite(audit)
    found = verify_log_against(audit, notes).first
    assert (found.kind, found.leaf_index, found.position) == ("rewritten", 10, 11)
    assert "leaves 10..14 (notification ids 11..15" in found.message
    assert "cannot be located more precisely" in found.message

    only_last = verify_log_against(audit, notes[-1]).first
    assert (only_last.kind, only_last.leaf_index) == ("rewritten", 0)
    assert "leaves 0..24" in only_last.message


def test_sealed_leaf_hashes_the_kept_checkpoints_authenticate_name_the_exact_leaf(
        kept: Any) -> None:
    audit, notes = kept
    rewrite(audit, drop_seals=False)
    found = verify_log_against(audit, notes[-1]).first
    assert (found.kind, found.leaf_index, found.position) == ("rewritten", 12, 13)


def test_a_truncation_names_the_first_missing_leaf_and_the_last_intact_id(kept: Any) -> None:
    audit, notes = kept
    rewrite(audit, position=None, cut_after=10)
    found = verify_log_against(audit, notes[-1]).first
    assert (found.kind, found.leaf_index, found.position, found.last_intact_position) == (
        "truncated", 10, None, 10)
    assert "the first missing leaf is 10" in found.message
    assert "the last intact leaf is 9 (notification id 10)" in found.message
    assert "may have been rewritten as well" in found.message  # nothing covers leaves 0..9

    confirmed = verify_log_against(audit, notes).first  # the kept 10-leaf one covers them
    assert (confirmed.kind, confirmed.leaf_index, confirmed.last_intact_position) == (
        "truncated", 10, 10)
    assert "may have been rewritten" not in confirmed.message


@pytest.mark.usefixtures("restore_logging")  # the CLI configures logging
def test_cli_takes_several_kept_checkpoints_and_prints_both_ends_of_a_cut(
        kept: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import app as cli

    audit, notes = kept
    files = []
    for i, note in enumerate(notes):
        files += ["--checkpoint", str(tmp_path / f"kept-{i}.txt")]
        (tmp_path / f"kept-{i}.txt").write_text(note)
    for name, value in {"ZHUISU_DATABASE_URL": audit.config.database_url,
                        "ZHUISU_LOG_KEY_FILE": str(audit.config.key_file),
                        "ZHUISU_LOG_ORIGIN": ORIGIN}.items():
        monkeypatch.setenv(name, value)
    rewrite(audit, position=None, cut_after=10)
    result = CliRunner().invoke(cli, ["verify", "--workers", "1", *files],
                                catch_exceptions=False)
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith("truncated")
    assert "last intact: notification id 10 (leaf 9); first missing: leaf 10" in result.stdout
