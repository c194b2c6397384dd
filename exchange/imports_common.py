"""What every import (导入) answers: the dry run (试导入) of one file, as one object.

``exchange.imports`` reads a file (``exchange.formats.parse``), hands the valid rows to the
kind's matcher (``imports_roster``: 花名册 → households; ``imports_money``: 发放清册 → a
payment batch, 回盘 → its bank return), which adds its own row errors (a household unknown
or removed, a repeated household, a return row answering no payment …) and builds the
signed step's manifest and rows.  :class:`DryRun` holds all of it: the counts, the totals
(fen and 元), the first differences, the row errors, the file's SHA-256 and encoding, and
the command a signing-queue draft will hold (step, subject, content, rows).  ``ok`` is
false while any row is refused: nothing is then stored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.application import Zhuisu
from domain.region import Region, RegionLevel
from exchange.files import Table
from exchange.formats import FORMATS, Parsed, RowError
from projections.directory import Directory

KINDS = ("roster", "payment_list", "bank_return")
KIND_ZH = {"roster": "花名册", "payment_list": "发放清册（分户清单）", "bank_return": "银行回盘"}
STEP_OF = {"roster": "Roster.Imported", "payment_list": "FundAccount.BatchOrdered",
           "bank_return": "FundAccount.ReturnsRecorded"}
FIRST = 20  # differences and refusals shown in full in an answer
CHINA = dt.timezone(dt.timedelta(hours=8))
WHOLE_FILE = 0  # the row number of an error about the whole file (a total, a missing row)


def today() -> dt.date:
    return dt.datetime.now(CHINA).date()


def yuan(fen: int) -> str:
    """Fen as 元 with two decimals and thousands separators: 1234567 → '12,345.67'."""
    return f"{Decimal(fen) / 100:,.2f}"


@dataclass
class DryRun:
    """One file read, matched and checked; see the module docstring."""

    id: str
    kind: str
    params: dict[str, Any]
    file: dict[str, Any]
    counts: dict[str, int]
    total_fen: int
    errors: list[RowError]
    differences: list[dict[str, Any]] = field(default_factory=list)
    existing: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    step: str = ""
    subject: str | None = None
    content: dict[str, Any] | None = None
    rows: list[dict[str, Any]] | None = None
    region_path: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No refused row and something to record."""
        return not self.errors and self.content is not None

    def summary(self) -> dict[str, Any]:
        """The answer of a dry run (no rows: the counts, totals, first differences, every
        error; ID and bank numbers only masked, as ``parse`` left them)."""
        return {
            "import_id": self.id, "kind": self.kind, "kind_zh": KIND_ZH[self.kind],
            "step": self.step, "subject": self.subject, "ok": self.ok,
            "params": self.params, "file": self.file, "counts": self.counts,
            "total_fen": self.total_fen, "total_yuan": yuan(self.total_fen),
            "differences": self.differences[:FIRST],
            "differences_count": len(self.differences),
            "existing": self.existing[:FIRST], "notes": self.notes,
            "errors": [error_dict(e) for e in self.errors],
            "manifest": self.content,
        }

    def stored(self) -> dict[str, Any]:
        """What is kept of a dry run until it is confirmed (the rows too)."""
        return {**self.summary(), "rows": self.rows, "region_path": self.region_path,
                "differences": self.differences, "existing": self.existing}


def error_dict(e: RowError) -> dict[str, Any]:
    return {"row": e.row, "column": e.column, "rule": e.rule, "value": e.value}


def file_facts(parsed: Parsed, size: int) -> dict[str, Any]:
    t = parsed.table
    return {"filename": t.filename, "sha256": t.sha256, "encoding": t.encoding,
            "sheet": t.sheet, "header_row": t.header_row, "kind": t.kind, "bytes": size,
            "ignored_columns": list(parsed.ignored_columns),
            "rows_skipped": len(parsed.skipped), "errors_truncated": parsed.truncated}


def parsed_for_book(kind: str, stored: dict[str, Any]) -> Parsed:
    """A stored dry run as ``exchange.errors_book`` reads a parse: its file and errors."""
    f = stored["file"]
    table = Table(filename=f["filename"], sha256=f["sha256"], encoding=f.get("encoding"),
                  sheet=f.get("sheet"), headers=[], header_row=f.get("header_row") or 0,
                  rows=iter(()), kind=f.get("kind") or "")
    errors = [RowError(e["row"], e.get("column"), e["rule"], e.get("value"))
              for e in stored["errors"]]
    return Parsed(table=table, format=FORMATS[kind], rows=[], errors=errors)


def with_errors(parsed: Parsed, errors: list[RowError]) -> Parsed:
    """The parse with the matcher's errors after the file's, in row order."""
    merged = sorted([*parsed.errors, *errors], key=lambda e: e.row)
    return dataclasses.replace(parsed, errors=merged)


def refused_rows(errors: list[RowError]) -> int:
    return len({e.row for e in errors if e.row != WHOLE_FILE})


# regions of a county ----------------------------------------------------------------
@dataclass(frozen=True)
class Village:
    code: str
    name: str
    township_code: str
    township_name: str


def villages_of(app: Zhuisu, directory: Directory, county_code: str) -> list[Village]:
    """The villages of a county, with their townships' names (``Directory``'s regions, the
    names read from the region aggregates)."""
    directory.catch_up(app)
    out = []
    for township in directory.children_of(county_code):
        t = app.load(Region, Region.create_id(township), "county")
        for code in directory.children_of(township):
            v = app.load(Region, Region.create_id(code), "county")
            if v.level is RegionLevel.VILLAGE:
                out.append(Village(code, v.name, t.code, t.name))
    return out


def region_codes_within(directory: Directory, level: str, code: str) -> list[str]:
    """Every village code whose path passes through ``code`` at ``level``."""
    return [c for c, path in directory.regions.items()
            if path.get(level) == code and list(path)[-1:] == ["village"]]
