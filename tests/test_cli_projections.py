"""``zhuisu project``: lag before and after catching up, and a rebuild to the same place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from store.settings import Settings, build_app

pytestmark = pytest.mark.usefixtures("restore_logging")  # the CLI configures logging

runner = CliRunner()


def test_lag_catch_up_and_rebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUISU_DATABASE_URL", f"sqlite:///{tmp_path}/z.db")
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(tmp_path / "pepper"))
    zhuisu = build_app(Settings.from_env())
    zhuisu.create_region("52", "贵州省", "province", None)
    zhuisu.create_region("5226", "黔东南州", "city", "52")
    zhuisu.close()

    before = json.loads(runner.invoke(app, ["project", "lag"]).stdout)
    assert {p["lag"] for p in before.values()} == {2}
    caught = json.loads(runner.invoke(app, ["project", "catch-up"]).stdout)
    assert set(caught.values()) == {2}
    after = json.loads(runner.invoke(app, ["project", "lag"]).stdout)
    assert {p["lag"] for p in after.values()} == {0}
    rebuilt = runner.invoke(app, ["project", "rebuild", "--name", "register"])
    assert json.loads(rebuilt.stdout) == {"register": 2}


def test_status_and_flags_recompute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``project status`` (lag, failures; a rebuild under way would be listed) and
    ``flags recompute``: ``--check`` records the thresholds, a changed one is reported
    with the rules it affects, and recomputing the rule brings the flags to it."""
    monkeypatch.setenv("ZHUISU_DATABASE_URL", f"sqlite:///{tmp_path}/z.db")
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(tmp_path / "pepper"))
    zhuisu = build_app(Settings.from_env())
    zhuisu.create_region("52", "贵州省", "province", None)
    zhuisu.close()
    runner.invoke(app, ["project", "catch-up"])
    status = json.loads(runner.invoke(app, ["project", "status"]).stdout)
    assert status["flags"]["lag"] == 0 and status["flags"]["failed"] == 0
    assert "rebuild" not in status["flags"]

    checked = json.loads(runner.invoke(app, ["flags", "recompute", "--check"]).stdout)
    assert checked["status"] == "current"
    monkeypatch.setenv("ZHUISU_FLAG_IDLE_DAYS", "90")
    checked = json.loads(runner.invoke(app, ["flags", "recompute", "--check"]).stdout)
    assert checked["changed"] == {"idle_days": {"was": 180, "now": 90}}
    assert checked["rules"] == ["IDLE_FUNDS"]
    done = json.loads(runner.invoke(app, ["flags", "recompute", "--rule", "IDLE_FUNDS"]).stdout)
    assert done["rule_id"] == "IDLE_FUNDS" and done["switched_version"] is True
    checked = json.loads(runner.invoke(app, ["flags", "recompute", "--check"]).stdout)
    assert checked["status"] == "current"
