"""The errors of an import handed back to the office (导入错误清单), and a dry run's summary.

An office fixes its file from the list: an .xlsx titled 导入错误清单 (the file's name, its
SHA-256 and the date on the second line; 行号 / 列 / 错误说明 / 原值, every cell text so an ID
or bank number is never turned into a number, column widths set, header row frozen), or
the same as CSV in UTF-8 with a BOM so Excel opens it.  Values are shown as ``parse`` left
them: ID and bank numbers masked.  ``summary`` is what a dry run (试导入) reports.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from exchange.formats import Parsed

TITLE = "导入错误清单"
HEADERS = ("行号", "列", "错误说明", "原值")
WIDTHS = (8, 18, 60, 28)


def _error_lines(parsed: Parsed) -> list[tuple[str, str, str, str]]:
    return [(str(e.row), e.column or "", e.rule, e.value or "") for e in parsed.errors]


def _about(parsed: Parsed, today: dt.date | None) -> str:
    table = parsed.table
    where = f"（工作表：{table.sheet}）" if table.sheet else ""
    return (f"文件：{table.filename}{where}　格式：{parsed.format.title}　"
            f"SHA-256：{table.sha256}　日期：{(today or dt.date.today()).isoformat()}")


def errors_workbook(parsed: Parsed, *, today: dt.date | None = None) -> bytes:
    """The errors as an .xlsx: title, the file line, then one row per error, all text."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    sheet.title = TITLE
    sheet.append([TITLE])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(HEADERS))
    sheet.append([_about(parsed, today)])
    sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=len(HEADERS))
    sheet.append(list(HEADERS))
    for cell in sheet[3]:
        cell.font = Font(bold=True)
    for line in _error_lines(parsed):
        sheet.append(list(line))
    for row in sheet.iter_rows(min_row=3):
        for cell in row:
            cell.number_format = "@"  # text: a number-looking value stays as written
            cell.alignment = Alignment(wrap_text=cell.column == 3, vertical="top")
    for i, width in enumerate(WIDTHS, 1):
        sheet.column_dimensions[get_column_letter(i)].width = width
    sheet.freeze_panes = "A4"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def errors_csv(parsed: Parsed) -> bytes:
    """The errors as CSV, UTF-8 with a BOM: the header line, then one line per error."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADERS)
    writer.writerows(_error_lines(parsed))
    return out.getvalue().encode("utf-8-sig")


def summary(parsed: Parsed) -> dict[str, Any]:
    """What a dry run reports: rows read, valid and refused, errors, the totals in fen of
    the money columns over the valid rows, the file's SHA-256, encoding and header row."""
    money = [c.field for c in parsed.format.columns if c.kind == "money_yuan"]
    return {
        "format": parsed.format.key,
        "filename": parsed.table.filename,
        "sha256": parsed.table.sha256,
        "encoding": parsed.table.encoding,
        "sheet": parsed.table.sheet,
        "header_row": parsed.table.header_row,
        "rows_read": parsed.rows_read,
        "rows_valid": len(parsed.rows),
        "rows_refused": parsed.rows_read - len(parsed.rows),
        "errors": len(parsed.errors),
        "errors_truncated": parsed.truncated,
        "rows_skipped": len(parsed.skipped),
        "ignored_columns": list(parsed.ignored_columns),
        "totals_fen": {f: sum(r[f] or 0 for r in parsed.rows) for f in money},
    }
