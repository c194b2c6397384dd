"""How a ledger (台账) is laid out, and written as .xlsx or CSV.

A ``Ledger`` is a title, the 填报单位 (a region's name and code), the 填报日期 and one or
more ``Sheet``\\ s.  A sheet is a list of ``Column``\\ s, each of one kind, and rows of plain
values — money always as integer fen, dates as ``date`` or ISO strings — plus the 合计 row
and notes.  The layout is decided here once, for every ledger:

* the workbook (written by XlsxWriter, streamed): row 1 the title (merged across the table), row 2 ``填报单位：…`` and
  ``填报日期：…``, row 3 the scope (口径: the filters) and the unit of amounts, row 4 the
  headers (bold, frozen, repeated on every printed page, with a filter), then the rows,
  the 合计 row (bold) and the notes (注);
* ``MONEY``: fen → 元 by exact decimal division (``Decimal(fen).scaleb(-2)``; never a
  float), number format ``#,##0.00``; ``WAN``: fen → 万元 exactly (``scaleb(-6)``),
  shown with two decimals; ``PERCENT`` a ratio rounded half up to 0.01%;
* ``TEXT`` cells are strings with the text format ``@``: an 18-digit code, an ID or a bank
  number never becomes a number (Excel keeps 15 digits);
* the CSV (UTF-8 with a BOM, CRLF): the header and the rows of each sheet meant for
  machines (``Sheet.machine``), the same columns, each amount in 元 followed by its raw
  fen (``涉及金额（元）``, ``涉及金额（分）``); no title, no 合计.  A ledger with more than
  one such sheet leads every row with the sheet's name, its first row being the header
  (as ``inspection.reports`` does); ``read_csv`` reads either back.

Masking (脱敏): the store holds no ID or bank number, only keyed hashes (``domain.identity``);
a ledger shows what the store has, masked by the reader's role (``mask_id``, ``mask_bank``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from access.reads import Read
from domain.errors import InvalidInput

FORMATS = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
           "csv": "text/csv; charset=utf-8"}
CST = dt.timezone(dt.timedelta(hours=8), "CST")

TEXT, INT, MONEY, WAN, DATE, PERCENT = "text", "int", "money", "wan", "date", "percent"
NUMBER_FORMATS = {TEXT: "@", INT: "0", MONEY: "#,##0.00", WAN: "#,##0.00",
                  DATE: "yyyy-mm-dd", PERCENT: "0.00%"}
HEADER_ROW = 4
TOTAL = "合计"


def today() -> dt.date:
    """Today in China (the 填报日期)."""
    return dt.datetime.now(CST).date()


# amounts --------------------------------------------------------------------------------
def yuan(fen: int | None) -> Decimal | None:
    """12345 fen → Decimal('123.45') 元, exactly."""
    return None if fen is None else Decimal(int(fen)).scaleb(-2)


def wan(fen: int | None) -> Decimal | None:
    """123456789 fen → Decimal('123.456789') 万元, exactly (shown with two decimals)."""
    return None if fen is None else Decimal(int(fen)).scaleb(-6)


def ratio(part: int, whole: int) -> Decimal | None:
    """part ÷ whole, rounded half up to 0.0001 (0.01%); None when ``whole`` is 0."""
    if not whole:
        return None
    return (Decimal(int(part)) / Decimal(int(whole))).quantize(Decimal("0.0001"), ROUND_HALF_UP)


# masking (脱敏) -----------------------------------------------------------------------------
# Who compares people across files (纪检监察 and third-party assessment) sees the head and
# tail of a keyed hash, as the console's 一户一档 shows it; every other role only its tail.
# The command line (no role: the operator of the store) is treated as an inspector.
COMPARING_ROLES = frozenset({"inspector", "reviewer"})


def mask_id(value: str | None, role: str | None) -> str | None:
    """A member's ID number as the store has it — a keyed hash — masked for ``role``."""
    if not value:
        return None
    text = str(value)
    if role is None or role in COMPARING_ROLES:
        return text[:6] + "*" * 8 + text[-4:]
    return "*" * 8 + text[-4:]


def mask_bank(value: str | None) -> str | None:
    """A bank account as the store has it (a keyed hash): only its last four characters."""
    return None if not value else "*" * 8 + str(value)[-4:]


# the ledger ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    header: str
    kind: str = TEXT
    width: float = 12

    @property
    def fen_header(self) -> str:
        """The CSV's raw-fen column beside an amount: 金额（元） → 金额（分）."""
        for unit in ("（元）", "（万元）"):
            if self.header.endswith(unit):
                return self.header[:-len(unit)] + "（分）"
        return self.header + "（分）"


@dataclass
class Sheet:
    name: str  # the worksheet's name (at most 31 characters)
    title: str  # row 1
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    total: list[Any] | None = None  # the 合计 row, values as the rows'
    notes: list[str] = field(default_factory=list)
    scope: str = ""  # 口径: what the rows are (filters, dates)
    machine: bool = True  # in the CSV

    def index(self, header: str) -> int:
        return next(i for i, c in enumerate(self.columns) if c.header == header)


@dataclass
class Ledger:
    key: str  # flags, rectification, funds, payments, household
    title: str  # 问题线索台账 …
    unit_name: str  # 填报单位: the region's name …
    unit_code: str  # … and code
    on: dt.date  # 填报日期
    sheets: list[Sheet]
    shown: list[Read] = field(default_factory=list)
    """Every subject the ledger shows (the access log records them)."""

    @property
    def unit(self) -> str:
        return f"{self.unit_name}（{self.unit_code}）"

    def sheet(self, name: str) -> Sheet:
        return next(s for s in self.sheets if s.name == name)

    def filename(self, fmt: str) -> str:
        return f"{self.title}-{self.unit_name}{self.unit_code}-{self.on.isoformat()}.{fmt}"


def sum_fen(rows: list[list[Any]], index: int) -> int:
    """The column's fen summed as integers (empty cells count nothing)."""
    return sum(int(r[index]) for r in rows if r[index] is not None)


# .xlsx ---------------------------------------------------------------------------------------
def _value(column: Column, value: Any) -> Any:
    if value is None or value == "":
        return None
    if column.kind == TEXT:
        return str(value)
    if column.kind == INT:
        return int(value)
    if column.kind == MONEY:
        return yuan(value)
    if column.kind == WAN:
        return wan(value)
    if column.kind == DATE:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
    if column.kind == PERCENT:
        return Decimal(value)
    raise ValueError(f"unknown column kind {column.kind}")


def to_xlsx(ledger: Ledger) -> bytes:
    """The workbook, streamed row by row (XlsxWriter, constant memory), each cell's format
    made once per kind.  XlsxWriter costs some 15–30 µs a cell: a county's 发放清册 of
    250,000 rows (3.5 million cells) takes about a minute, in about 200 MB."""
    import xlsxwriter

    out = io.BytesIO()
    # not "in_memory": XlsxWriter then turns "constant_memory" off and keeps every cell (a
    # 300,000-row 发放清册 took 1.4 GB); rows go to a temporary file as they are written
    book = xlsxwriter.Workbook(out, {"constant_memory": True,
                                     "strings_to_numbers": False, "strings_to_formulas": False,
                                     "strings_to_urls": False})
    formats: dict[tuple, Any] = {}

    def fmt(**props: Any) -> Any:
        key = tuple(sorted(props.items()))
        if key not in formats:
            formats[key] = book.add_format(props)
        return formats[key]

    box = {"border": 1, "border_color": "#999999"}
    for sheet in ledger.sheets:
        ws = book.add_worksheet(sheet.name[:31])
        n = len(sheet.columns)
        for i, column in enumerate(sheet.columns):
            ws.set_column(i, i, column.width)
        title = fmt(bold=True, font_size=14, align="center", valign="vcenter")
        ws.set_row(0, 24)
        if n > 1:
            ws.merge_range(0, 0, 0, n - 1, sheet.title, title)
        else:
            ws.write_string(0, 0, sheet.title, title)
        ws.write_string(1, 0, f"填报单位：{ledger.unit}")
        ws.write_string(1, max(n, 2) - 1, f"填报日期：{ledger.on.isoformat()}", fmt(align="right"))
        if sheet.scope:
            ws.write_string(2, 0, f"口径：{sheet.scope}")
        kinds = {c.kind for c in sheet.columns}
        if kinds & {MONEY, WAN}:
            ws.write_string(2, max(n, 2) - 1,
                            "金额单位：万元" if MONEY not in kinds else "金额单位：元",
                            fmt(align="right"))
        head = fmt(bold=True, bg_color="#DDE4EE", align="center", valign="vcenter",
                   text_wrap=True, **box)
        for i, column in enumerate(sheet.columns):
            ws.write_string(HEADER_ROW - 1, i, column.header, head)
        cells = [fmt(num_format=NUMBER_FORMATS[c.kind], **box,
                     **({"text_wrap": True, "valign": "top"}
                        if c.kind == TEXT and c.width >= 24 else {}))
                 for c in sheet.columns]
        bold_cells = [fmt(num_format=NUMBER_FORMATS[c.kind], bold=True, **box,
                          **({"text_wrap": True, "valign": "top"}
                             if c.kind == TEXT and c.width >= 24 else {}))
                      for c in sheet.columns]
        row_no = HEADER_ROW - 1
        for row in sheet.rows:
            row_no += 1
            _write_row(ws, row_no, sheet.columns, row, cells)
        if sheet.total is not None:
            row_no += 1
            _write_row(ws, row_no, sheet.columns, sheet.total, bold_cells)
        for note in sheet.notes:
            row_no += 1
            ws.write_string(row_no, 0, f"注：{note}")
        ws.freeze_panes(HEADER_ROW, 0)
        if sheet.rows:
            ws.autofilter(HEADER_ROW - 1, 0, HEADER_ROW - 1 + len(sheet.rows), n - 1)
        ws.repeat_rows(HEADER_ROW - 1)
        if n > 6:
            ws.set_landscape()
        else:
            ws.set_portrait()
        ws.set_paper(9)  # A4
        ws.fit_to_pages(1, 0)
    book.set_properties({"title": f"{ledger.title}（{ledger.unit}）", "author": "zhuisu 追溯"})
    book.close()
    return out.getvalue()


def _write_row(ws: Any, row_no: int, columns: list[Column], values: list[Any],
               cells: list[Any]) -> None:
    for i, (column, value) in enumerate(zip(columns, values, strict=True)):
        shown = _value(column, value)
        if shown is None:
            ws.write_blank(row_no, i, None, cells[i])
        elif column.kind == TEXT:
            ws.write_string(row_no, i, shown, cells[i])
        elif column.kind == DATE:
            ws.write_datetime(row_no, i, dt.datetime.combine(shown, dt.time()), cells[i])
        else:
            ws.write_number(row_no, i, shown, cells[i])


# CSV -------------------------------------------------------------------------------------------
def _csv_header(sheet: Sheet) -> list[str]:
    out = []
    for c in sheet.columns:
        out.append(c.header)
        if c.kind in (MONEY, WAN):
            out.append(c.fen_header)
    return out


def _csv_row(sheet: Sheet, row: list[Any]) -> list[str]:
    out: list[str] = []
    for c, v in zip(sheet.columns, row, strict=True):
        if c.kind in (MONEY, WAN):
            shown = yuan(v) if c.kind == MONEY else wan(v)
            out += ["", ""] if v is None else [str(shown), str(int(v))]
        elif v is None:
            out.append("")
        elif c.kind == DATE:
            out.append(v.isoformat() if isinstance(v, dt.date) else str(v)[:10])
        else:
            out.append(str(v))
    return out


def to_csv(ledger: Ledger) -> bytes:
    sheets = [s for s in ledger.sheets if s.machine]
    lead = len(sheets) > 1
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for sheet in sheets:
        writer.writerow([sheet.name] * lead + _csv_header(sheet))
        for row in sheet.rows:
            writer.writerow([sheet.name] * lead + _csv_row(sheet, row))
    return out.getvalue().encode("utf-8-sig")


def render(ledger: Ledger, fmt: str) -> bytes:
    if fmt == "xlsx":
        return to_xlsx(ledger)
    if fmt == "csv":
        return to_csv(ledger)
    raise InvalidInput(f"must be one of {sorted(FORMATS)}", field="format")


def read_csv(data: bytes, *, sheets: bool = False) -> Any:
    """A ledger's CSV back: its rows as dicts by header, or (``sheets``: a CSV of several
    sheets) sheet name → rows."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    if not sheets:
        return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    found: dict[str, list[dict[str, str]]] = {}
    headers: dict[str, list[str]] = {}
    for row in rows:
        name, values = row[0], row[1:]
        if name not in headers:
            headers[name], found[name] = values, []
        else:
            found[name].append(dict(zip(headers[name], values, strict=True)))
    return found
