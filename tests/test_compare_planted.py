"""Planted register matches (demo.registers), on both stores: the tiny demo county with one
planted item per comparison model, its registers written as the departments' files (CSV
and .xlsx, some ID numbers in their 15-digit form) and imported; every planted item is
raised by its model and nothing else is (near misses included), the answerable signers are
the payment's and the identification's, and a planted match is carried to a case.  The
command line plants, writes the truth beside ``--truth`` and imports.
"""

from __future__ import annotations

import datetime as dt
import json
from uuid import UUID

import pytest
from typer.testing import CliRunner

from demo.build import build_demo
from demo.registers import MODELS, expected_matches, score
from domain.lead import lead_move, open_lead_case, raise_lead
from exchange.registers import import_register
from inspection.workdays import add_working_days
from projections import runner
from projections.compare import list_matches
from projections.leads import get_lead, lead_source
from store.engines import engine_for
from store.urls import database_url_of

pytestmark = pytest.mark.usefixtures("close_read_models")


def all_matches(db) -> list[dict]:
    out, after = [], None
    while True:
        page = list_matches(db, after=after, limit=1000)
        out += page
        if len(page) < 1000:
            return out
        after = page[-1]["match_id"]


def test_planted_register_matches_are_found_by_their_model_and_nothing_else(app):
    summary = build_demo(app, size="tiny", plant_registers=1)
    plant = summary.registers
    assert {f.filename.rsplit(".", 1)[1] for f in plant.files} == {"csv", "xlsx"}
    forms = [i["id_form"] for t in plant.truth["models"].values() for i in t["planted"]
             if "id_form" in i]
    assert "15" in forms, "some planted ID numbers are given in their 15-digit form"
    for f in plant.files:
        done = import_register(app, department=f.department, kind=f.kind, as_of=f.as_of,
                               data=f.data, filename=f.filename, imported_by="测试",
                               confirm=True)
        assert done["rows_refused"] == 0 and done["rows_kept"] == f.rows, done["errors"]
    runner.catch_up(app)
    db = engine_for(database_url_of(app))
    found = all_matches(db)
    scores = score(plant.truth, found)
    assert set(scores) == set(MODELS)
    for model, s in scores.items():
        assert (s["planted"], s["missed"], s["false_alarms"]) == (s["found"], 0, 0), (model, s)
        assert s["found"] >= 1, model
    # the right signers: a death match's are its payment's (every role but witness)
    death = next(m for m in found if m["model_id"] == "COMPARE_PAID_AFTER_DEATH")
    account = death["detail"]["account_id"]
    event = next(e for e in app.stored_events(UUID(account))
                 if getattr(e, "movement_id", None) == death["detail"]["movement_id"])
    assert set(death["signers"]) == {s["official_id"] for s in event.signatures
                                     if s["role"] != "witness"}
    member = next(m for m in found if m["model_id"] == "COMPARE_PAYROLL_MEMBER")
    assert len(member["signers"]) >= 3, "the identification's signers answer for it"
    # carried through disposition to a case
    src = lead_source(db, "match", death["match_id"])
    lead = raise_lead(app, source_kind="match", source_ref=death["match_id"],
                      effective_date="2025-12-30", recorded_by="县纪委 王", **src)["lead_id"]
    official = death["signers"][0]
    unit = f"U{death['region_path']['village']}"
    day = add_working_days(dt.date(2025, 12, 30), 5)
    lead_move(app, lead, "assign", unit_code=unit, official_id=official, working_days=5,
              deadline=day.isoformat(), effective_date="2025-12-30", recorded_by="县纪委 王")
    lead_move(app, lead, "verify", verdict="founded", reasons="死亡后仍发放",
              effective_date="2025-12-31", recorded_by="县纪委 王")
    lead_move(app, lead, "report", report="属实", effective_date="2025-12-31",
              recorded_by="县纪委 王")
    lead_move(app, lead, "review", accepted=True, opinion="同意", effective_date="2025-12-31",
              recorded_by="县纪委 王")
    case = open_lead_case(app, lead, case_no="追纪〔2025〕1号", case_type="false_claim",
                          title="死亡后冒领", effective_date="2025-12-31", conclusion="立案",
                          recorded_by="县纪委 王")
    assert case["case_id"]
    runner.catch_up(app)
    view = get_lead(db, lead, as_of=dt.date(2026, 1, 31))
    assert (view["disposition"], view["case_no"]) == ("case_opened", "追纪〔2025〕1号")


def test_the_command_line_plants_writes_the_truth_beside_and_imports(tmp_path, monkeypatch):
    from cli import app as cli

    monkeypatch.setenv("ZHUISU_DATABASE_URL", f"sqlite:///{tmp_path}/demo.db")
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(tmp_path / "pepper"))
    monkeypatch.setenv("ZHUISU_LOG_LEVEL", "WARNING")
    truth = tmp_path / "truth.json"
    result = CliRunner().invoke(cli, ["demo", "--size", "tiny", "--plant", "1",
                                      "--plant-registers", "1", "--truth", str(truth)])
    assert result.exit_code == 0, result.output
    assert "registers: 8 files" in result.output
    written = json.loads((tmp_path / "truth.registers.json").read_text(encoding="utf-8"))
    assert sorted(p.name for p in (tmp_path / "truth-registers").iterdir()) == sorted(
        f["filename"] for f in written["files"])
    assert truth.exists() and set(expected_matches(written)) == set(MODELS)
    result = CliRunner().invoke(cli, ["compare", "matches", "--limit", "1000"])
    assert result.exit_code == 0, result.output
    found = {m["match_id"] for m in json.loads(result.stdout)}
    assert set().union(*expected_matches(written).values()) <= found
