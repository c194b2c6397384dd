"""Inspection reports (inspection.reports): a case and a county summary, as .xlsx (read back with
openpyxl) and CSV (parsed back), cell by cell.

Township money is prepared by the finance accountant, reviewed by the head and approved by
the party secretary; each signs with the key derived from their code (tests/factories.py).
"""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from openpyxl import load_workbook

from inspection import reports
from projections.read_side import ReadSide
from factories import (
    COUNTY,
    TOWNSHIP,
    VILLAGE,
    a_funded_account,
    a_registered_household,
    household_payment,
    key_for,
    official,
    official_id,
    recovery,
    removal,
    run,
)
from domain.signing import key_id_of
from projections import runner
from store.engines import engine_for

D = dt.date
CASE = "镇纪〔2025〕3号"
INSPECTOR = "inspector:纪委 王"


pytestmark = pytest.mark.usefixtures("close_read_models")


def sheet_rows(book, name):
    rows = list(book[name].iter_rows(values_only=True))
    header = rows[0]
    return [dict(zip(header, r, strict=True)) for r in rows[1:]]


@pytest.fixture
def county(world):
    """A payment to a household later found removed before it (flag PAY_REMOVED), ordered back
    in a case, 3,001 fen recovered; a rectification item; an admonition."""
    app = world.app
    account = a_funded_account(world, TOWNSHIP)
    hid = a_registered_household(world, "H1")
    pay = household_payment(hid, 10_000, day=D(2025, 3, 1))
    run(world, "FundAccount.Disbursed", account, pay)
    run(world, "Household.RemovedFromRegister", hid, removal(D(2025, 2, 1)))  # backdated
    app.open_case(case_no=CASE, case_type="false_claim", title="向清退户发放产业补助",
                  region_code=VILLAGE, effective_date="2025-05-01", incident_date="2025-03-01",
                  subjects=[{"official_id": official_id(official("finance_accountant", TOWNSHIP)),
                             "reason": "经办"}],
                  evidence=[{"kind": "payment", "ref": pay["movement_id"],
                             "account_id": str(account)}],
                  flag_ids=[f"PAY_REMOVED:{pay['movement_id']}"], recorded_by=INSPECTOR)
    app.order_recovery(CASE, order_id="追1", effective_date="2025-05-03", reason="清退户",
                       recorded_by=INSPECTOR,
                       payments=[{"account_id": str(account), "movement_id": pay["movement_id"]}])
    run(world, "FundAccount.Recovered", account, recovery(pay["movement_id"], 3_001))
    app.case_step(CASE, "add_rectification_item", item_id="R1", problem="追回资金",
                  deadline="2025-06-30", unit_code=f"U{TOWNSHIP}",
                  official_id=official_id(official("head", TOWNSHIP)),
                  effective_date="2025-05-02", recorded_by=INSPECTOR)
    app.case_step(CASE, "impose_accountability",
                  official_id=official_id(official("head", TOWNSHIP)), action="criticism",
                  decision_no="县纪〔2025〕通1号", reason="审核把关不严",
                  effective_date="2025-06-01", recorded_by=INSPECTOR)
    runner.catch_up(app)
    return engine_for(app.database_url), pay["movement_id"]


def test_the_case_report_in_xlsx_and_csv(county):
    db, movement = county
    report = reports.case_report(ReadSide(db), CASE, as_of=D(2025, 7, 3))
    book = load_workbook(io.BytesIO(reports.to_xlsx(report)))
    assert book.sheetnames == ["案件 Case", "人员 Persons", "证据 Evidence", "事实 Findings",
                               "问责 Actions", "追回 Recovery", "追回 by official",
                               "整改 Rectification", "责任链 Chains"]
    facts = {r["field"]: r["value"] for r in sheet_rows(book, "案件 Case")}
    assert (facts["case_no"], facts["status"], facts["recovery_ordered_fen"],
            facts["recovery_recovered_fen"], facts["recovery_outstanding_fen"]) == (
        CASE, "open", 10_000, 3_001, 6_999)
    assert facts["flag_ids"] == f'["PAY_REMOVED:{movement}"]'
    basis = {r["code"]: r["basis"] for r in sheet_rows(book, "人员 Persons")}
    assert basis[official("finance_accountant", TOWNSHIP)] == "subject"
    assert basis[official("party_secretary", TOWNSHIP)] == "oversight"
    per_official = {r["code"]: (r["ordered_fen"], r["recovered_fen"], r["outstanding_fen"])
                    for r in sheet_rows(book, "追回 by official")}
    # 10,000 ordered: 3,334 / 3,333 / 3,333; 6,999 outstanding: 2,333 each
    assert per_official == {official("party_secretary", TOWNSHIP): (3_334, 1_001, 2_333),
                            official("head", TOWNSHIP): (3_333, 1_000, 2_333),
                            official("finance_accountant", TOWNSHIP): (3_333, 1_000, 2_333),
                            None: (10_000, 3_001, 6_999)}
    [item] = sheet_rows(book, "整改 Rectification")
    assert (item["item_id"], item["status"], item["days_overdue"]) == ("R1", "overdue", 3)
    [action] = sheet_rows(book, "问责 Actions")
    assert (action["code"], action["action"]) == (official("head", TOWNSHIP), "criticism")
    chain = sheet_rows(book, "责任链 Chains")
    signed = {(r["part"], r["role"]): (r["official_code"], r["position"], r["key_id"])
              for r in chain if r["payment_movement_id"] == movement}
    approver = official("party_secretary", TOWNSHIP)
    assert signed["payment", "approver"] == (approver, "township_party_secretary",
                                             key_id_of(key_for(approver).public_bytes))
    assert ("later", "preparer") in signed  # the recovery, signed too
    assert ("payee registration", "approver") in signed  # the county's approval of H1
    assert {r["part"] for r in chain} >= {"payment", "funding", "later", "payee registration"}

    parsed = reports.read_csv(reports.to_csv(report))
    assert list(parsed) == book.sheetnames
    csv_facts = {r["field"]: r["value"] for r in parsed["案件 Case"]}
    assert (csv_facts["case_no"], csv_facts["recovery_outstanding_fen"]) == (CASE, "6999")
    assert [r["outstanding_fen"] for r in parsed["追回 by official"]] == [
        "2333", "2333", "2333", "6999"]
    assert len(parsed["责任链 Chains"]) == len(chain)


def test_the_county_report_in_xlsx_and_csv(county):
    db, movement = county
    report = reports.county_report(ReadSide(db), COUNTY, year=2025, as_of=D(2025, 7, 3))
    book = load_workbook(io.BytesIO(reports.to_xlsx(report)))
    summary = {r["field"]: r["value"] for r in sheet_rows(book, "概况 Summary")}
    assert (summary["county"], summary["year"], summary["cases"],
            summary["recovery_outstanding_fen"], summary["rectification_items_overdue"]) == (
        COUNTY, 2025, 1, 6_999, 1)
    assert sheet_rows(book, "案件 Cases by status") == [
        {"status": "open", "case_type": "false_claim", "cases": 1}]
    assert [(r["unit_code"], r["outstanding_fen"]) for r in sheet_rows(book, "追回 by unit")] == [
        (f"U{TOWNSHIP}", 6_999), ("total", 6_999)]
    rates = {r["region_code"]: r for r in sheet_rows(book, "三率一度 by township")}
    assert set(rates) == {TOWNSHIP, COUNTY}
    assert rates[TOWNSHIP]["incidence_numerator"] == 0  # H1 was removed
    assert rates[TOWNSHIP]["incidence_denominator"] is None  # no population known
    flags = sheet_rows(book, "线索 Flags")
    assert {"rule_id": "PAY_REMOVED", "severity": "high", "township": TOWNSHIP,
            "township_name": "羊场镇", "flags": 1} in flags
    chain = sheet_rows(book, "责任链 Chains")
    assert {(r["payment_movement_id"], r["part"], r["role"]) for r in chain} >= {
        (movement, "payment", "approver"), (movement, "payee registration", "approver")}
    assert {(k, i) for k, i, _ in report.shown} >= {("flag", f"PAY_REMOVED:{movement}"),
                                                    ("case", report.shown[0][1])}

    parsed = reports.read_csv(reports.to_csv(report))
    assert list(parsed) == book.sheetnames
    assert parsed["案件 Cases"][0]["case_no"] == CASE
    assert parsed["追回 by official"][0]["outstanding_fen"] == "2333"
    with pytest.raises(Exception) as not_county:
        reports.county_report(ReadSide(db), TOWNSHIP)
    assert getattr(not_county.value, "field", None) == "code"
    with pytest.raises(Exception) as bad_format:
        reports.render(report, "pdf")
    assert getattr(bad_format.value, "field", None) == "format"


def test_the_cli_shows_a_case_writes_reports_and_refuses_bad_input(
        county, app, tmp_path, monkeypatch, restore_logging):
    from typer.testing import CliRunner

    from cli import app as cli

    monkeypatch.setenv("ZHUISU_DATABASE_URL", app.database_url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(app.pepper_file))
    runner_ = CliRunner()
    shown = runner_.invoke(cli, ["case", "show", CASE, "--as-of", "2025-07-03"])
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.stdout)
    assert view["recovery"]["total"]["outstanding_fen"] == 6_999
    assert view["rectification"]["items"][0]["status"] == "overdue"

    out = tmp_path / "case.xlsx"
    done = runner_.invoke(cli, ["report", "case", CASE, "--format", "xlsx", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert load_workbook(out)["案件 Case"]["B2"].value == CASE
    out = tmp_path / "county.csv"
    done = runner_.invoke(cli, ["report", "county", COUNTY, "--format", "csv", "--year", "2025",
                                "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert reports.read_csv(out.read_bytes())["案件 Cases"][0]["case_no"] == CASE
    figures = runner_.invoke(cli, ["metrics", TOWNSHIP, "--year", "2025"])
    assert figures.exit_code == 0 and json.loads(figures.stdout)["region_code"] == TOWNSHIP

    for args, field in [(["case", "show", "nope"], "[case_no]"),
                        (["case", "show", CASE, "--as-of", "July"], "[as_of]"),
                        (["report", "case", CASE, "--format", "pdf", "--out",
                          str(tmp_path / "x")], "[format]"),
                        (["report", "county", TOWNSHIP, "--out", str(tmp_path / "y")], "[code]"),
                        (["metrics", "999", "--year", "2025"], "[region_code]"),
                        (["metrics", TOWNSHIP, "--year", "20"], "[year]")]:
        refused = runner_.invoke(cli, args)
        assert refused.exit_code != 0 and field in refused.stderr, (args, refused.output)
    assert runner_.invoke(cli, ["metrics", TOWNSHIP]).exit_code != 0  # --year is required
