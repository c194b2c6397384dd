"""线索处置 at the terminal, on both stores: a register imported with ``zhuisu register
import``, its match raised as a lead with ``zhuisu lead raise --match`` and carried through
``assign`` (the deadline in working days, 国庆 skipped) → ``verify`` → ``report`` →
``review`` → ``open-case``; a refusal (a move out of order) exits 2 naming the rule; every
move recorded as ``cli:<user>``.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from factories import VILLAGE, a_funded_account, official, official_id
from test_compare import csv, pay, person, registered
from typer.testing import CliRunner

from cli import app as cli
from cli.adapter import cli_user
from domain.lead import Lead

pytestmark = pytest.mark.usefixtures("close_read_models")

D = dt.date
UNIT = f"U{VILLAGE}"
ACCOUNTANT = official_id(official("accountant", VILLAGE))
runner = CliRunner()


@pytest.fixture
def terminal(app, monkeypatch):
    monkeypatch.setenv("ZHUISU_DATABASE_URL", app.database_url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(app.pepper_file))
    monkeypatch.setenv("ZHUISU_LOG_LEVEL", "WARNING")

    def zhuisu(*args: str, code: int = 0) -> dict:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == code, (result.output, result.stderr if code == 0 else "")
        return json.loads(result.stdout) if code == 0 else {"stderr": result.stderr}
    return zhuisu


def test_a_lead_carried_from_match_to_case_at_the_terminal(app, world, terminal, tmp_path):
    a_funded_account(world)
    h1 = registered(world, "H1")
    paid = pay(world, h1, D(2025, 3, 2))
    register = tmp_path / "死亡.csv"
    register.write_bytes(csv(["姓名", "证件号码", "死亡日期"],
                             ["甲", person("H1", "spouse"), "2025-03-01"]))
    done = terminal("register", "import", str(register), "--department", "县公安局",
                    "--kind", "death", "--as-of", "2025-06-30", "--confirm")
    assert done["recorded"] is True and done["rows_kept"] == 1
    found = terminal("compare", "matches", "--model", "COMPARE_PAID_AFTER_DEATH")
    assert [m["detail"]["movement_id"] for m in found] == [paid]
    raised = terminal("lead", "raise", "--match", found[0]["match_id"], "--date", "2025-09-30")
    lead_id = raised["lead_id"]
    assert raised["recorded"] is True
    assert terminal("lead", "raise", "--match", found[0]["match_id"],
                    "--date", "2025-09-30")["recorded"] is False
    out = terminal("lead", "verify", lead_id, "--verdict", "founded", "--reasons", "x",
                   "--date", "2025-09-30", code=2)
    assert "StepOutOfOrder" in out["stderr"]
    assigned = terminal("lead", "assign", lead_id, "--unit", UNIT, "--official", ACCOUNTANT,
                        "--working-days", "1", "--date", "2025-09-30")
    assert assigned["deadline"] == "2025-10-09"
    terminal("lead", "verify", lead_id, "--verdict", "founded", "--reasons", "死亡后仍发放",
             "--amount-fen", "10000", "--date", "2025-10-09")
    terminal("lead", "report", lead_id, "--text", "已核实属实", "--date", "2025-10-09")
    terminal("lead", "review", lead_id, "--opinion", "同意", "--date", "2025-10-10")
    opened = terminal("lead", "open-case", lead_id, "--case-no", "县纪〔2025〕40号",
                      "--case-type", "false_claim", "--title", "死亡后冒领",
                      "--date", "2025-10-10")
    assert opened["case_id"]
    shown = terminal("lead", "show", lead_id, "--as-of", "2025-10-20")
    assert (shown["status"], shown["disposition"], shown["case_no"]) == (
        "closed", "case_opened", "县纪〔2025〕40号")
    assert {m["recorded_by"] for m in shown["moves"]} == {cli_user()}
    assert app.load(Lead, lead_id).status == "closed"
    case = terminal("case", "show", "县纪〔2025〕40号")
    assert paid in json.dumps(case["evidence"], ensure_ascii=False)
    stats = terminal("lead", "stats", "--as-of", "2025-10-20")
    assert stats["total"]["cases_opened"] == 1
