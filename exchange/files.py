"""Reading an office's file (台账导入) into a table: headers found under the title rows,
then the data rows streamed one at a time.

Offices exchange .xlsx, legacy .xls and CSV files (DESIGN.md §7): the national register's
花名册, the 发放清册 sent to the bank, the bank's 回盘, other departments' registers.  The
kind of file is decided by its first bytes (a zip is .xlsx, an OLE2 compound file is .xls),
not by its extension; workbooks are read through python-calamine, text files are decoded as
UTF-8 with a BOM, UTF-8 or GB18030 (GBK is a subset), trying each strictly in that order,
and their delimiter (comma, tab, semicolon) is sniffed.  Title rows ("XX县2024年脱贫人口
花名册", "填报单位：…  日期：…") above the header are skipped: the header is the first of the
first 20 rows that holds at least two of the expected header names.

Cells are given as read: text, ``float`` for numbers (an ID or bank number typed as a
number has lost its last digits; ``exchange.formats`` refuses such a row), ``datetime`` /
``date`` for dates, ``bool``; an empty cell is ``None``.  A file that cannot be read at all
is refused with ``FileRefused``, whose message names the file, in Chinese and English.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from domain.errors import InvalidInput

HEADER_SEARCH_ROWS = 20
DELIMITERS = (",", "\t", ";")
XLSX_MAGIC = b"PK\x03\x04"
XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_UNIT = re.compile(r"[（(](?:单位[:：]?)?(?:元|万元|人民币元)[)）]$")
_SPACES = re.compile(r"[\s\u3000\ufeff*＊]+")


class FileRefused(InvalidInput):
    """A whole file is refused (文件无法导入): unreadable, empty, wrong encoding, no header
    row, a required column missing.  The message is Chinese, then English, and names the
    file; ``details`` holds ``filename`` and what else explains the refusal."""

    def __init__(self, filename: str, zh: str, en: str, **details: object):
        super().__init__(f"文件《{filename}》{zh} / File {filename!r}: {en}", field="file",
                         filename=filename, **details)
        self.filename = filename
        self.zh = zh


@dataclass
class Table:
    """A file's header and its data rows, streamed."""

    filename: str
    sha256: str  # hex SHA-256 of the file's bytes
    encoding: str | None  # 'utf-8', 'utf-8-sig', 'gb18030' for CSV; None for xlsx/xls
    sheet: str | None
    headers: list[str]  # cells of the header row, stripped (full-width spaces too)
    header_row: int  # 1-based row number of the header row in the file
    rows: Iterator[tuple[int, list[Any]]]  # (file row number, cells); blank rows skipped
    kind: str = ""  # 'xlsx' (also .xlsm / .ods), 'xls' or 'csv'
    delimiter: str | None = None  # for CSV
    sheets: list[str] = field(default_factory=list)  # every sheet of a workbook


def normalise_header(name: object) -> str:
    """A header cell as compared with the accepted names: no spaces of any width, no line
    breaks, no "*" (required) marks, no trailing unit "（元）" / "(元)", half-width brackets."""
    text = _SPACES.sub("", "" if name is None else str(name))
    text = _UNIT.sub("", text)
    return text.replace("（", "(").replace("）", ")")


def read_table(data: bytes, filename: str, *, expect: Iterable[str] = (),
               sheet: str | None = None) -> Table:
    """Read ``data`` (the bytes of ``filename``) into a :class:`Table`.

    ``expect``: header names the caller knows; the header row is the first of the first 20
    rows holding at least two of them (all of them if fewer than two are given).  Without
    ``expect`` the first non-blank row is the header.  The rows are an iterator: read them
    once."""
    if not data or (len(data) < 4096 and not data.strip(b" \t\r\n\x00\xef\xbb\xbf")):
        raise FileRefused(filename, "是空文件", "the file is empty")
    digest = hashlib.sha256(data).hexdigest()
    wanted = {normalise_header(e) for e in expect} - {""}
    need = min(2, len(wanted))
    suffix = PurePath(filename).suffix.lower()
    if data.startswith(XLSX_MAGIC) or data.startswith(XLS_MAGIC):
        return _read_workbook(data, filename, digest, wanted, need, sheet)
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")[:64].lower()
    if head.startswith((b"<html", b"<!doctype", b"<table", b"<?xml", b"<meta")):
        raise FileRefused(filename, "是网页（HTML/XML）格式，不是表格文件，请在Excel中另存为.xlsx后重新导入",
                          "an HTML/XML page, not a spreadsheet; save it as .xlsx in Excel")
    if suffix in {".xlsx", ".xlsm", ".xls", ".et"} and b"\x00" in data[:4096]:
        raise FileRefused(filename, "不是有效的Excel文件（文件已损坏或格式不符）",
                          "not a valid Excel workbook (damaged or of another format)")
    return _read_text(data, filename, digest, wanted, need)


# --- workbooks ---------------------------------------------------------------------------

def _read_workbook(data: bytes, filename: str, digest: str, wanted: set[str], need: int,
                   sheet: str | None) -> Table:
    from python_calamine import CalamineWorkbook

    kind = "xls" if data.startswith(XLS_MAGIC) else "xlsx"
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        names = list(book.sheet_names)
        if sheet is not None and sheet not in names:
            raise FileRefused(filename, f"中没有工作表“{sheet}”（现有：{'、'.join(names)}）",
                              f"no sheet {sheet!r} (sheets: {', '.join(names)})",
                              sheets=names)
        if not names:
            raise FileRefused(filename, "中没有工作表", "the workbook has no sheet")
        found = book.get_sheet_by_name(sheet) if sheet is not None else book.get_sheet_by_index(0)
        raw = found.iter_rows()
    except FileRefused:
        raise
    except Exception as exc:  # calamine raises its own errors, and zip / OLE2 ones
        raise FileRefused(filename, "无法读取（Excel文件已损坏、加密或格式不受支持）",
                          f"the workbook cannot be read ({type(exc).__name__}: {exc})") from exc
    # calamine gives every row from the sheet's first, so the row number is the position
    numbered = ((n, [_cell(c) for c in row]) for n, row in enumerate(raw, 1))
    return _table(numbered, filename=filename, sha256=digest, encoding=None,
                  sheet=found.name, wanted=wanted, need=need, kind=kind, sheets=names)


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return value if value.strip() else None
    return value


# --- text files --------------------------------------------------------------------------

def _decode(data: bytes, filename: str) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data.decode("utf-8-sig"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise FileRefused(filename, "以UTF-8 BOM开头，但内容不是有效的UTF-8编码",
                              "starts with a UTF-8 BOM but is not valid UTF-8") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise FileRefused(filename, "不是有效的UTF-16编码", "not valid UTF-16") from exc
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise FileRefused(filename, "的文字编码无法识别（应为UTF-8或GBK/GB18030），请另存为“CSV UTF-8”后重新导入",
                      "its text encoding is neither UTF-8 nor GBK/GB18030")


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their endings, without building a list of them."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end + 1]
        start = end + 1


def _read_text(data: bytes, filename: str, digest: str, wanted: set[str], need: int) -> Table:
    text, encoding = _decode(data, filename)
    if "\x00" in text:
        raise FileRefused(filename, "含有二进制内容，不是文本表格（CSV）文件",
                          "holds binary content, not a CSV text file")
    sample = list(zip(range(HEADER_SEARCH_ROWS * 2), _lines(text), strict=False))
    sample_text = "".join(line for _, line in sample)
    counts = {d: sample_text.count(d) for d in DELIMITERS}
    order = sorted(DELIMITERS, key=lambda d: -counts[d])
    chosen = order[0]
    if wanted:  # the delimiter under which the expected header shows up wins
        for delimiter in order:
            if counts[delimiter] or delimiter == order[0]:
                rows = csv.reader(_lines(sample_text), delimiter=delimiter)
                if _header_at(((n, r) for n, r in enumerate(rows, 1)), wanted, need):
                    chosen = delimiter
                    break

    def numbered() -> Iterator[tuple[int, list[Any]]]:
        reader = csv.reader(_lines(text), delimiter=chosen)
        number = 0
        try:  # a record's number is its row in Excel (a quoted line break stays in its cell)
            for number, row in enumerate(reader, 1):
                yield number, [_cell(c) for c in row]
        except csv.Error as exc:
            raise FileRefused(filename, f"第{number + 1}行无法解析（{exc}）",
                              f"row {number + 1} cannot be parsed ({exc})") from exc

    return _table(numbered(), filename=filename, sha256=digest, encoding=encoding, sheet=None,
                  wanted=wanted, need=need, kind="csv", delimiter=chosen)


# --- the header --------------------------------------------------------------------------

def _blank(cells: list[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _header_at(numbered: Iterable[tuple[int, list[Any]]], wanted: set[str],
               need: int) -> bool:
    seen = 0
    for _, cells in numbered:
        if _blank(cells):
            continue
        if _is_header(cells, wanted, need):
            return True
        seen += 1
        if seen >= HEADER_SEARCH_ROWS:
            return False
    return False


def _is_header(cells: list[Any], wanted: set[str], need: int) -> bool:
    if not wanted:
        return not _blank(cells)
    return len({normalise_header(c) for c in cells if c is not None} & wanted) >= need


def _table(numbered: Iterator[tuple[int, list[Any]]], *, filename: str, sha256: str,
           encoding: str | None, sheet: str | None, wanted: set[str], need: int, kind: str,
           delimiter: str | None = None, sheets: list[str] | None = None) -> Table:
    seen = 0
    for number, cells in numbered:
        if _blank(cells):
            continue
        seen += 1
        if _is_header(cells, wanted, need):
            headers = [("" if c is None else str(c)).strip() for c in cells]
            while headers and not headers[-1]:
                headers.pop()
            return Table(filename=filename, sha256=sha256, encoding=encoding, sheet=sheet,
                         headers=headers, header_row=number,
                         rows=_data_rows(numbered, len(headers)), kind=kind,
                         delimiter=delimiter, sheets=sheets or [])
        if seen >= HEADER_SEARCH_ROWS:
            break
    if seen == 0:
        raise FileRefused(filename, "没有内容（全是空行）", "holds no rows, only blank ones")
    names = "、".join(sorted(wanted))
    raise FileRefused(filename, f"前{HEADER_SEARCH_ROWS}行中找不到表头（应含以下列名中的至少{need}个：{names}）",
                      f"no header row in the first {HEADER_SEARCH_ROWS} rows (expected at "
                      f"least {need} of: {', '.join(sorted(wanted))})", expected=sorted(wanted))


_TOTAL = re.compile(r"^(合计|总计|小计|共计)")
_FOOTER = re.compile(r"^(制表|填表|填报|审核|审批|负责人|单位负责人|联系|经办|日期|注[:：]|说明|备注[:：])")


_NOT_DATA_START = frozenset("合总小共制填审负单联经日注说备")


def not_data(cells: list[Any]) -> str | None:
    """Why a row under the header holds no data, or None: a 合计 (total) row, the 制表人 /
    审核人 signature line under the table, a row numbering the columns (1, 2, 3 …)."""
    first = next((c for c in cells if c is not None), None)
    if first is None:
        return "空行"
    if not isinstance(first, str) or first.strip()[:1] not in _NOT_DATA_START:
        if not (isinstance(first, int | float) or first.strip() == "1"):
            return None  # the common case, decided without a regular expression
    filled = [_SPACES.sub("", str(c)) for c in cells if c is not None]
    filled = [c for c in filled if c]
    if _TOTAL.match(filled[0]):
        return "合计行"
    if all(_FOOTER.match(c) for c in filled):
        return "表尾签字栏"
    if len(filled) >= 3 and all(c in (str(i), f"{i}.0") for i, c in enumerate(filled, 1)):
        return "列序号行"
    return None


def _data_rows(numbered: Iterator[tuple[int, list[Any]]],
               width: int) -> Iterator[tuple[int, list[Any]]]:
    for number, cells in numbered:
        if _blank(cells):
            continue
        if len(cells) < width:
            cells = cells + [None] * (width - len(cells))
        yield number, cells
