"""The log's CLI verbs on a real store: checkpoint, prove, verify-proof offline, verify."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cli import app
from store.settings import Settings, build_app
from audit.checkpoints import NoteKey

pytestmark = pytest.mark.usefixtures("restore_logging")  # the CLI configures logging

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"ZHUISU_DATABASE_URL": f"sqlite:///{tmp_path}/z.db",
              "ZHUISU_ID_PEPPER_FILE": str(tmp_path / "pepper"),
              "ZHUISU_LOG_KEY_FILE": str(tmp_path / "log-key")}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    zhuisu = build_app(Settings.from_env())
    with zhuisu.batch():
        zhuisu.create_region("52", "贵州省", "province", None)
        for i in range(9):
            zhuisu.create_region(f"52{i:02d}", f"市{i}", "city", "52")
    zhuisu.close()
    return values


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_a_proof_made_by_the_cli_verifies_offline_with_only_the_public_key(
        env: dict[str, str], tmp_path: Path) -> None:
    assert invoke("checkpoint").exit_code == 0
    assert invoke("prove", "--position", "4", "--out", str(tmp_path / "p.json")).exit_code == 0
    vkey = invoke("log-key").stdout.strip()
    for name in env:  # the verifier needs no store, no settings
        os.environ.pop(name)

    result = invoke("verify-proof", str(tmp_path / "p.json"), "--key", vkey)
    assert result.exit_code == 0, result.stderr
    assert "notification id 4 is leaf 3 of the 10-leaf checkpoint" in result.stdout

    other = NoteKey.of_private("zhuisu.example/log", Ed25519PrivateKey.generate()).vkey
    refused = invoke("verify-proof", str(tmp_path / "p.json"), "--key", other)
    assert refused.exit_code != 0
    assert "CheckpointSignatureError" in refused.stderr


def test_verify_reports_ok_then_the_changed_position(env: dict[str, str], tmp_path: Path) -> None:
    assert invoke("checkpoint").exit_code == 0
    ok = invoke("verify")
    assert (ok.exit_code, ok.stdout.split(":")[0]) == (0, "OK")

    with sqlite3.connect(tmp_path / "z.db") as db:
        db.execute("UPDATE stored_events SET topic = topic || 'x' WHERE rowid = 7")
    bad = invoke("verify")
    assert bad.exit_code == 3
    assert "notification id 7" in bad.stdout and bad.stdout.startswith("changed")


def test_verify_against_a_kept_checkpoint_file(env: dict[str, str], tmp_path: Path) -> None:
    kept = tmp_path / "kept.txt"
    kept.write_text(invoke("checkpoint").stdout)
    result = invoke("verify", "--checkpoint", str(kept))
    assert result.exit_code == 0, result.stdout
