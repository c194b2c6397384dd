"""The offices' file formats (导入格式) and the checking of their rows (逐行校验).

A :class:`Format` lists its columns: the Chinese header names accepted for each (the
first is the canonical one), the kind of value and whether the column must be there.
:func:`parse` reads a file with ``exchange.files.read_table``, finds each column by its
header (spaces, "*" marks and a "（元）" unit ignored), refuses the file if a required
column is missing, then checks every row and gives the valid rows as dicts and the others
as :class:`RowError` (row number, column as found, the rule in Chinese, the value masked).

ID numbers (公民身份号码) are normalised (15 digits become 18, the check digit and the birth
date are checked) and kept only as ``hash_id_number(number, pepper)`` and a masked form;
bank accounts likewise.  The clear number is in no row, no error and no summary.  Amounts in
元 become integer fen exactly (``Decimal``, never float arithmetic).  The formats and their
columns are listed in docs/EXCHANGE.md.  Nothing is stored here: callers group, match and
record the rows (one row per person in a 花名册: the caller groups them by 户编号).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.errors import InvalidInput
from domain.identity import (
    birth_date_of,
    hash_bank_account,
    hash_id_number,
    id_number_from_15,
    mask_id_number,
)
from exchange.files import FileRefused, Table, normalise_header, not_data, read_table
from exchange.labels import CAUSE_ZH

KINDS = frozenset({"text", "id_number", "money_yuan", "date", "int", "bank_account", "choice",
                   "decimal", "year"})
MAX_TEXT = 200


@dataclass(frozen=True)
class ColumnSpec:
    """One column: ``field`` (English) and the Chinese header ``names`` accepted.

    ``required``: the column must be in the file and every row must fill it, unless
    ``blank_ok`` (the column must be there, a cell may be empty)."""

    field: str
    names: tuple[str, ...]
    kind: str
    required: bool = True
    choices: Mapping[str, str] | None = None  # for 'choice': Chinese value -> stored code
    blank_ok: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}")

    @property
    def masked_field(self) -> str:
        """Where an ID or bank number's masked form goes: ``id_hash`` -> ``id_masked``."""
        return self.field.removesuffix("_hash") + "_masked"


@dataclass(frozen=True)
class RowError:
    """A refused cell or row: file row number, column as found in the file, the rule broken
    (Chinese), the value (masked for ID and bank numbers)."""

    row: int
    column: str | None
    rule: str
    value: str | None


RowCheck = Callable[[dict[str, Any], dict[str, str]], list[tuple[str | None, str]]]


@dataclass(frozen=True)
class Format:
    """An office format: its columns, and the fields that identify a row (each checked on
    its own: a value seen twice in one of them is a repeated row, 重复行)."""

    key: str
    title: str
    columns: tuple[ColumnSpec, ...]
    key_fields: tuple[str, ...] = ()
    row_check: RowCheck | None = field(default=None, compare=False)

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.field == name)


@dataclass
class Parsed:
    """A file read against a format: its valid rows (each with ``_row``, the file's row
    number) and the errors of the others.  ``table.rows`` is spent (empty)."""

    table: Table
    format: Format
    rows: list[dict[str, Any]]
    errors: list[RowError]
    ignored_columns: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # field -> header as found
    skipped: list[tuple[int, str]] = field(default_factory=list)  # 合计 / 表尾 rows
    rows_read: int = 0
    truncated: bool = False


class _Bad(Exception):  # a cell refused: the rule (Chinese) and the value masked
    def __init__(self, rule: str, value: str | None = None):
        super().__init__(rule)
        self.rule, self.value = rule, value


# --- values ------------------------------------------------------------------------------

_FULL_WIDTH = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789XX")
_SPACE = re.compile(r"[\s\u3000]+")
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T].*)?$")
_YEAR = re.compile(r"^(\d{4})\s*年?(?:度)?$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_EXCEL_EPOCH = dt.date(1899, 12, 30)
STORED_AS_NUMBER = "{what}被Excel存为数字，已丢失末位，请设为文本格式重新导出"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A value as the office sees it in its cell (for text and error messages)."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else format(value, ".15g")
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def mask_digits(text: str) -> str:
    """An ID-like value that failed its checks, masked as ID numbers are (region prefix and
    last character kept)."""
    if len(text) == 18:
        return mask_id_number(text)
    return text[:6] + "*" * (len(text) - 7) + text[-1] if len(text) >= 10 else "*" * len(text)


def mask_account(digits: str) -> str:
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def _digits_of(value: Any, what: str, mask: Callable[[str], str]) -> str:
    if _is_number(value):
        whole = int(value)
        if (isinstance(value, float) and not value.is_integer()) or abs(whole) >= 10**15:
            raise _Bad(STORED_AS_NUMBER.format(what=what), mask(str(abs(whole))))
        return str(whole)
    return _SPACE.sub("", str(value)).lstrip("'").translate(_FULL_WIDTH).upper()


def _id_number(value: Any, pepper: bytes) -> tuple[str, str]:
    text = _digits_of(value, "证件号码", mask_digits)
    if len(text) == 15 and text.isdigit():
        text = id_number_from_15(text)
    if len(text) != 18 or not text[:17].isdigit() or not (text[17].isdigit() or text[17] == "X"):
        raise _Bad("证件号码须为18位（或15位一代证）", mask_digits(text))
    born = birth_date_of(text)
    if born is None or born.year < 1900 or born > dt.date.today():
        raise _Bad("证件号码中的出生日期无效", mask_digits(text))
    try:  # hash_id_number checks the check digit (GB 11643) before hashing
        return hash_id_number(text, pepper), mask_id_number(text)
    except InvalidInput:
        raise _Bad("证件号码校验位错误", mask_digits(text)) from None


def _bank_account(value: Any, pepper: bytes) -> tuple[str, str]:
    text = _digits_of(value, "银行卡号", mask_account).replace("-", "")
    if not (12 <= len(text) <= 30 and text.isdigit()):
        raise _Bad("银行卡号须为12至30位数字", mask_account(text))
    return hash_bank_account(text, pepper), mask_account(text)


def _decimal(value: Any, rule: str) -> Decimal:
    if isinstance(value, bool):
        raise _Bad(rule, str(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):  # as Excel shows it: 15 significant digits
        return Decimal(format(value, ".15g"))
    text = _SPACE.sub("", str(value)).replace(",", "").replace("，", "")
    text = text.lstrip("¥￥").removesuffix("元")
    if not _NUMBER.match(text):
        raise _Bad(rule, _shown(value))
    return Decimal(text)


def _money_fen(value: Any) -> int:
    amount = _decimal(value, "金额格式错误（应为数字，如1234.56）")
    fen = amount * 100
    if amount < 0 or fen != fen.to_integral_value():
        raise _Bad("金额须为非负且最多两位小数", _shown(value))
    return int(fen)


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    bad = _Bad("日期格式错误（应为2024-03-01、2024/3/1、2024年3月1日或20240301）", _shown(value))
    if _is_number(value):
        if float(value).is_integer() and 19000101 <= value <= 21001231:
            value = str(int(value))
        elif 1 <= value < 73051:  # an Excel serial day number (before 2100)
            return _EXCEL_EPOCH + dt.timedelta(days=int(value))
        else:
            raise bad
    text = str(value).strip()
    found = _DATE.match(text) or re.match(r"^(\d{4})(\d{2})(\d{2})$", text)
    if not found:
        raise bad
    try:
        return dt.date(*(int(g) for g in found.groups()))
    except ValueError:
        raise bad from None


def _year(value: Any) -> int:
    bad = _Bad("年度格式错误（应为如2014或2014年）", _shown(value))
    if isinstance(value, dt.date):
        year = value.year
    elif _is_number(value):
        if not float(value).is_integer():
            raise bad
        year = int(value)
    else:
        found = _YEAR.match(str(value).strip())
        year = int(found.group(1)) if found else _date(value).year
    if not 1900 <= year <= 2100:
        raise bad
    return year


def _int(value: Any) -> int:
    number = _decimal(value, "须为整数")
    if number != number.to_integral_value():
        raise _Bad("须为整数", _shown(value))
    return int(number)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e15:
        raise _Bad("数字位数过长，被Excel存为数字已丢失精度，请设为文本格式重新导出", _shown(value))
    text = _shown(value)
    if len(text) > MAX_TEXT:
        raise _Bad(f"内容过长（不超过{MAX_TEXT}字）", text[:20] + "…")
    return text


def _choice(spec: ColumnSpec, value: Any) -> str:
    choices = spec.choices or {}
    text = _SPACE.sub("", _shown(value))
    if text in choices:
        return choices[text]
    if text in choices.values():
        return text
    canonical: dict[str, str] = {}
    for name, code in choices.items():
        canonical.setdefault(code, name)
    raise _Bad(f"取值须为：{'、'.join(canonical.values())}", text)


_SIMPLE: dict[str, Callable[[ColumnSpec, Any], Any]] = {
    "text": lambda _, v: _text(v), "money_yuan": lambda _, v: _money_fen(v),
    "date": lambda _, v: _date(v), "int": lambda _, v: _int(v), "year": lambda _, v: _year(v),
    "decimal": lambda _, v: _decimal(v, "须为数字"), "choice": _choice}


def _convert(spec: ColumnSpec, value: Any, pepper: bytes) -> dict[str, Any]:
    """One cell's value under its column's kind, as the fields it fills; raises ``_Bad``."""
    if spec.kind in {"id_number", "bank_account"}:
        hashed, masked = (_id_number if spec.kind == "id_number" else _bank_account)(value, pepper)
        return {spec.field: hashed, spec.masked_field: masked}
    return {spec.field: _SIMPLE[spec.kind](spec, value)}


def _empty(spec: ColumnSpec) -> dict[str, Any]:
    masked = spec.kind in {"id_number", "bank_account"}
    return {spec.field: None, **({spec.masked_field: None} if masked else {})}


# --- parse -------------------------------------------------------------------------------

def _locate(fmt: Format, table: Table) -> tuple[dict[str, int], list[str]]:
    found = [normalise_header(h) for h in table.headers]
    where: dict[str, int] = {}
    for spec in fmt.columns:
        for name in spec.names:
            key = normalise_header(name)
            index = next((i for i, h in enumerate(found)
                          if h == key and i not in where.values()), None)
            if index is not None:
                where[spec.field] = index
                break
    missing = [s.names[0] for s in fmt.columns if s.required and s.field not in where]
    if missing:
        raise FileRefused(table.filename, f"缺少必填列：{'、'.join(missing)}",
                          f"required column(s) missing: {', '.join(missing)}",
                          missing=missing, headers=table.headers)
    ignored = [h for i, h in enumerate(table.headers) if h and i not in where.values()]
    return where, ignored


def parse(fmt: Format, data: bytes, filename: str, *, pepper: bytes, sheet: str | None = None,
          max_errors: int = 10_000) -> Parsed:
    """Read ``data`` as a file of format ``fmt``: the valid rows and the row errors.

    Refuses the whole file (``FileRefused``) if it cannot be read, has no header row or
    lacks a required column; stops collecting errors after ``max_errors`` (one last error
    says so) but still reads every row."""
    expect = [name for spec in fmt.columns for name in spec.names]
    table = read_table(data, filename, expect=expect, sheet=sheet)
    where, ignored = _locate(fmt, table)
    header_of = {f: table.headers[i] for f, i in where.items()}
    parsed = Parsed(table=dataclasses.replace(table, rows=iter(())), format=fmt, rows=[],
                    errors=[], ignored_columns=ignored, columns=header_of)
    seen: dict[str, dict[Any, int]] = {k: {} for k in fmt.key_fields if k in where}

    def refuse(row: int, column: str | None, rule: str, value: str | None) -> None:
        if len(parsed.errors) < max_errors:
            parsed.errors.append(RowError(row, column, rule, value))
        elif not parsed.truncated:
            parsed.truncated = True
            parsed.errors.append(RowError(row, None, f"错误超过{max_errors}条，其余错误未列出", None))

    for number, cells in table.rows:
        reason = not_data(cells)
        if reason:
            parsed.skipped.append((number, reason))
            continue
        parsed.rows_read += 1
        row, problems = _check_row(fmt, where, header_of, number, cells, pepper)
        if not problems:
            problems = _repeated(fmt, row, seen, header_of)
        for column, rule, value in problems:
            refuse(number, column, rule, value)
        if not problems:
            for key_field, firsts in seen.items():
                if row.get(key_field) is not None:
                    firsts[row[key_field]] = number
            parsed.rows.append(row)
    return parsed


Problem = tuple[str | None, str, str | None]  # column as found, rule, masked value


def _check_row(fmt: Format, where: dict[str, int], header_of: dict[str, str], number: int,
               cells: list[Any], pepper: bytes) -> tuple[dict[str, Any], list[Problem]]:
    row: dict[str, Any] = {"_row": number}
    problems: list[Problem] = []
    for spec in fmt.columns:
        index = where.get(spec.field)
        value = cells[index] if index is not None and index < len(cells) else None
        if value is not None and not (isinstance(value, str) and not value.strip()):
            try:
                row.update(_convert(spec, value, pepper))
                continue
            except _Bad as exc:
                problems.append((header_of.get(spec.field), exc.rule, exc.value))
        elif spec.required and not spec.blank_ok:
            problems.append((header_of[spec.field], f"{spec.names[0]}不能为空", None))
        row.update(_empty(spec))
    if not problems and fmt.row_check:
        problems = [(header_of.get(f) if f else None, rule, None)
                    for f, rule in fmt.row_check(row, header_of)]
    return row, problems


def _repeated(fmt: Format, row: dict[str, Any], seen: dict[str, dict[Any, int]],
              header_of: dict[str, str]) -> list[Problem]:
    for key_field, firsts in seen.items():
        key = row.get(key_field)
        if key is not None and key in firsts:
            spec = fmt.column(key_field)
            shown = row[spec.masked_field] if spec.kind in {"id_number", "bank_account"} else key
            return [(header_of[key_field], f"重复行：与第{firsts[key]}行重复", shown)]
    return []


# --- the formats -------------------------------------------------------------------------


def _words(codes: Mapping[str, str]) -> dict[str, str]:
    """``{"head": "户主 本人"}`` -> ``{"户主": "head", "本人": "head"}``: the first word of
    each code is the canonical one, named in errors."""
    return {word: code for code, words in codes.items() for word in words.split()}


RELATIONS = _words({
    "head": "户主 本人", "spouse": "配偶 妻 夫 妻子 丈夫",
    "child": "之子 之女 子 女 儿子 女儿 子女 养子 养女 继子 继女",
    "grandchild": "之孙子 之孙女 孙子 孙女 之外孙子 之外孙女 外孙子 外孙女",
    "parent": "之父 之母 父亲 母亲", "grandparent": "之祖父 之祖母 之外祖父 之外祖母",
    "sibling": "兄弟姐妹 之兄弟姐妹 兄 弟 姐 妹", "child_in_law": "之儿媳 之女婿 儿媳 女婿",
    "other": "其他 其他亲属 非亲属"})
CAUSES = {**{zh: code for code, zh in CAUSE_ZH.items()},
          **{f"{zh}致贫": code for code, zh in CAUSE_ZH.items() if zh.startswith("因")},
          "自身发展力不足": "lack_of_motivation", "交通落后": "poor_transport"}
HOUSEHOLD_TYPES = _words({
    "general": "一般户 一般贫困户 一般农户", "dibao": "低保户 低保贫困户",
    "tekun": "特困供养户 特困户 特困供养贫困户 五保户 五保贫困户 分散供养特困人员"})
BANK_RESULTS = _words({"ok": "成功 交易成功 处理成功 已入账 入账成功",
                       "failed": "失败 交易失败 处理失败 退回 入账失败"})

_ID_NAMES = ("证件号码", "身份证号码", "身份证号", "公民身份号码", "身份证件号码")
_BANK_NAMES = ("银行卡号", "一卡通账号", "银行账号", "卡号", "账号", "社保卡号", "收款账号")


def _roster_check(row: dict[str, Any], _: dict[str, str]) -> list[tuple[str | None, str]]:
    """The household's own columns must be filled at least on the head's (户主) row."""
    if row.get("relation") != "head":
        return []
    needed = (("main_cause", "致贫原因"), ("income_per_capita_fen", "人均纯收入"),
              ("household_type", "户类型"), ("identified_year", "首次识别时间"))
    return [(f, f"户主行须填写{zh}") for f, zh in needed if row.get(f) is None]


def _bank_return_check(row: dict[str, Any], _: dict[str, str]) -> list[tuple[str | None, str]]:
    if row.get("result") == "failed" and not row.get("failure_reason"):
        return [("result", "处理结果为失败时须填写失败原因")]
    return []


ROSTER = Format(
    key="roster", title="花名册（全国防返贫监测信息系统导出）",
    columns=(
        ColumnSpec("county", ("县", "县(市、区)", "县(区)", "县区", "县(市)"), "text", required=False),
        ColumnSpec("township", ("乡(镇)", "乡镇", "乡(镇、街道)", "乡镇(街道)"), "text"),
        ColumnSpec("village", ("村", "行政村", "村(社区)"), "text"),
        ColumnSpec("village_code", ("村代码", "行政区划代码", "村行政区划代码"), "text",
                   required=False),
        ColumnSpec("household_code", ("户编号", "户码"), "text"),
        ColumnSpec("person_code", ("人编号", "人员编号"), "text", required=False),
        ColumnSpec("name", ("姓名",), "text"),
        ColumnSpec("id_hash", _ID_NAMES, "id_number"),
        ColumnSpec("relation", ("与户主关系",), "choice", choices=RELATIONS),
        ColumnSpec("main_cause", ("致贫原因", "主要致贫原因"), "choice", choices=CAUSES,
                   blank_ok=True),
        ColumnSpec("income_per_capita_fen", ("人均纯收入", "家庭人均纯收入", "人均收入"),
                   "money_yuan", blank_ok=True),
        ColumnSpec("household_type", ("户类型", "贫困户属性", "户属性"), "choice",
                   choices=HOUSEHOLD_TYPES, blank_ok=True),
        ColumnSpec("identified_year", ("首次识别时间", "识别时间", "识别年度"), "year",
                   blank_ok=True),
        ColumnSpec("exit_year", ("脱贫年度", "脱贫时间", "脱贫年份"), "year", required=False),
    ),
    key_fields=("person_code", "id_hash"), row_check=_roster_check)

PAYMENT_LIST = Format(
    key="payment_list", title="发放清册（分户清单）",
    columns=(
        ColumnSpec("seq", ("序号",), "int", required=False),
        ColumnSpec("household_code", ("户编号", "户码"), "text", required=False),
        ColumnSpec("head_id_hash", ("户主证件号码", "户主身份证号码", "户主身份证号"),
                   "id_number", required=False),
        ColumnSpec("name", ("姓名", "户主姓名", "收款人姓名", "收款人"), "text"),
        ColumnSpec("id_hash", _ID_NAMES + ("收款人证件号码", "收款人身份证号码"), "id_number"),
        ColumnSpec("bank_account_hash", _BANK_NAMES, "bank_account"),
        ColumnSpec("bank_name", ("开户行", "开户银行", "开户行名称"), "text", required=False),
        ColumnSpec("amount_fen", ("发放金额", "金额", "补贴金额", "应发金额", "实发金额"),
                   "money_yuan"),
        ColumnSpec("purpose", ("项目", "资金用途", "项目名称", "补贴项目"), "text", required=False),
        ColumnSpec("note", ("备注",), "text", required=False),
    ),
    key_fields=("household_code", "head_id_hash", "id_hash"))

BANK_RETURN = Format(
    key="bank_return", title="银行回盘",
    columns=(
        ColumnSpec("seq", ("序号",), "int", required=False),
        ColumnSpec("name", ("姓名", "户名", "账户名称", "收款人"), "text"),
        ColumnSpec("id_hash", _ID_NAMES, "id_number", required=False),
        ColumnSpec("bank_account_hash", _BANK_NAMES, "bank_account"),
        ColumnSpec("amount_fen", ("金额", "发放金额", "交易金额", "入账金额"), "money_yuan"),
        ColumnSpec("result", ("处理结果", "交易结果", "处理状态", "状态"), "choice",
                   choices=BANK_RESULTS),
        ColumnSpec("failure_reason", ("失败原因", "错误原因", "原因"), "text", required=False),
        ColumnSpec("serial", ("交易流水号", "流水号"), "text", required=False),
        ColumnSpec("credited_on", ("入账日期", "交易日期", "处理日期"), "date", required=False),
    ),
    key_fields=("serial",), row_check=_bank_return_check)

FORMATS: dict[str, Format] = {f.key: f for f in (ROSTER, PAYMENT_LIST, BANK_RETURN)}
