"""台账 out (exchange): the five ledgers offices file, read back cell by cell with openpyxl and
from their CSV, through the module, the HTTP route, the command line and the console.

The story, in county 522625: the county account receives 20,000.00 元 and allocates
15,000.00 to the township, which also receives 50,000.00 itself; the township pays
household 522625100001000001 (an 18-digit 户编号) twice in March (重复发放, PAY_DUPLICATE),
H2 once in June before H2 is found removed from 1 June (PAY_REMOVED, 30.01 元 recovered),
and H3 in the other village.  A case names the PAY_REMOVED flag and sets four
rectification items: one done on time, one done late, one overdue, one still open on
2025-07-03.  Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from decimal import Decimal
from typing import Any

import pyotp
import pytest
from factories import (
    COUNTY,
    OTHER_VILLAGE,
    REGIONS,
    STAFF,
    TOWNSHIP,
    VILLAGE,
    World,
    a_funded_account,
    a_registered_household,
    allocation,
    another_county,
    household_payment,
    id_number,
    official,
    official_id,
    person_number,
    read_models,
    recovery,
    removal,
    run,
)
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select

from access.tables import access_log
from domain.household import Household
from domain.identity import check_digit
from exchange import layout
from exchange.labels import RULE_ZH, SEVERITY_ZH
from exchange.ledgers import build
from exchange.sources import Context, Params
from projections import case_queries as cq
from projections.flags import queries as flag_queries
from projections.queries import balance_summary, balances

pytestmark = pytest.mark.usefixtures("close_read_models")

D = dt.date
ON = D(2025, 7, 3)
CASE = "县纪〔2025〕7号"
INSPECTOR = "inspector:县纪委 王"
CODE18 = "522625100001000001"  # an 18-digit 户编号 (its last digit is no GB 11643 check digit)
HOUSEHOLDS = (CODE18, "H2", "H3")


class Story:
    def __init__(self, world: World):
        app = self.app = world.app
        self.county_account = a_funded_account(world, COUNTY, 2_000_000)
        self.account = world.account(TOWNSHIP)
        run(world, "FundAccount.Allocated", self.county_account,
            allocation(self.account, 1_500_000))
        a_funded_account(world, TOWNSHIP, 5_000_000)
        self.h1 = a_registered_household(world, CODE18)
        self.h2 = a_registered_household(world, "H2")
        self.h3 = a_registered_household(world, "H3", village=OTHER_VILLAGE)
        self.p1 = self.pay(world, self.h1, 10_001, D(2025, 3, 1))
        self.p2 = self.pay(world, self.h1, 20_000, D(2025, 3, 20))
        self.p4 = self.pay(world, self.h3, 12_345, D(2025, 4, 1), purpose="hh_housing")
        self.p3 = self.pay(world, self.h2, 30_000, D(2025, 6, 5))
        run(world, "Household.RemovedFromRegister", self.h2, removal(D(2025, 6, 1)))
        run(world, "FundAccount.Recovered", self.account, recovery(self.p3, 3_001))
        self.removed_flag = f"PAY_REMOVED:{self.p3}"
        self.duplicate_flag = f"PAY_DUPLICATE:{self.p2}"
        app.open_case(case_no=CASE, case_type="false_claim", title="向清退户发放产业补助",
                      region_code=VILLAGE, effective_date="2025-06-10",
                      incident_date="2025-06-05",
                      subjects=[{"official_id": official_id(official("finance_accountant",
                                                                     TOWNSHIP)),
                                 "reason": "经办"}],
                      flag_ids=[self.removed_flag], recorded_by=INSPECTOR)
        head = official_id(official("head", TOWNSHIP))
        for item_id, deadline in (("R1", "2025-06-30"), ("R2", "2025-12-31"),
                                  ("R3", "2025-06-20"), ("R4", "2025-08-31")):
            app.case_step(CASE, "add_rectification_item", item_id=item_id,
                          problem=f"整改事项{item_id}", deadline=deadline,
                          unit_code=f"U{TOWNSHIP}", official_id=head,
                          effective_date="2025-06-11", recorded_by=INSPECTOR)
        for item_id, day in (("R3", "2025-06-25"), ("R4", "2025-07-01")):
            app.case_step(CASE, "complete_rectification_item", item_id=item_id,
                          evidence=f"{item_id} 佐证", effective_date=day,
                          recorded_by=INSPECTOR)
        self.db = read_models(app)

    def pay(self, world: World, household: Any, fen: int, day: D,
            purpose: str = "hh_industry") -> str:
        content = household_payment(household, fen, day=day, purpose=purpose)
        run(world, "FundAccount.Disbursed", self.account, content)
        return content["movement_id"]

    def ledger(self, key: str, role: str | None = None, **params: Any) -> layout.Ledger:
        return build(key, Context(self.db, self.app, role=role, on=ON), Params(**params))


@pytest.fixture
def story(world: World) -> Story:
    return Story(world)


# reading back ---------------------------------------------------------------------------------
def book_of(ledger: layout.Ledger) -> Any:
    return load_workbook(io.BytesIO(layout.to_xlsx(ledger)))


def table(ws: Any) -> tuple[list[str], list[dict[str, Any]], dict[str, Any] | None]:
    """(headers, data rows by header, the 合计 row) of a ledger's worksheet."""
    rows = list(ws.iter_rows(min_row=layout.HEADER_ROW, values_only=True))
    header = list(rows[0])
    data, total = [], None
    for r in rows[1:]:
        if any(isinstance(v, str) and v.startswith("注：") for v in r[:1]):
            break
        entry = dict(zip(header, r, strict=True))
        if layout.TOTAL in r[:3]:
            total = entry
        else:
            data.append(entry)
    return header, data, total


def yuan(value: Any) -> Decimal:
    """A cell's amount in 元, exactly (openpyxl reads numbers as float or int)."""
    return Decimal(str(value)).quantize(Decimal("0.01"))


def fen_of(value: Any) -> int:
    return int(yuan(value) * 100)


def check_frame(ws: Any, title: str, unit: str) -> None:
    """Title row, 填报单位 and 填报日期, headers frozen, the amounts' format."""
    assert title in ws["A1"].value
    assert ws["A2"].value == f"填报单位：{unit}"
    assert f"填报日期：{ON.isoformat()}" in [c.value for c in ws[2]]
    assert ws.freeze_panes == f"A{layout.HEADER_ROW + 1}"
    assert all(ws.column_dimensions[c].width for c in "ABC")


def texts_of(data: bytes) -> str:
    """Every character of a file: an .xlsx's XML parts, or a CSV."""
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
    return data.decode("utf-8-sig")


def valid_id_numbers(text: str) -> list[str]:
    """Anything in ``text`` that is a resident ID number (18 characters, GB 11643 check)."""
    return [m for m in re.findall(r"(?<!\d)\d{17}[\dX](?![\dX])", text)
            if check_digit(m[:17]) == m[17]]


def clear_numbers() -> list[str]:
    """Every clear ID number of the story: household members and officials."""
    people = [id_number(person_number(f"{code}/{who}")) for code in HOUSEHOLDS
              for who in ("head", "spouse")]
    count = sum(len(STAFF[level]) for _, _, level, _ in REGIONS)
    return people + [id_number(n) for n in range(1, count + 1)]


# 问题线索台账 ---------------------------------------------------------------------------------------
def test_the_flags_ledger_cell_by_cell_and_its_csv(story: Story) -> None:
    ledger = story.ledger("flags", region=COUNTY)
    ws = book_of(ledger)["问题线索台账"]
    check_frame(ws, "镇远县问题线索台账", "镇远县（522625）")
    header, rows, total = table(ws)
    assert header == ["序号", "线索编号", "规则名称", "风险等级", "地区", "业务日期",
                      "涉及金额（元）", "问题描述", "责任人", "状态"]
    flags = flag_queries.list_flags(story.db, region_code=COUNTY, limit=1000)
    assert [r["线索编号"] for r in rows] == [f["flag_id"] for f in flags]
    assert [r["序号"] for r in rows] == list(range(1, len(flags) + 1))
    by_id = {r["线索编号"]: r for r in rows}
    removed = by_id[story.removed_flag]
    assert (removed["规则名称"], removed["风险等级"], removed["地区"], removed["状态"]) == (
        "向已清退户发放", "高", "坪地村（522625100001）", f"已立案（{CASE}）")
    for row, flag in zip(rows, flags, strict=True):  # cell by cell against the query
        amount = (flag["detail"] or {}).get("amount_fen")
        assert (row["规则名称"], row["风险等级"], row["业务日期"].date().isoformat(),
                row["问题描述"], row["涉及金额（元）"] and fen_of(row["涉及金额（元）"])) == (
            RULE_ZH[flag["rule_id"]], SEVERITY_ZH[flag["severity"]], flag["effective_date"],
            flag["explanation_zh"], amount if isinstance(amount, int) else None)
    assert yuan(removed["涉及金额（元）"]) == Decimal("300.00")
    assert removed["责任人"] == ("finance_accountant@522625100（经办）；head@522625100（审核）；"
                              "party_secretary@522625100（审批）")
    duplicate = by_id[story.duplicate_flag]
    assert (yuan(duplicate["涉及金额（元）"]), duplicate["状态"]) == (Decimal("200.00"), "在办")
    # the totals row: the amounts summed to the fen, the count of flags
    amounts = [f["detail"]["amount_fen"] for f in flags
               if isinstance((f["detail"] or {}).get("amount_fen"), int)]
    assert fen_of(total["涉及金额（元）"]) == sum(amounts) == sum(
        fen_of(r["涉及金额（元）"]) for r in rows if r["涉及金额（元）"] is not None)
    assert total["规则名称"].startswith(f"{len(flags)} 条")
    for cell in ws[layout.HEADER_ROW + 1]:
        if cell.column_letter == "G" and cell.value is not None:
            assert cell.number_format == "#,##0.00"
    # the CSV: the same rows, each amount in 元 and in fen
    parsed = layout.read_csv(layout.to_csv(ledger))
    assert list(parsed[0]) == [*header[:7], "涉及金额（分）", *header[7:]]
    assert [r["线索编号"] for r in parsed] == [f["flag_id"] for f in flags]
    csv_removed = next(r for r in parsed if r["线索编号"] == story.removed_flag)
    assert (csv_removed["涉及金额（元）"], csv_removed["涉及金额（分）"],
            csv_removed["业务日期"]) == ("300.00", "30000", "2025-06-01")  # the removal's date
    assert layout.to_csv(ledger).startswith(b"\xef\xbb\xbf")
    # the subjects shown: every flag, and the case that names one
    assert {(r.kind, r.id) for r in ledger.shown} == {
        *{("flag", f["flag_id"]) for f in flags},
        ("case", cq.case_view(story.db, CASE)["case_id"])}
    # narrower: a village, a date range
    march = story.ledger("flags", region=VILLAGE, date_from=D(2025, 3, 1),
                         date_to=D(2025, 3, 31))
    assert story.duplicate_flag in [r[1] for r in march.sheets[0].rows]
    assert story.removed_flag not in [r[1] for r in march.sheets[0].rows]


# 整改台账 -------------------------------------------------------------------------------------------
def test_the_rectification_ledger_says_rectified_ongoing_or_not(story: Story) -> None:
    ledger = story.ledger("rectification", region=TOWNSHIP, as_of=ON)
    ws = book_of(ledger)["整改台账"]
    check_frame(ws, "羊场镇整改台账", "羊场镇（522625100）")
    assert "2025-07-03" in ws["A3"].value
    header, rows, total = table(ws)
    assert header[:8] == ["序号", "案号", "整改事项", "责任单位", "责任人", "期限", "状态",
                          "销号日期"]
    state = {r["整改事项"]: (r["状态"], r["销号日期"] and r["销号日期"].date()) for r in rows}
    assert state == {"整改事项R1": ("未整改（逾期3天）", None),
                     "整改事项R3": ("已整改（逾期5天）", D(2025, 6, 25)),
                     "整改事项R4": ("已整改", D(2025, 7, 1)),
                     "整改事项R2": ("持续整改", None)}
    assert [r["整改事项"] for r in rows] == ["整改事项R3", "整改事项R1", "整改事项R4",
                                         "整改事项R2"]  # by deadline
    assert {r["案号"] for r in rows} == {CASE}
    assert {r["责任人"] for r in rows} == {official("head", TOWNSHIP)}
    assert total["案号"] == layout.TOTAL
    assert total["整改事项"] == "共4项：已整改2项，持续整改1项，未整改1项"
    assert [r["状态"] for r in layout.read_csv(layout.to_csv(ledger))] == [
        r["状态"] for r in rows]
    assert {(r.kind, r.id) for r in ledger.shown} == {
        ("case", cq.case_view(story.db, CASE)["case_id"]),
        ("official", official_id(official("head", TOWNSHIP)))}


# 扶贫资金总台账 -------------------------------------------------------------------------------------
def test_the_funds_ledger_adds_up_to_the_fen_with_the_balances(story: Story) -> None:
    ledger = story.ledger("funds", region=COUNTY)
    book = book_of(ledger)
    assert book.sheetnames == ["总台账", "按账户", "汇总（万元）"]
    ws = book["总台账"]
    check_frame(ws, "镇远县扶贫资金总台账", "镇远县（522625）")
    assert ws.cell(3, ws.max_column).value == "金额单位：元"
    header, rows, total = table(ws)
    assert header == ["序号", "账户", "地区", "资金来源", "用途", "下达（元）", "分配（元）",
                      "支付（拨付）（元）", "追回（元）", "结余（元）", "支出进度"]
    money = header[5:10]
    summary = balance_summary(story.db, COUNTY)["total"]
    expected = [summary["received_fen"] + summary["allocated_in_fen"],
                summary["allocated_down_fen"], summary["paid_out_fen"],
                summary["recovered_fen"], summary["balance_fen"]]
    assert expected == [2_000_000 + 5_000_000 + 1_500_000, 1_500_000, 72_346, 3_001,
                        7_000_000 - 72_346 + 3_001]
    assert [fen_of(total[h]) for h in money] == expected
    assert [sum(fen_of(r[h]) for r in rows) for h in money] == expected
    industry = next(r for r in rows if r["用途"] == "产业扶持到户补助")
    assert (industry["资金来源"], fen_of(industry["支付（拨付）（元）"]),
            fen_of(industry["追回（元）"])) == ("中央", 60_001, 3_001)
    assert industry["支出进度"] is None  # nothing came in under that purpose
    assert ws.cell(layout.HEADER_ROW + 1, 6).number_format == "#,##0.00"
    # per account: the same totals, each account as the balances query has it
    _, accounts, account_total = table(book["按账户"])
    known = {a["name"]: a for a in balances(story.db, region_code=COUNTY)}
    assert {r["账户"]: fen_of(r["结余（元）"]) for r in accounts} == {
        name: a["balance_fen"] for name, a in known.items()}
    assert [fen_of(account_total[h]) for h in money] == expected
    township = next(r for r in accounts if r["地区"] == "羊场镇（522625100）")
    assert Decimal(str(township["支出进度"])) == Decimal("0.0111")  # 72,346 ÷ 6,500,000
    # the summary in 万元: exact, shown with two decimals
    ws = book["汇总（万元）"]
    assert ws.cell(3, ws.max_column).value == "金额单位：万元"
    _, sources, whole = table(ws)
    assert [Decimal(str(whole[h.replace("（元）", "（万元）")])) for h in money] == [
        Decimal(f) / 1_000_000 for f in expected]
    assert [s["资金来源"] for s in sources] == ["中央"]
    assert ws.cell(layout.HEADER_ROW + 1, 2).number_format == "#,##0.00"
    # the CSV: the detail rows, 元 and fen
    parsed = layout.read_csv(layout.to_csv(ledger))
    assert [sum(int(r[h.replace("（元）", "（分）")]) for r in parsed) for h in money] == expected
    assert [r["结余（元）"] for r in parsed] == [str(yuan(r["结余（元）"])) for r in rows]
    assert {r.kind for r in ledger.shown} == {"region", "account"}


# 发放清册 ----------------------------------------------------------------------------------------------
def test_the_payments_list_of_a_region_and_of_an_account(story: Story) -> None:
    ledger = story.ledger("payments", region=VILLAGE, role="inspector")
    ws = book_of(ledger)["发放清册"]
    check_frame(ws, "坪地村扶贫资金发放清册", "坪地村（522625100001）")
    header, rows, total = table(ws)
    assert header == ["序号", "户编号", "户主姓名", "所在村", "身份证号", "银行账号", "用途",
                      "金额（元）", "发放日期", "文号", "经办", "审核", "审批", "备注"]
    assert [(r["户编号"], fen_of(r["金额（元）"]), r["发放日期"].date()) for r in rows] == [
        (CODE18, 10_001, D(2025, 3, 1)), (CODE18, 20_000, D(2025, 3, 20)),
        ("H2", 30_000, D(2025, 6, 5))]  # H3 lives in the other village
    first = rows[0]
    head_hash = story.app.load(Household, story.h1).members[0]["id_number_hash"]
    assert first["身份证号"] == head_hash[:6] + "*" * 8 + head_hash[-4:]
    assert first["银行账号"].startswith("********") and len(first["银行账号"]) == 12
    assert (first["经办"], first["审核"], first["审批"], first["文号"]) == (
        official("finance_accountant", TOWNSHIP), official("head", TOWNSHIP),
        official("party_secretary", TOWNSHIP), "镇财〔2025〕7号")
    assert rows[2]["备注"] == "已追回 30.01 元"
    assert fen_of(total["金额（元）"]) == 60_001 == sum(fen_of(r["金额（元）"]) for r in rows)
    assert (total["户主姓名"], total["所在村"]) == ("3 笔", "2 户")
    # an 18-digit 户编号 is a text cell: Excel would keep only 15 of its digits
    code_cell = ws.cell(layout.HEADER_ROW + 1, 2)
    assert (code_cell.value, code_cell.data_type, code_cell.number_format) == (CODE18, "s", "@")
    assert ws.cell(layout.HEADER_ROW + 1, 5).data_type == "s"
    parsed = layout.read_csv(layout.to_csv(ledger))
    assert [(r["户编号"], r["金额（元）"], r["金额（分）"]) for r in parsed] == [
        (CODE18, "100.01", "10001"), (CODE18, "200.00", "20000"), ("H2", "300.00", "30000")]
    assert {(r.kind, r.id) for r in ledger.shown} == {
        ("region", VILLAGE), ("account", str(story.account)),
        ("household", str(story.h1)), ("household", str(story.h2))}
    # the township: every household of both villages; a fund officer sees less of the hash
    township = story.ledger("payments", region=TOWNSHIP, role="fund_officer",
                            date_from=D(2025, 3, 15), date_to=D(2025, 4, 30))
    listed = township.sheets[0].rows
    assert [(r[1], r[7]) for r in listed] == [(CODE18, 20_000), ("H3", 12_345)]
    assert listed[0][4] == "*" * 8 + head_hash[-4:]
    # one account's payments
    of_account = story.ledger("payments", account=str(story.account))
    assert (of_account.unit_code, len(of_account.sheets[0].rows)) == (TOWNSHIP, 4)
    assert of_account.sheets[0].total[7] == 72_346


# 一户一档 ----------------------------------------------------------------------------------------------
def test_a_household_file_steps_signers_money_and_masked_members(story: Story) -> None:
    ledger = story.ledger("household", household=CODE18, role="reviewer")
    book = book_of(ledger)
    assert book.sheetnames == ["基本情况", "家庭成员", "办理过程", "按政策和年度", "资金明细"]
    check_frame(book["基本情况"], f"{CODE18} {CODE18}户主户 一户一档", "坪地村（522625100001）")
    facts = {r[0]: r[1] for r in book["基本情况"].iter_rows(
        min_row=layout.HEADER_ROW + 1, values_only=True) if r[0] and not r[0].startswith("注")}
    assert (facts["户编号"], facts["当前状态"], facts["主要致贫原因"], facts["家庭人口"]) == (
        CODE18, "在册", "因病", "2 人")
    assert facts["累计享受资金（元）"] == "300.01（发放 300.01，追回冲正 0.00）"
    members = story.app.load(Household, story.h1).members
    _, people, _ = table(book["家庭成员"])
    assert [(p["姓名"], p["与户主关系"], p["身份证号"]) for p in people] == [
        (m["name"], {"head": "户主", "spouse": "配偶"}[m["relation"]],
         m["id_number_hash"][:6] + "*" * 8 + m["id_number_hash"][-4:]) for m in members]
    _, steps, _ = table(book["办理过程"])
    assert steps[0]["步骤"] == "申请"
    approval = next(s for s in steps if s["步骤"] == "县级审批（纳入）")
    assert approval["办理后状态"] == "在册"
    assert approval["审批"].startswith(official("deputy_magistrate", COUNTY) + "（")
    _, policy, whole = table(book["按政策和年度"])
    assert [(p["年度"], p["用途"], p["笔数"], fen_of(p["发放（元）"])) for p in policy] == [
        ("2025", "产业扶持到户补助", 2, 30_001)]
    assert fen_of(whole["净额（元）"]) == 30_001
    _, paid, paid_total = table(book["资金明细"])
    assert [fen_of(p["金额（元）"]) for p in paid] == [10_001, 20_000]
    assert fen_of(paid_total["金额（元）"]) == 30_001
    assert paid[0]["资金来源"] == "中央财政专项扶贫资金"
    sheets = layout.read_csv(layout.to_csv(ledger), sheets=True)
    assert list(sheets) == ["基本情况", "家庭成员", "办理过程", "资金明细"]
    assert [r["金额（分）"] for r in sheets["资金明细"]] == ["10001", "20000"]
    assert ledger.shown[0].kind == "household" and ledger.shown[0].id == str(story.h1)
    by_id = story.ledger("household", household=str(story.h1))  # by its id, not its code
    assert by_id.sheets[0].rows == ledger.sheets[0].rows


# no clear number anywhere --------------------------------------------------------------------------
def test_no_ledger_holds_a_clear_id_number(story: Story) -> None:
    numbers = clear_numbers()
    made = [story.ledger("flags", region=COUNTY), story.ledger("rectification", region=COUNTY),
            story.ledger("funds", region=COUNTY), story.ledger("payments", region=COUNTY),
            story.ledger("household", household=CODE18),
            story.ledger("household", household="H2")]
    for ledger in made:
        for fmt in ("xlsx", "csv"):
            text = texts_of(layout.render(ledger, fmt))
            assert [n for n in numbers if n in text] == [], (ledger.key, fmt)
            assert valid_id_numbers(text) == [], (ledger.key, fmt)
    assert valid_id_numbers(f"x{numbers[0]}y") == [numbers[0]]  # the check can see one


# the adapters --------------------------------------------------------------------------------------
def reads_of(api: Any, actor: str) -> set[tuple[str, str, str]]:
    with api.client.app.state.access_log.engine.connect() as conn:
        rows = conn.execute(select(access_log.c.route, access_log.c.subject_kind,
                                   access_log.c.subject_id)
                            .where(access_log.c.actor == actor)).all()
    return {tuple(r) for r in rows}


def test_http_exports_are_guarded_masked_and_recorded(api: Any, story: Story) -> None:
    inspector = api.as_("inspector", COUNTY, name="县纪委 李")
    got = inspector.get("/exports/payments", params={"region": TOWNSHIP})
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == layout.FORMATS["xlsx"]
    assert "filename*=UTF-8''" in got.headers["content-disposition"]
    ws = load_workbook(io.BytesIO(got.content))["发放清册"]
    _, rows, total = table(ws)
    assert fen_of(total["金额（元）"]) == 72_346 and len(rows) == 4
    assert reads_of(api, "县纪委 李") == {
        ("/exports/{ledger}", "region", TOWNSHIP), ("/exports/{ledger}", "account",
                                                    str(story.account)),
        *{("/exports/{ledger}", "household", str(h)) for h in (story.h1, story.h2, story.h3)}}
    flags = inspector.get("/exports/flags", params={"format": "csv"})  # the token's county
    assert flags.status_code == 200 and flags.headers["content-type"].startswith("text/csv")
    listed = {r["线索编号"] for r in layout.read_csv(flags.content)}
    assert {story.removed_flag, story.duplicate_flag} <= listed
    assert {s for r, k, s in reads_of(api, "县纪委 李") if k == "flag"} == listed
    for ledger, params in [("funds", {}), ("rectification", {"as_of": "2025-07-03"}),
                           ("household", {"household": CODE18})]:
        answer = inspector.get(f"/exports/{ledger}", params=params)
        assert answer.status_code == 200, (ledger, answer.text)
    kinds = {k for _, k, _ in reads_of(api, "县纪委 李")}
    assert kinds == {"region", "account", "household", "flag", "case", "official"}
    # a fund officer's 身份证号: only the hash's tail
    officer = api.as_("fund_officer", TOWNSHIP, name="乡财政所")
    got = officer.get("/exports/payments", params={"account": str(story.account)})
    first = table(load_workbook(io.BytesIO(got.content))["发放清册"])[1][0]
    assert first["身份证号"].startswith("*" * 8)
    # outside the jurisdiction: refused, nothing recorded
    neighbour = api.as_("inspector", another_county(World(story.app)), name="邻县纪委")
    for url, params, field in [("/exports/flags", {"region": COUNTY}, "region"),
                               ("/exports/funds", {"region": TOWNSHIP}, "region"),
                               ("/exports/household", {"household": CODE18}, "household"),
                               ("/exports/payments", {"account": str(story.account)},
                                "account")]:
        refused = neighbour.get(url, params=params)
        assert refused.status_code == 403, (url, refused.text)
        assert refused.json()["rule"] == "OutsideJurisdiction"
        assert refused.json()["field"] == field
    village_official = api.as_("village_official", OTHER_VILLAGE, name="高坡村")
    assert village_official.get("/exports/payments", params={
        "region": VILLAGE}).status_code == 403
    assert reads_of(api, "邻县纪委") == set() and reads_of(api, "高坡村") == set()
    assert inspector.get("/exports/ledgers", params={}).status_code == 422
    assert inspector.get("/exports/flags", params={"format": "pdf"}).status_code == 422
    assert api.anonymous("GET", "/exports/flags").status_code == 401


def test_the_command_line_writes_the_ledgers(story: Story, app: Any, tmp_path: Any,
                                             monkeypatch: Any, restore_logging: Any) -> None:
    from typer.testing import CliRunner

    from cli import app as cli

    monkeypatch.setenv("ZHUISU_DATABASE_URL", app.database_url)
    monkeypatch.setenv("ZHUISU_ID_PEPPER_FILE", str(app.pepper_file))
    runner = CliRunner()
    out = tmp_path / "funds.xlsx"
    done = runner.invoke(cli, ["export", "funds", "--region", COUNTY, "--format", "xlsx",
                               "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "扶贫资金总台账" in done.stderr
    _, _, total = table(load_workbook(out)["总台账"])
    assert fen_of(total["支付（拨付）（元）"]) == 72_346
    out = tmp_path / "payments.csv"
    done = runner.invoke(cli, ["export", "payments", "--region", VILLAGE, "--format", "csv",
                               "--from", "2025-03-01", "--to", "2025-03-31",
                               "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert [r["金额（分）"] for r in layout.read_csv(out.read_bytes())] == ["10001", "20000"]
    out = tmp_path / "h.xlsx"
    done = runner.invoke(cli, ["export", "household", "--household", CODE18, "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert load_workbook(out)["基本情况"].cell(layout.HEADER_ROW + 1, 2).value == CODE18
    for args, field in [(["export", "nonsense", "--region", COUNTY], "[ledger]"),
                        (["export", "flags", "--region", COUNTY, "--format", "pdf"], "[format]"),
                        (["export", "flags"], "[region]"),
                        (["export", "flags", "--region", "999"], "[region]"),
                        (["export", "flags", "--region", COUNTY, "--from", "March"],
                         "[date_from]")]:
        refused = runner.invoke(cli, [*args, "--out", str(tmp_path / "x")])
        assert refused.exit_code != 0 and field in refused.stderr, (args, refused.output)


def test_the_console_screen_offers_each_ledger_and_downloads_it(api: Any, story: Story) -> None:
    app = api.client.app
    made = app.state.accounts.create("t-exports", "乡纪委 赵", "inspector",
                                     story.app.region(TOWNSHIP), created_by="test",
                                     now=dt.datetime.now(dt.UTC))
    client = TestClient(app)
    form = client.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    signed = client.post("/console/login", follow_redirects=False, data={
        "username": "t-exports", "password": made.password, "csrf": csrf,
        "next": "/console/exports", "code": pyotp.TOTP(made.totp_secret).now()})
    assert signed.status_code == 303, signed.text
    screen = client.get("/console/exports")
    assert screen.status_code == 200
    for title in ("问题线索台账", "整改台账", "扶贫资金总台账", "发放清册", "一户一档"):
        assert title in screen.text
    assert f'href="/console/exports/funds?region={TOWNSHIP}&amp;format=xlsx"' in screen.text
    assert screen.text.count('<select name="format">') == 5  # a form per ledger
    got = client.get("/console/exports/payments", params={"region": TOWNSHIP,
                                                           "format": "xlsx"})
    assert got.status_code == 200 and got.headers["content-type"] == layout.FORMATS["xlsx"]
    assert fen_of(table(load_workbook(io.BytesIO(got.content))["发放清册"])[2]["金额（元）"]) \
        == 72_346
    got = client.get("/console/exports/household", params={"household": CODE18,
                                                            "format": "csv"})
    assert got.status_code == 200 and "家庭成员" in got.content.decode("utf-8-sig")
    refused = client.get("/console/exports/funds", params={"region": COUNTY})
    assert refused.status_code == 403 and "超出您的管辖范围" in refused.text
    token_id = made.account.principal.token_id
    with app.state.access_log.engine.connect() as conn:
        kinds = {r[0] for r in conn.execute(select(access_log.c.subject_kind).where(
            access_log.c.token_id == token_id, access_log.c.route.like("/console/exports%")))}
    assert kinds == {"region", "account", "household"}
