"""Files in the shapes offices send (花名册, 发放清册, 回盘) and a world to import them into.

The households of ``a_paying_world`` have ID numbers made here (valid check digits and
birth dates, so the file checks pass), known in clear only to the tests: the tests look
for them in the store, the logs and the answers and must never find them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import openpyxl
from factories import (
    COUNTY,
    OTHER_VILLAGE,
    TOWNSHIP,
    VILLAGE,
    World,
    a_funded_account,
    a_registered_household,
    application,
    key_for,
    official,
    official_id,
    removal,
    run,
)

from domain.identity import check_digit
from domain.signing import Role

D = dt.date
PAY_DAY = D(2025, 7, 1)
REMOVED_ON = D(2025, 6, 1)


def id18(n: int, born: str = "19800101") -> str:
    first17 = f"522625{born}{n:03d}"
    return first17 + check_digit(first17)


def id15(n: int) -> str:
    """The first-generation number of ``id18(n)`` (born 1980-01-01)."""
    return f"522625800101{n:03d}"


def wrong_check(n: int) -> str:
    good = id18(n)
    return good[:17] + ("0" if good[17] != "0" else "1")


def card(n: int) -> str:
    return f"62170000{n:08d}"


def members(world: World, code: str, n: int) -> list[dict[str, Any]]:
    return [{"name": f"{code}户主", "relation": "head",
             "id_number_hash": world.app.hash_id(id18(n))},
            {"name": f"{code}配偶", "relation": "spouse",
             "id_number_hash": world.app.hash_id(id18(n + 100))}]


def a_paying_world(world: World) -> dict[str, Any]:
    """A funded township account; H001–H004 registered (heads id18(1..4)), H005 removed on
    2025-06-01 (head id18(5))."""
    account = a_funded_account(world, TOWNSHIP, 5_000_000)
    households = {}
    for n in range(1, 6):
        code = f"H00{n}"
        households[code] = a_registered_household(world, code, members=members(world, code, n))
    run(world, "Household.RemovedFromRegister", households["H005"], removal(REMOVED_ON))
    return {"account": str(account), "households": households}


PAY_HEAD = ["序号", "户编号", "户主姓名", "证件号码", "银行卡号", "发放金额（元）", "备注"]


def pay_rows(*, bad: bool = True) -> list[list[Any]]:
    """Rows of a 发放清册 (header first).  With ``bad``: a wrong check digit (row 3 of the
    list), H001 twice, and H005 (removed before the payment date)."""
    rows = [PAY_HEAD,
            ["1", "H001", "H001户主", id18(1), card(1), "1,000.00", ""],
            ["2", "H002", "H002户主", id15(2), card(2), "1200.5", "一代证"]]
    if bad:
        rows += [["3", "H003", "H003户主", wrong_check(3), card(3), "800", "校验位错"],
                 ["4", "H001", "H001户主", id18(1), card(1), "1000", "重复"],
                 ["5", "H005", "H005户主", id18(5), card(5), "500", "已清退"]]
    else:
        rows += [["3", "H003", "H003户主", id18(3), card(3), "800", ""]]
    rows += [["6", "", "H004户主", id18(4), card(4), "300.00", "只有证件号码"],
             ["合计", None, None, None, None, None, None]]
    return rows


def _csv(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(
        [["" if c is None else str(c) for c in row] for row in rows])
    return out.getvalue()


def gbk_csv(rows: list[list[Any]], title: str = "羊场镇2025年产业扶持到户补助发放清册") -> bytes:
    head = [[title], ["填报单位：羊场镇财政所", "", "", "日期：2025年7月1日"]]
    return _csv(head + rows).encode("gbk")


ROSTER_HEAD = ["县", "乡（镇）", "村", "户编号", "人编号", "姓名", "证件号码", "与户主关系",
               "致贫原因", "人均纯收入（元）", "户类型", "首次识别时间", "脱贫年度"]


def roster_rows(*, with_bad: bool = False) -> list[list[Any]]:
    """Three new households (3, 2 and 4 persons), H001 as on record (已存在), H002 with
    another income (差异).  ``with_bad``: a village not in the county and a bad ID."""
    def person(hh: str, village: str, n: int, name: str, rel: str, head: bool,
               exit_year: Any = None, income: str = "2500", ident: Any = 2016) -> list[Any]:
        return ["镇远县", "羊场镇", village, hh, f"{hh}-{n:02d}", name, id18(n + 200 if hh.startswith("GJ")
                else n), rel, "因病" if head else None, income if head else None,
                "一般户" if head else None, ident if head else None, exit_year if head else None]

    rows = [ROSTER_HEAD,
            person("GJ001", "坪地村", 1, "赵大", "户主", True),
            person("GJ001", "坪地村", 2, "钱二", "配偶", False),
            person("GJ001", "坪地村", 3, "赵小", "之子", False),
            person("GJ002", "高坡村", 4, "孙三", "户主", True, exit_year=2019),
            person("GJ002", "高坡村", 5, "李四", "妻", False),
            person("GJ003", "坪地村", 6, "周五", "户主", True, income="3,100.00"),
            person("GJ003", "坪地村", 7, "吴六", "配偶", False),
            person("GJ003", "坪地村", 8, "周七", "之女", False),
            person("GJ003", "坪地村", 9, "郑八", "之父", False)]
    # already on record: H001 exactly as applied (application(): income 2,500.00, 因病)
    rows += [["镇远县", "羊场镇", "坪地村", "H001", "H001-01", "H001户主", id18(1), "户主", "因病",
              "2500", "一般户", 2016, None],
             ["镇远县", "羊场镇", "坪地村", "H001", "H001-02", "H001配偶", id18(101), "配偶", None,
              None, None, None, None],
             ["镇远县", "羊场镇", "坪地村", "H002", "H002-01", "H002户主", id18(2), "户主", "因病",
              "9999", "一般户", 2016, None],
             ["镇远县", "羊场镇", "坪地村", "H002", "H002-02", "H002配偶", id18(102), "配偶", None,
              None, None, None, None]]
    if with_bad:
        rows += [["镇远县", "羊场镇", "不存在村", "GJ009", "GJ009-01", "王九", id18(290), "户主",
                  "因病", "2000", "一般户", 2017, None],
                 ["镇远县", "羊场镇", "坪地村", "GJ010", "GJ010-01", "冯十", wrong_check(291),
                  "户主", "因残", "2000", "一般户", 2017, None]]
    return rows


def xlsx(rows: list[list[Any]], title: str = "镇远县脱贫人口花名册") -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "花名册"
    sheet.append([title])
    sheet.append(["填报单位：镇远县乡村振兴局", None, None, "日期：2025年6月30日"])
    for row in rows:
        sheet.append(row)
    for cells in sheet.iter_rows(min_row=3):  # ID numbers typed as text, as offices do
        for cell in cells:
            cell.number_format = "@"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


RETURN_HEAD = ["序号", "户名", "证件号码", "银行卡号", "金额", "处理结果", "失败原因", "交易流水号"]


def return_rows(*, failed_code: str = "H002", missing: bool = False) -> list[list[Any]]:
    """A 回盘 answering the fixed 发放清册: every row 成功 but ``failed_code``'s (账户已销户)."""
    list_rows = [r for r in pay_rows(bad=False)[1:] if r[0] != "合计"]
    out = [RETURN_HEAD]
    for r in list_rows:
        if missing and r[1] == "H003":
            continue
        failed = r[1] == failed_code
        n = int(r[4][-3:])
        out.append([r[0], r[2], id18(n), r[4], r[5].replace(",", ""),
                    "失败" if failed else "成功", "账户已销户" if failed else "",
                    f"B2025070{r[0]}"])
    return out


def utf8_csv(rows: list[list[Any]]) -> bytes:
    return _csv([["中国农业银行代发业务回盘文件"], *rows]).encode("utf-8-sig")


# signing a draft as three officials would ---------------------------------------------
TOWNSHIP_SIGNERS = [(official("finance_accountant", TOWNSHIP), Role.PREPARER),
                    (official("head", TOWNSHIP), Role.REVIEWER),
                    (official("party_secretary", TOWNSHIP), Role.APPROVER)]
COUNTY_SIGNERS = [(official("poverty_staff", COUNTY), Role.PREPARER),
                  (official("poverty_director", COUNTY), Role.REVIEWER),
                  (official("deputy_magistrate", COUNTY), Role.APPROVER)]


def signatures_for(step: str, subject: str, content: dict[str, Any],
                   signers: list[tuple[str, Role]]) -> list[dict[str, str]]:
    """Each official signs the draft's exact content on their own machine."""
    return [key_for(code).sign_step(step, subject, content, official_id(code), role).as_dict()
            for code, role in signers]


CLEAR_IDS = [id18(n) for n in (1, 2, 3, 4, 5, 101, 102)] + [id15(2)] + [
    id18(n + 200) for n in range(1, 10)]

__all__ = ["VILLAGE", "OTHER_VILLAGE", "application"]
