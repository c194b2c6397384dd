"""Planted misconduct (demo/misconduct.py) against the red-flag rules (projections/flags/):
every planted item is found, and the rules raise nothing the demo did not put there.

The truth names, per rule, the exact subject each planted item must be flagged under, and
the flags the normal demo raises by design (``inherent``: its relapses weeks after exit
are RELAPSE_SOON).  A flag is *found* when its (rule_id, subject_id) was planted; a *false
alarm* when its subject was neither planted nor inherent.  bench/flags.py is the same
measurement at the size of a county.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app as cli
from demo.build import DemoSummary, build_demo
from demo.misconduct import RULES, UNPLANTABLE, Score, score, write_truth
from domain.application import Zhuisu
from domain.fund_account import FundAccount
from factories import PEPPER, sqlite_app
from projections import runner
from projections.flags import MAX_LIMIT, list_flags
from store.engines import engine_for

SIZE, PLANT = "2x3x40", 3  # two townships of three villages of 40 households; 3 per kind
PLANTABLE = [r for r in RULES if r not in UNPLANTABLE]


def standing_flags(app: Zhuisu) -> list[dict]:
    runner.catch_up(app, names=["flags"])
    engine = engine_for(runner.source_for(app).url)
    flags: list[dict] = []
    while True:
        page = list_flags(engine, after=flags[-1]["flag_id"] if flags else None, limit=MAX_LIMIT)
        flags += page
        if len(page) < MAX_LIMIT:
            return flags


def scores_of(app: Zhuisu, summary: DemoSummary) -> dict[str, Score]:
    return score(summary.truth, standing_flags(app))


def test_the_rules_find_every_planted_misconduct_and_raise_nothing_else(store) -> None:
    app = store.new_app()
    summary = build_demo(app, SIZE, plant=PLANT)
    scores = scores_of(app, summary)
    for rule in PLANTABLE:
        s = scores[rule]
        assert s.planted == PLANT, rule
        assert s.recall == 1.0, f"{rule} missed {s.missed}"
        assert s.precision is not None and s.precision >= 0.95, \
            f"{rule} false alarms {s.false_alarms}"
    assert summary.truth["rules"]["PAY_UNREGISTERED"]["planted"] == []
    assert scores["PAY_UNREGISTERED"].flags == 0
    assert set(scores) == set(RULES)  # no flag of a rule outside the catalogue


def test_the_normal_small_demo_raises_only_its_relapses_weeks_after_exit(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    summary = build_demo(app, "small")
    relapses = {i["subject_id"] for i in summary.truth["rules"]["RELAPSE_SOON"]["inherent"]}
    assert relapses  # ~2 % of the exits, weeks later: RELAPSE_SOON by definition (≤ 365 days)
    flagged = {(f["rule_id"], f["subject_id"]) for f in standing_flags(app)}
    assert flagged == {("RELAPSE_SOON", h) for h in relapses}
    assert all(not t["planted"] for t in summary.truth["rules"].values())


def test_same_seed_plants_the_same_truth(tmp_path: Path) -> None:
    files = []
    for name, seed in (("one", 20251), ("two", 20251), ("other", 7)):
        summary = build_demo(sqlite_app(tmp_path / name), "tiny", seed=seed, plant=2)
        write_truth(summary.truth, tmp_path / f"{name}.json")
        files.append((tmp_path / f"{name}.json").read_bytes())
    assert files[0] == files[1]
    assert files[0] != files[2]
    truth = json.loads(files[0])
    assert {r: len(t["planted"]) for r, t in truth["rules"].items()} == {
        r: 0 if r in UNPLANTABLE else 2 for r in RULES}


def test_each_planted_item_is_in_the_store_as_the_truth_says(tmp_path: Path) -> None:
    """Without the rules: the planted commands were accepted, with the dates they claim."""
    app = sqlite_app(tmp_path)
    summary = build_demo(app, "tiny", plant=2)
    rules = summary.truth["rules"]
    last = app.recorder.max_notification_id()
    events = [app.mapper.to_domain_event(n)
              for n in app.recorder.select_notifications(start=1, limit=last)]
    payments = {e.movement_id: e for e in events if type(e).__qualname__ == "FundAccount.Disbursed"}
    for rule in ("PAY_REMOVED", "PAY_AFTER_EXIT", "PAY_DUPLICATE", "PAYEE_RELATIVE_OF_SIGNER",
                 "SIGNERS_RELATED", "SPLIT_PAYMENT"):
        for item in rules[rule]["planted"]:
            paid = payments[item["subject_id"]]
            assert paid.effective_date.isoformat() in json.dumps(item), (rule, item)
    for item in rules["BACKDATED"]["planted"]:
        if item["subject_kind"] == "payment":
            e = payments[item["subject_id"]]
        else:
            originator, version = item["subject_id"].split("@")
            e = next(e for e in events if str(e.originator_id) == originator
                     and e.originator_version == int(version))
        assert (e.timestamp.date() - e.effective_date).days > 30
    for item in rules["IDLE_FUNDS"]["planted"]:
        account = app.load(FundAccount, item["subject_id"])
        assert account.balance == item["received"]["amount_fen"] and account.paid_out == 0
    for item in rules["RECTIFICATION_OVERDUE"]["planted"]:
        case_no, item_id = item["subject_id"].split("/")
        assert app.case(case_no).items[item_id]["completed_on"] is None


def test_the_demo_command_plants_and_writes_the_truth(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> None:
    (tmp_path / "pepper").write_text(PEPPER)
    monkeypatch.setenv("ZHUISU_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(tmp_path / "pepper"))
    result = CliRunner().invoke(cli, ["demo", "--size", "tiny", "--plant", "1",
                                      "--truth", str(tmp_path / "truth.json")])
    assert result.exit_code == 0, result.output
    assert "13 planted items (1 per kind)" in result.stdout
    again = build_demo(sqlite_app(tmp_path / "again"), "tiny", plant=1)
    write_truth(again.truth, tmp_path / "again.json")
    assert (tmp_path / "truth.json").read_bytes() == (tmp_path / "again.json").read_bytes()
