"""Reading the offices' files (台账导入): encodings, title rows, ID numbers, money, errors.

Pure: the files are built here (openpyxl, xlwt, encoded text), nothing touches a store.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import openpyxl
import pytest

from domain.errors import InvalidInput
from domain.identity import hash_bank_account, hash_id_number, id_number_from_15
from exchange.errors_book import errors_csv, errors_workbook, summary
from exchange.files import FileRefused, read_table
from exchange.formats import FORMATS, RowError, parse

PEPPER = b"test-pepper"
ID_A = "110101199003074514"  # check digit computed by hand (sum 206, 206 mod 11 = 8 -> '4')
ID_A15 = "110101900307451"  # the same person's first-generation number
ID_B = "11010119850101005X"
ID_C = "440304200001011239"
ID_BAD = "110101199003074515"  # wrong check digit
CARD_A, CARD_B, CARD_C = "6217000012345678", "6217000012345679", "6228480402564890018"

PAY_HEAD = ["序号", "户编号", "姓名", "证件号码", "银行卡号", "发放金额（元）", "备注"]
ROSTER_HEAD = ["县", "乡（镇）", "村", "户编号", "人编号", "姓名", "证件号码", "与户主关系",
               "致贫原因", "人均纯收入（元）", "户类型", "首次识别时间", "脱贫年度"]


def xlsx(rows: list[list[Any]], *, title: bool = True, text_ids: bool = True) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "清册"
    if title:
        sheet.append(["XX县2024年脱贫人口小额信贷贴息发放清册"])
        sheet.append(["填报单位：XX县乡村振兴局", None, None, "日期：2024年3月1日"])
        sheet.append([])
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def text_file(rows: list[list[Any]], encoding: str, delimiter: str = ",") -> bytes:
    lines = ["XX县2024年发放清册", "填报单位：XX乡人民政府" + delimiter + delimiter + "日期：2024-03-01"]
    lines += [delimiter.join("" if c is None else str(c) for c in row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def pay_rows() -> list[list[Any]]:
    return [list(PAY_HEAD),
            ["1", "H001", "张三", ID_A, CARD_A, "1,234.56", ""],
            ["2", "H002", "李四", ID_B, CARD_B, "800", "补发"],
            ["3", "H003", "王五", ID_C, CARD_C, "0.5", None]]


# --- files: kinds, encodings, title rows ---------------------------------------------------

@pytest.mark.parametrize(("encoding", "detected"), [
    ("gbk", "gb18030"), ("utf-8-sig", "utf-8-sig"), ("utf-8", "utf-8"), ("gb18030", "gb18030")])
def test_csv_encodings_are_detected_and_the_header_found_under_the_title(
        encoding: str, detected: str) -> None:
    table = read_table(text_file(pay_rows(), encoding), "清册.csv", expect=PAY_HEAD)
    assert table.encoding == detected
    assert (table.header_row, table.headers[:3]) == (3, ["序号", "户编号", "姓名"])
    rows = list(table.rows)
    assert [n for n, _ in rows] == [4, 5, 6]
    assert rows[0][1][2] == "张三" and rows[1][1][6] == "补发"


def test_tab_separated_text_and_an_xls_named_file_that_is_text() -> None:
    data = text_file(pay_rows(), "gbk", "\t")
    for name in ("清册.txt", "清册.xls"):  # some systems export tab text named .xls
        table = read_table(data, name, expect=PAY_HEAD)
        assert (table.kind, table.delimiter, table.header_row) == ("csv", "\t", 3)
        assert [cells[3] for _, cells in table.rows] == [ID_A, ID_B, ID_C]


def test_xlsx_title_rows_skipped_and_kind_from_magic_bytes_not_extension() -> None:
    data = xlsx(pay_rows())
    table = read_table(data, "清册.csv", expect=["姓名", "证件号码"])
    assert (table.kind, table.encoding, table.sheet, table.header_row) == ("xlsx", None, "清册", 4)
    assert table.headers == PAY_HEAD
    assert [n for n, _ in table.rows] == [5, 6, 7]


def test_blank_rows_are_skipped_and_rows_keep_their_file_numbers() -> None:
    rows = pay_rows()
    data = xlsx([rows[0], rows[1], [None, None], [], rows[2]], title=False)
    table = read_table(data, "a.xlsx", expect=PAY_HEAD)
    assert [n for n, _ in table.rows] == [2, 5]


def test_legacy_xls_read() -> None:
    xlwt = pytest.importorskip("xlwt")
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("分户清单")
    sheet.write(0, 0, "XX县发放清册")
    for r, row in enumerate(pay_rows(), 2):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    out = io.BytesIO()
    book.save(out)
    parsed = parse(FORMATS["payment_list"], out.getvalue(), "清册.xls", pepper=PEPPER)
    assert (parsed.table.kind, parsed.table.sheet, parsed.table.header_row) == ("xls", "分户清单", 3)
    assert [r["amount_fen"] for r in parsed.rows] == [123456, 80000, 50]
    assert parsed.errors == []


@pytest.mark.parametrize(("data", "words"), [
    (b"", "空文件"),
    (b"PK\x03\x04 not really a zip", "无法读取"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "无法读取"),
    ("姓名,证件号码\n".encode("gbk") + b"\xc3\x28\x80\xff", "编码"),
    (b"<html><table><tr><td>1</td></tr></table></html>", "网页"),
    ("a,b\n1,2\n".encode(), "找不到表头"),
])
def test_unreadable_files_are_refused_with_the_file_named(data: bytes, words: str) -> None:
    with pytest.raises(FileRefused) as caught:
        read_table(data, "坏文件.xlsx", expect=["姓名", "证件号码"])
    assert words in str(caught.value) and "坏文件.xlsx" in str(caught.value)
    assert isinstance(caught.value, InvalidInput)


def test_a_missing_sheet_is_refused_and_a_named_sheet_read() -> None:
    with pytest.raises(FileRefused, match="没有工作表“回盘”"):
        read_table(xlsx(pay_rows()), "a.xlsx", sheet="回盘")
    assert read_table(xlsx(pay_rows()), "a.xlsx", sheet="清册").sheet == "清册"


def test_csv_rows_are_streamed() -> None:
    body = [PAY_HEAD] + [[str(i), f"H{i:06}", "某", ID_A, CARD_A, "1", ""] for i in range(50_000)]
    table = read_table(text_file(body, "utf-8"), "big.csv", expect=PAY_HEAD)
    first = next(table.rows)
    assert first == (4, ["0", "H000000", "某", ID_A, CARD_A, "1", None])
    assert sum(1 for _ in table.rows) == 49_999


# --- formats: IDs, money, duplicates, columns -------------------------------------------

def test_payment_list_rows_money_in_fen_and_ids_hashed() -> None:
    parsed = parse(FORMATS["payment_list"], xlsx(pay_rows()), "清册.xlsx", pepper=PEPPER)
    assert parsed.errors == []
    first = parsed.rows[0]
    assert first["_row"] == 5 and first["amount_fen"] == 123456
    assert first["id_hash"] == hash_id_number(ID_A, PEPPER)
    assert first["id_masked"] == "110101***********4"
    assert first["bank_account_hash"] == hash_bank_account(CARD_A, PEPPER)
    assert first["bank_account_masked"] == "************5678"
    assert [r["note"] for r in parsed.rows] == [None, "补发", None]
    assert summary(parsed)["totals_fen"] == {"amount_fen": 123456 + 80000 + 50}


def test_fifteen_digit_id_becomes_eighteen() -> None:
    assert id_number_from_15(ID_A15) == ID_A
    rows = pay_rows()
    rows[1][3] = ID_A15
    rows[2][3] = " " + ID_B.lower() + "\u3000"  # a lower-case x, spaces of both widths
    parsed = parse(FORMATS["payment_list"], xlsx(rows), "a.xlsx", pepper=PEPPER)
    assert parsed.errors == []
    assert parsed.rows[0]["id_hash"] == hash_id_number(ID_A, PEPPER)
    assert parsed.rows[1]["id_hash"] == hash_id_number(ID_B, PEPPER)


def test_wrong_check_digit_refused_with_row_and_column() -> None:
    rows = pay_rows()
    rows[2][3] = ID_BAD
    rows[0][3] = "身份证号码"
    parsed = parse(FORMATS["payment_list"], xlsx(rows), "a.xlsx", pepper=PEPPER)
    assert parsed.errors == [RowError(6, "身份证号码", "证件号码校验位错误", "110101***********5")]
    assert [r["_row"] for r in parsed.rows] == [5, 7]


def test_an_id_excel_stored_as_a_number_is_refused() -> None:
    rows = pay_rows()
    rows[1][3] = float(ID_A)  # Excel keeps 15 significant digits
    rows[2][4] = float(CARD_B)
    parsed = parse(FORMATS["payment_list"], xlsx(rows), "a.xlsx", pepper=PEPPER)
    rules = {(e.row, e.column): e.rule for e in parsed.errors}
    assert rules == {(5, "证件号码"): "证件号码被Excel存为数字，已丢失末位，请设为文本格式重新导出",
                     (6, "银行卡号"): "银行卡号被Excel存为数字，已丢失末位，请设为文本格式重新导出"}
    assert parsed.errors[0].value.startswith("110101*")


def test_duplicate_rows_are_errors_naming_the_first() -> None:
    rows = pay_rows()
    rows.append(["4", "H001", "张三", ID_A, CARD_A, "5", ""])  # same household again
    rows.append(["5", "H009", "赵六", ID_B, CARD_B, "5", ""])  # same payee under another code
    parsed = parse(FORMATS["payment_list"], xlsx(rows, title=False), "a.xlsx", pepper=PEPPER)
    assert [(e.row, e.column, e.rule) for e in parsed.errors] == [
        (5, "户编号", "重复行：与第2行重复"), (6, "证件号码", "重复行：与第3行重复")]
    assert parsed.errors[1].value == "110101***********X"
    assert len(parsed.rows) == 3


def test_missing_required_column_refuses_the_file() -> None:
    rows = [[c for c in row if c != "x"] for row in pay_rows()]
    for row in rows:
        del row[4]  # 银行卡号
    with pytest.raises(FileRefused, match="缺少必填列：银行卡号"):
        parse(FORMATS["payment_list"], xlsx(rows), "a.xlsx", pepper=PEPPER)


@pytest.mark.parametrize(("cell", "fen", "rule"), [
    ("1,234.56", 123456, None), (1234.5, 123450, None), ("￥12.30元", 1230, None),
    (0.1 + 0.2, 30, None), (100, 10000, None), ("1.234", None, "金额须为非负且最多两位小数"),
    ("-5", None, "金额须为非负且最多两位小数"), ("壹佰", None, "金额格式错误（应为数字，如1234.56）")])
def test_money_becomes_integer_fen_exactly(cell: Any, fen: int | None, rule: str | None) -> None:
    rows = pay_rows()[:2]
    rows[1][5] = cell
    parsed = parse(FORMATS["payment_list"], xlsx(rows), "a.xlsx", pepper=PEPPER)
    assert [r["amount_fen"] for r in parsed.rows] == ([fen] if fen is not None else [])
    assert [e.rule for e in parsed.errors] == ([rule] if rule else [])


def roster_rows() -> list[list[Any]]:
    return [list(ROSTER_HEAD),
            ["XX县", "城关镇", "东村", "H001", "P001", "张三", ID_A, "户主", "因病", "3,500.00",
             "低保户", "2014", None],
            ["XX县", "城关镇", "东村", "H001", "P002", "李四", ID_B, "配偶", None, None, None,
             None, None],
            ["XX县", "城关镇", "东村", "H001", "P003", "张小三", ID_C, "之子", None, None, None,
             None, "2019年"],
            ["合计", None, None, None, None, None, None, None, None, "3500", None, None, None],
            ["制表人：某某", None, None, None, None, "审核人：某某"]]


def test_roster_codes_and_the_total_row_skipped() -> None:
    parsed = parse(FORMATS["roster"], xlsx(roster_rows()), "花名册.xlsx", pepper=PEPPER)
    assert parsed.errors == []
    head, spouse, child = parsed.rows
    assert (head["relation"], head["main_cause"], head["household_type"]) == (
        "head", "illness", "dibao")
    assert (head["income_per_capita_fen"], head["identified_year"], head["township"]) == (
        350000, 2014, "城关镇")
    assert (spouse["relation"], child["relation"], child["exit_year"]) == ("spouse", "child", 2019)
    assert parsed.skipped == [(8, "合计行"), (9, "表尾签字栏")]


def test_roster_unknown_relation_and_a_person_twice() -> None:
    rows = roster_rows()[:4]
    rows[2][7] = "表哥"
    rows.append(["XX县", "城关镇", "西村", "H002", "P009", "张三", ID_A, "户主", "因学", "100",
                 "一般户", "2015-06-01", None])
    parsed = parse(FORMATS["roster"], xlsx(rows), "花名册.xlsx", pepper=PEPPER)
    assert [(e.row, e.column) for e in parsed.errors] == [(6, "与户主关系"), (8, "证件号码")]
    assert parsed.errors[0].rule.startswith("取值须为：户主、配偶、")
    assert parsed.errors[1].rule == "重复行：与第5行重复"


def test_bank_return_results_and_failure_reason_required() -> None:
    rows = [["序号", "户名", "卡号", "金额", "处理结果", "失败原因", "交易流水号", "入账日期"],
            ["1", "张三", CARD_A, "1234.56", "成功", None, "T1", "2024/3/1"],
            ["2", "李四", CARD_B, "800.00", "失败", "账户已销户", "T2", None],
            ["3", "王五", CARD_C, "0.50", "失败", None, "T3", dt.datetime(2024, 3, 2)],
            ["4", "赵六", CARD_C, "0.50", "成功", None, "T1", "20240302"]]
    parsed = parse(FORMATS["bank_return"], xlsx(rows, title=False), "回盘.xlsx", pepper=PEPPER)
    assert [(r["result"], r["credited_on"]) for r in parsed.rows] == [
        ("ok", dt.date(2024, 3, 1)), ("failed", None)]
    assert [(e.row, e.column, e.rule) for e in parsed.errors] == [
        (4, "处理结果", "处理结果为失败时须填写失败原因"), (5, "交易流水号", "重复行：与第2行重复")]


def test_errors_are_truncated_after_max_errors() -> None:
    rows = [list(PAY_HEAD)] + [[str(i), f"H{i}", "某", ID_BAD, CARD_A, "1", ""] for i in range(30)]
    parsed = parse(FORMATS["payment_list"], xlsx(rows), "a.xlsx", pepper=PEPPER, max_errors=5)
    assert len(parsed.errors) == 6 and parsed.truncated
    assert parsed.errors[-1].rule == "错误超过5条，其余错误未列出"
    assert summary(parsed)["rows_refused"] == 30


# --- the errors handed back, and the clear ID kept nowhere ----------------------------------

def bad_file() -> bytes:
    rows = pay_rows()
    rows[1][3] = ID_BAD
    rows[2][5] = "1.005"
    rows.append(["4", "H004", "孙七", ID_A15 + "9", "12345", "1", ""])
    return text_file(rows, "gbk")


def test_errors_workbook_read_back_cell_by_cell() -> None:
    parsed = parse(FORMATS["payment_list"], bad_file(), "清册.csv", pepper=PEPPER)
    data = errors_workbook(parsed, today=dt.date(2024, 3, 5))
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0][0] == "导入错误清单"
    assert "清册.csv" in values[1][0] and parsed.table.sha256 in values[1][0]
    assert "2024-03-05" in values[1][0]
    assert values[2] == ["行号", "列", "错误说明", "原值"]
    assert values[3:] == [
        ["4", "证件号码", "证件号码校验位错误", "110101***********5"],
        ["5", "发放金额（元）", "金额须为非负且最多两位小数", "1.005"],
        ["7", "证件号码", "证件号码须为18位（或15位一代证）", "110101*********9"],
        ["7", "银行卡号", "银行卡号须为12至30位数字", "*2345"]]
    assert all(isinstance(v, str) for row in values[2:] for v in row)
    assert sheet.column_dimensions["C"].width == 60
    lines = errors_csv(parsed).decode("utf-8-sig").splitlines()
    assert lines[0] == "行号,列,错误说明,原值" and lines[1] == "4,证件号码,证件号码校验位错误,110101***********5"
    assert errors_csv(parsed).startswith(b"\xef\xbb\xbf")


def test_the_clear_id_number_is_kept_nowhere() -> None:
    parsed = parse(FORMATS["payment_list"], bad_file(), "清册.csv", pepper=PEPPER)
    clear = [ID_A, ID_B, ID_C, ID_BAD, ID_A15, CARD_A, CARD_B, CARD_C]
    everything = repr(parsed) + repr(summary(parsed))
    book = errors_workbook(parsed)
    with io.BytesIO(book) as raw:
        cells = [v for r in openpyxl.load_workbook(raw).active.iter_rows(values_only=True)
                 for v in r]
    exported = repr(cells) + errors_csv(parsed).decode("utf-8-sig")
    for number in clear:
        assert number not in everything and number not in exported
        assert number.encode() not in book
    assert ID_B[:6] in everything  # the masked forms are there (the test would see them)


def test_summary_of_a_dry_run() -> None:
    parsed = parse(FORMATS["payment_list"], bad_file(), "清册.csv", pepper=PEPPER)
    report = summary(parsed)
    assert {k: report[k] for k in ("rows_read", "rows_valid", "rows_refused", "errors",
                                   "encoding", "header_row")} == {
        "rows_read": 4, "rows_valid": 1, "rows_refused": 3, "errors": 4,
        "encoding": "gb18030", "header_row": 3}
    assert report["totals_fen"] == {"amount_fen": 50} and len(report["sha256"]) == 64
