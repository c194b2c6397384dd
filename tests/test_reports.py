"""Inspection reports (exchange.reports over inspection.reports): a case and a county summary,
as .xlsx in the offices' layout (read back with openpyxl, cell by cell against the data) and
as the machine-readable CSV (English field names, integer fen; parsed back).

Township money is prepared by the finance accountant, reviewed by the head and approved by
the party secretary; each signs with the key derived from their code (tests/factories.py).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from domain.household import Household
from exchange import layout, reports
from exchange.labels import POSITION_ZH
from exchange.sources import Context
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
from projections import case_queries as cq
from projections import runner
from projections.flags import queries as flag_queries
from store.engines import engine_for

D = dt.date
ON = D(2025, 7, 4)
CASE = "镇纪〔2025〕3号"
INSPECTOR = "inspector:纪委 王"
CASE_SHEETS = ["案件 Case", "人员 Persons", "证据 Evidence", "事实 Findings", "问责 Actions",
               "追回 Recovery", "追回 by official", "整改 Rectification", "责任链 Chains"]
COUNTY_SHEETS = ["概况 Summary", "线索 Flags", "案件 Cases by status", "案件 Cases", "追回 by unit",
                 "追回 by official", "三率一度 by township", "整改逾期 Overdue", "责任链 Chains"]


pytestmark = pytest.mark.usefixtures("close_read_models")


def table(ws):
    """(headers, data rows by header, the 合计 row or None) of a report's worksheet."""
    rows = list(ws.iter_rows(min_row=layout.HEADER_ROW, values_only=True))
    header = list(rows[0])
    data, total = [], None
    for r in rows[1:]:
        if isinstance(r[0], str) and r[0].startswith("注："):
            break
        entry = dict(zip(header, r, strict=True))
        if layout.TOTAL in r[:3]:
            total = entry
        else:
            data.append(entry)
    return header, data, total


def fields(ws):
    """项目 → 内容 of a sheet of facts."""
    _, rows, _ = table(ws)
    return {r["项目"]: r["内容"] for r in rows}


def fen(value):
    """A cell's amount in 元 as integer fen, exactly (openpyxl reads numbers as floats)."""
    assert isinstance(value, (int, float)), value
    return int(Decimal(str(value)).quantize(Decimal("0.01")) * 100)


def check_frame(ws, title, unit):
    """Title row, 填报单位 and 填报日期, the header frozen."""
    assert ws["A1"].value == title
    assert ws["A2"].value == f"填报单位：{unit}"
    assert f"填报日期：{ON.isoformat()}" in [c.value for c in ws[2]]
    assert ws.freeze_panes == f"A{layout.HEADER_ROW + 1}"


def check_money(ws, header, headers):
    """Every amount of these columns (rows and 合计): a number shown with two decimals."""
    for name in headers:
        col = header.index(name) + 1
        cells = [ws.cell(r, col) for r in range(layout.HEADER_ROW + 1, ws.max_row + 1)
                 if ws.cell(r, col).value is not None]
        assert cells, name
        for c in cells:
            assert isinstance(c.value, (int, float)) and c.number_format == "#,##0.00", (
                name, c.coordinate)


def book_of(report):
    return load_workbook(io.BytesIO(report.render("xlsx")))


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
    return engine_for(app.database_url), pay["movement_id"], app, hid


def case_report(db, app, role="inspector"):
    return reports.case_report(Context(db, app, role=role, on=ON), CASE, as_of=D(2025, 7, 3))


def test_the_case_report_in_xlsx_and_csv(county):
    db, movement, app, hid = county
    report = case_report(db, app)
    book = book_of(report)
    assert book.sheetnames == ["案件概况", "涉案人员", "证据", "认定事实", "问责", "追回明细",
                               "按责任人追回", "整改", "涉及支付", "责任链"]
    village = cq.region_of(db, VILLAGE)["name"]
    unit = f"{village}（{VILLAGE}）"
    check_frame(book["案件概况"], f"案件报告：{CASE} 向清退户发放产业补助", unit)
    for name in book.sheetnames[1:]:
        check_frame(book[name], book[name]["A1"].value, unit)
    facts = fields(book["案件概况"])
    assert (facts["案号"], facts["状态"], facts["案件类型"], facts["应追回（元）"],
            facts["已追回（元）"], facts["未追回（元）"]) == (
        CASE, "在办", "虚报冒领", "100.00", "30.01", "69.99")
    assert facts["问题线索"] == f"PAY_REMOVED:{movement}"
    assert facts["地区"] == unit
    header, persons, _ = table(book["涉案人员"])
    assert header == ["序号", "干部编号", "姓名", "单位", "审查依据", "事由", "地区", "职务",
                      "列入日期"]
    basis = {r["干部编号"]: r["审查依据"] for r in persons}
    assert basis[official("finance_accountant", TOWNSHIP)] == "直接当事人"
    assert basis[official("party_secretary", TOWNSHIP)] == "一案双查"
    ws = book["按责任人追回"]
    header, rows, total = table(ws)
    assert header == ["序号", "干部编号", "姓名", "单位", "应追回（元）", "已追回（元）",
                      "未追回（元）"]
    check_money(ws, header, ["应追回（元）", "已追回（元）", "未追回（元）"])
    per_official = {r["干部编号"]: tuple(fen(r[h]) for h in header[4:]) for r in rows}
    # 100.00 元 ordered: 33.34 / 33.33 / 33.33; 69.99 outstanding: 23.33 each
    assert per_official == {official("party_secretary", TOWNSHIP): (3_334, 1_001, 2_333),
                            official("head", TOWNSHIP): (3_333, 1_000, 2_333),
                            official("finance_accountant", TOWNSHIP): (3_333, 1_000, 2_333)}
    assert (total["干部编号"], total["姓名"]) == ("合计", "3 人")
    assert tuple(fen(total[h]) for h in header[4:]) == (10_000, 3_001, 6_999) == tuple(
        sum(v[i] for v in per_official.values()) for i in range(3))
    ws = book["追回明细"]
    header, lines, total = table(ws)
    check_money(ws, header, ["应追回（元）", "已追回（元）", "未追回（元）"])
    assert {(r["签字角色"], r["收款方"], r["支付编号"]) for r in lines} == {
        (role, "H1", movement) for role in ("经办", "审核", "审批")}
    assert [fen(total[h]) for h in ("应追回（元）", "已追回（元）", "未追回（元）")] == [
        sum(fen(r[h]) for r in lines) for h in ("应追回（元）", "已追回（元）", "未追回（元）")
    ] == [10_000, 3_001, 6_999]
    [item] = table(book["整改"])[1]
    assert (item["事项编号"], item["状态"], item["逾期天数"], item["期限"].date()) == (
        "R1", "逾期未完成", 3, D(2025, 6, 30))
    [action] = table(book["问责"])[1]
    assert (action["干部编号"], action["问责方式"], action["决定文号"]) == (
        official("head", TOWNSHIP), "通报批评", "县纪〔2025〕通1号")
    _, findings, found_total = table(book["认定事实"])
    assert findings == [] and found_total["认定事实"] == "0 项"
    # the chain: every signature of the payment, its funding, the recovery, the payee's entry
    header, chain, _ = table(book["责任链"])
    assert header[:4] == ["支付编号", "付款账户", "环节", "步骤"]
    signed = {(r["环节"], r["签字角色"]): (r["干部编号"], r["姓名"], r["职务"], r["签名密钥"])
              for r in chain if r["支付编号"] == movement}
    approver = official("party_secretary", TOWNSHIP)
    assert signed["支付", "审批"] == (approver, approver, POSITION_ZH["township_party_secretary"],
                                   key_id_of(key_for(approver).public_bytes))
    assert signed["支付", "经办"][0] == official("finance_accountant", TOWNSHIP)
    assert signed["支付", "审核"][0] == official("head", TOWNSHIP)
    assert ("追回 / 冲正", "经办") in signed  # the recovery, signed too
    assert ("收款户识别", "审批") in signed  # the county's approval of H1
    assert {r["环节"] for r in chain} >= {"支付", "资金来源", "追回 / 冲正", "收款户识别"}
    payment_rows = [r for r in chain if r["环节"] == "支付"]
    assert {fen(r["金额（元）"]) for r in payment_rows} == {10_000}
    # the payments: payee, masked numbers as text, who signed; a 合计
    ws = book["涉及支付"]
    header, paid, total = table(ws)
    assert header == ["序号", "支付编号", "付款账户", "发放日期", "用途", "金额（元）",
                      "收款户编号", "户主姓名", "身份证号", "银行账号", "文号", "经办", "审核",
                      "审批"]
    check_money(ws, header, ["金额（元）"])
    household = app.load(Household, hid)
    head_hash = next(m["id_number_hash"] for m in household.members if m["relation"] == "head")
    [row] = paid
    assert (row["支付编号"], fen(row["金额（元）"]), row["收款户编号"], row["户主姓名"],
            row["发放日期"].date()) == (movement, 10_000, "H1", household.head_name, D(2025, 3, 1))
    assert row["身份证号"] == head_hash[:6] + "*" * 8 + head_hash[-4:]
    assert row["银行账号"] == "*" * 8 + household.bank_account_hash[-4:]
    assert (row["经办"], row["审核"], row["审批"]) == (
        official("finance_accountant", TOWNSHIP), official("head", TOWNSHIP), approver)
    assert (total["支付编号"], total["付款账户"], fen(total["金额（元）"])) == ("合计", "1 笔", 10_000)
    id_col, bank_col = header.index("身份证号") + 1, header.index("银行账号") + 1
    for col in (id_col, bank_col, 2):
        c = ws.cell(layout.HEADER_ROW + 1, col)
        assert (c.data_type, c.number_format) == ("s", "@")
    # a role that may not compare people sees only the hash's tail
    other = book_of(case_report(db, app, role="fund_officer"))
    [masked] = table(other["涉及支付"])[1]
    assert masked["身份证号"] == "*" * 8 + head_hash[-4:]
    assert head_hash[:6] not in masked["身份证号"]
    assert other["涉及支付"].cell(layout.HEADER_ROW + 1, id_col).data_type == "s"
    # the access log: the case; the .xlsx also the payee whose numbers it shows
    case_id = cq.case_view(db, CASE)["case_id"]
    assert {(r.kind, r.id) for r in report.shown("csv")} == {("case", case_id)}
    assert {(r.kind, r.id) for r in report.shown("xlsx")} == {("case", case_id),
                                                              ("household", str(hid))}

    # the CSV: as before, English field names and integer fen, one sheet after the other
    data = report.render("csv")
    assert data.startswith(b"\xef\xbb\xbf")
    parsed = layout.read_csv(data, sheets=True)
    assert list(parsed) == CASE_SHEETS
    csv_facts = {r["field"]: r["value"] for r in parsed["案件 Case"]}
    assert (csv_facts["case_no"], csv_facts["status"], csv_facts["recovery_ordered_fen"],
            csv_facts["recovery_recovered_fen"], csv_facts["recovery_outstanding_fen"]) == (
        CASE, "open", "10000", "3001", "6999")
    assert csv_facts["flag_ids"] == f'["PAY_REMOVED:{movement}"]'
    assert {r["code"]: r["basis"] for r in parsed["人员 Persons"]}[
        official("party_secretary", TOWNSHIP)] == "oversight"
    assert [r["outstanding_fen"] for r in parsed["追回 by official"]] == [
        "2333", "2333", "2333", "6999"]
    [csv_item] = parsed["整改 Rectification"]
    assert (csv_item["item_id"], csv_item["status"], csv_item["days_overdue"]) == (
        "R1", "overdue", "3")
    assert len(parsed["责任链 Chains"]) == len(chain)
    csv_signed = {(r["part"], r["role"]): (r["official_code"], r["position"], r["key_id"])
                  for r in parsed["责任链 Chains"] if r["payment_movement_id"] == movement}
    assert csv_signed["payment", "approver"] == (approver, "township_party_secretary",
                                                 key_id_of(key_for(approver).public_bytes))


def test_the_county_report_in_xlsx_and_csv(county):
    db, movement, app, hid = county
    report = reports.county_report(Context(db, app, on=ON), COUNTY, year=2025,
                                   as_of=D(2025, 7, 3))
    book = book_of(report)
    assert book.sheetnames == ["概况", "问题线索", "案件统计", "案件清单", "按单位追回",
                               "按责任人追回", "三率一度", "整改逾期", "涉及支付", "责任链"]
    name = cq.region_of(db, COUNTY)["name"]
    check_frame(book["概况"], f"{name}问题线索与追回情况报告", f"{name}（{COUNTY}）")
    summary = fields(book["概况"])
    every_flag = flag_queries.list_flags(db, region_code=COUNTY, limit=1000)
    assert (summary["县"], summary["年度"], summary["案件"], summary["问题线索"],
            summary["逾期未完成的整改事项"]) == (f"{name}（{COUNTY}）", "2025", "1 件",
                                           f"{len(every_flag)} 条", "1 项")
    # the summary in 万元 (two decimals): 100.00, 30.01, 69.99 元
    assert (summary["应追回（万元）"], summary["已追回（万元）"], summary["未追回（万元）"]) == (
        "0.01", "0.00", "0.01")
    header, status, status_total = table(book["案件统计"])
    assert status == [{"状态": "在办", "案件类型": "虚报冒领", "件数": 1}]
    assert status_total["件数"] == 1
    ws = book["按单位追回"]
    header, units, total = table(ws)
    assert header == ["序号", "责任单位", "应追回（元）", "已追回（元）", "未追回（元）", "案件"]
    check_money(ws, header, ["应追回（元）", "已追回（元）", "未追回（元）"])
    assert [(r["责任单位"], fen(r["未追回（元）"]), r["案件"]) for r in units] == [
        (f"U{TOWNSHIP}", 6_999, CASE)]
    assert [fen(total[h]) for h in header[2:5]] == [10_000, 3_001, 6_999] == [
        sum(fen(r[h]) for r in units) for h in header[2:5]]
    _, officials, officials_total = table(book["按责任人追回"])
    assert sorted(fen(r["未追回（元）"]) for r in officials) == [2_333, 2_333, 2_333]
    assert fen(officials_total["未追回（元）"]) == 6_999
    _, rates, whole = table(book["三率一度"])
    by_code = {r["地区编码"]: r for r in rates}
    assert set(by_code) == {TOWNSHIP}
    assert by_code[TOWNSHIP]["贫困发生率：分子"] == 0  # H1 was removed
    assert by_code[TOWNSHIP]["贫困发生率：分母"] is None  # no population known
    assert by_code[TOWNSHIP]["贫困发生率"] is None
    assert whole["地区"] == f"全县（{name}）"
    township = cq.region_of(db, TOWNSHIP)["name"]
    _, flags, flags_total = table(book["问题线索"])
    assert {"规则名称": "向已清退户发放", "规则编号": "PAY_REMOVED", "风险等级": "高",
            "乡镇": f"{township}（{TOWNSHIP}）", "线索数": 1} in flags
    assert flags_total["线索数"] == sum(r["线索数"] for r in flags) == len(every_flag)
    _, listing, _ = table(book["案件清单"])
    assert [(r["案号"], r["状态"], r["立案日期"].date()) for r in listing] == [
        (CASE, "在办", D(2025, 5, 1))]
    [late] = table(book["整改逾期"])[1]
    assert (late["案号"], late["事项编号"], late["逾期天数"]) == (CASE, "R1", 3)
    _, chain, _ = table(book["责任链"])
    assert {(r["支付编号"], r["环节"], r["签字角色"]) for r in chain} >= {
        (movement, "支付", "审批"), (movement, "收款户识别", "审批")}
    _, paid, paid_total = table(book["涉及支付"])
    assert [(r["支付编号"], fen(r["金额（元）"]), r["收款户编号"]) for r in paid] == [
        (movement, 10_000, "H1")]
    assert fen(paid_total["金额（元）"]) == 10_000
    head_hash = next(m["id_number_hash"] for m in app.load(Household, hid).members
                     if m["relation"] == "head")
    assert paid[0]["身份证号"] == head_hash[:6] + "*" * 8 + head_hash[-4:]  # the operator
    case_id = cq.case_view(db, CASE)["case_id"]
    assert {(r.kind, r.id) for r in report.shown("csv")} >= {
        ("flag", f"PAY_REMOVED:{movement}"), ("case", case_id)}
    assert ("household", str(hid)) in {(r.kind, r.id) for r in report.shown("xlsx")}
    assert "household" not in {r.kind for r in report.shown("csv")}

    parsed = layout.read_csv(report.render("csv"), sheets=True)
    assert list(parsed) == COUNTY_SHEETS
    csv_summary = {r["field"]: r["value"] for r in parsed["概况 Summary"]}
    assert (csv_summary["county"], csv_summary["year"], csv_summary["cases"],
            csv_summary["recovery_outstanding_fen"],
            csv_summary["rectification_items_overdue"]) == (COUNTY, "2025", "1", "6999", "1")
    assert parsed["案件 Cases by status"] == [
        {"status": "open", "case_type": "false_claim", "cases": "1"}]
    assert [(r["unit_code"], r["outstanding_fen"]) for r in parsed["追回 by unit"]] == [
        (f"U{TOWNSHIP}", "6999"), ("total", "6999")]
    assert parsed["案件 Cases"][0]["case_no"] == CASE
    assert parsed["追回 by official"][0]["outstanding_fen"] == "2333"
    assert {"rule_id": "PAY_REMOVED", "severity": "high", "township": TOWNSHIP,
            "township_name": township, "flags": "1"} in parsed["线索 Flags"]
    with pytest.raises(Exception) as not_county:
        reports.county_report(Context(db, app, on=ON), TOWNSHIP)
    assert getattr(not_county.value, "field", None) == "code"
    with pytest.raises(Exception) as bad_format:
        report.render("pdf")
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
    facts = load_workbook(out)["案件概况"]
    assert (facts.cell(layout.HEADER_ROW + 1, 1).value,
            facts.cell(layout.HEADER_ROW + 1, 2).value) == ("案号", CASE)
    out = tmp_path / "county.csv"
    done = runner_.invoke(cli, ["report", "county", COUNTY, "--format", "csv", "--year", "2025",
                                "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert layout.read_csv(out.read_bytes(), sheets=True)["案件 Cases"][0]["case_no"] == CASE
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
