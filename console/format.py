"""Chinese conventions of the screens (DESIGN.md §8): money, dates, regions, masking.

- amounts in 元 with two decimals and thousands separators (``yuan``), 万元 in summaries
  (``wan``), from integer fen — never through a float;
- dates ``YYYY-MM-DD`` in China Standard Time for record times (``day``, ``moment``);
- ID and bank numbers masked (``mask_id``: first 6 and last 4 kept; ``mask_bank``: last 4);
- region names with their codes (``region_label``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

CST = dt.timezone(dt.timedelta(hours=8), "CST")


def yuan(fen: Any) -> str:
    """12345678 → '123,456.78' (元); None → '—'."""
    if fen is None or fen == "":
        return "—"
    fen = int(fen)
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def wan(fen: Any) -> str:
    """Fen as 万元 with two decimals (rounded half up): 123456789 → '123.46'."""
    if fen is None or fen == "":
        return "—"
    fen = int(fen)
    sign = "-" if fen < 0 else ""
    hundredths = (abs(fen) + 5_000) // 10_000  # 1 万元 = 1,000,000 fen; 0.01 万元 = 10,000 fen
    whole, cents = divmod(hundredths, 100)
    return f"{sign}{whole:,}.{cents:02d}"


def percent(rate: Any, digits: int = 2) -> str:
    return "—" if rate is None else f"{float(rate) * 100:.{digits}f}%"


def day(value: Any) -> str:
    """A business date or a record time as YYYY-MM-DD (record times in China)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value[:10]
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(CST)
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def moment(value: Any) -> str:
    """A record time as 'YYYY-MM-DD HH:MM' in China Standard Time."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(CST).strftime("%Y-%m-%d %H:%M")
    return str(value)


def mask_id(value: Any) -> str:
    """An ID number with only its first 6 and last 4 characters shown."""
    text = str(value or "")
    if len(text) <= 10:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 10) + text[-4:]


def mask_bank(value: Any) -> str:
    """A bank or card number with only its last 4 digits shown."""
    text = str(value or "")
    if len(text) <= 4:
        return "*" * len(text)
    return "*" * (len(text) - 4) + text[-4:]


def short(value: Any, keep: int = 8) -> str:
    text = str(value or "")
    return text[:keep]


FILTERS = {"yuan": yuan, "wan": wan, "percent": percent, "day": day, "moment": moment,
           "mask_id": mask_id, "mask_bank": mask_bank, "short": short}
