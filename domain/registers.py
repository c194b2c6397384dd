"""Other departments' registers (大数据比对的比对数据) kept as evidence: one snapshot, one event.

A county's discipline inspection compares its beneficiaries with what other departments
hold: 死亡/火化 (civil affairs, public security, funeral homes), 财政供养人员 (the payroll),
村干部及近亲属 (cadres and their close relatives), 车辆 (vehicle registration), 房产
(property registration), 工商 (business registration), 低保 (minimum-living-guarantee
recipients) and 残疾人 (the disabled persons' federation).  ``RegisterKind`` names them.

A department's file is imported as a **snapshot** (``RegisterSnapshot``): one event
(``RegisterSnapshot.Imported``) names the department, the register kind, the as-of date,
the file's SHA-256, how many rows were read and kept, who imported it (an official id or
the caller's token) and ``rows_root``: the RFC 6962 Merkle root over the kept rows
(``row_leaf``: SHA-256 over 0x00 and the row's canonical JSON; inner nodes SHA-256 over
0x01, left and right), so the rows, which live in a read-model table and not in the log
(they are evidence, not events: ``projections.compare.evidence``), can be checked against
the log at any time (``rows_root`` of the stored rows equals the event's).  The snapshot's
id is derived from department, kind, as-of date and file hash: importing the same file
again records nothing.

ID numbers (公民身份号码) are hashed with the deployment's pepper at import and never kept
in clear; a 15-digit number of the first generation is converted to 18 digits first
(``id_number_18``, GB 11643-1999: "19" inserted before the year, check digit appended).

A newer snapshot of the same register (same department and kind: a later as-of date, or
the same date recorded later) supersedes the older for new matches; matches already made
keep pointing at the snapshot and row they came from (``projections.compare``).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidInput
from domain.identity import check_digit
from domain.limits import check_fields, fact_date
from domain.region import stable_id


class RegisterKind(str, enum.Enum):
    """比对数据的种类."""

    DEATH = "death"  # 死亡/火化
    PAYROLL = "payroll"  # 财政供养人员
    CADRE_RELATIVES = "cadre_relatives"  # 村干部及近亲属
    VEHICLE = "vehicle"  # 车辆
    PROPERTY = "property"  # 房产
    BUSINESS = "business"  # 工商
    DIBAO = "dibao"  # 低保
    DISABILITY = "disability"  # 残疾人


KIND_TITLES = {
    "death": "死亡/火化人员", "payroll": "财政供养人员", "cadre_relatives": "村干部及近亲属",
    "vehicle": "车辆登记", "property": "不动产登记", "business": "工商登记",
    "dibao": "低保对象", "disability": "残疾人",
}

# A row's fields per kind (besides ``id_hash``): only what a comparison model reads.
ROW_FIELDS: dict[str, tuple[str, ...]] = {
    "death": ("date_of_death",),
    "payroll": ("payroll_unit", "position"),
    "cadre_relatives": ("cadre_id_hash", "cadre_position", "relation", "degree"),
    "vehicle": ("plate", "vehicle_type", "price_fen"),
    "property": ("location", "area_m2", "property_kind"),
    "business": ("credit_code", "role"),
    "dibao": ("dibao_status", "start_date", "end_date"),
    "disability": ("disability_grade",),
}

RELATION_DEGREES = {
    "配偶": 1, "父母": 1, "父亲": 1, "母亲": 1, "子女": 1, "儿子": 1, "女儿": 1,
    "岳父母": 1, "公婆": 1, "儿媳": 1, "女婿": 1,
    "兄弟姐妹": 2, "兄弟": 2, "姐妹": 2, "祖父母": 2, "外祖父母": 2, "孙子女": 2,
    "外孙子女": 2,
}
"""近亲属: first-degree ties (配偶, 父母, 子女 and in-laws of the same step) and second-degree
(兄弟姐妹, 祖父母, 外祖父母, 孙子女, 外孙子女)."""


def id_number_18(number: object, field: str = "id_number") -> str:
    """An ID number as 18 characters: a 15-digit one (first generation, 1984–1999) gets
    "19" before its year and the GB 11643 check digit; an 18-character one is returned
    upper-cased (its check digit is checked where it is hashed)."""
    if not isinstance(number, str):
        raise InvalidInput("must be an ID number as text", field=field)
    text = number.strip().upper()
    if len(text) == 15 and text.isdigit():
        first17 = text[:6] + "19" + text[6:]
        return first17 + check_digit(first17)
    return text


def snapshot_id(department: str, kind: str, as_of: dt.date, file_sha256: str) -> UUID:
    return stable_id("register", f"{department}|{kind}|{as_of.isoformat()}|{file_sha256}")


# the rows' digest ----------------------------------------------------------------------
def canonical_row(row: Mapping[str, Any]) -> bytes:
    """A kept row as signed bytes: sorted keys, no spaces, UTF-8, dates ISO."""
    def plain(v: Any) -> Any:
        return v.isoformat() if isinstance(v, dt.date) else v
    return json.dumps({k: plain(v) for k, v in row.items()}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode()


def row_leaf(row: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(b"\x00" + canonical_row(row)).digest()


def merkle_root(leaves: Iterable[bytes]) -> str:
    """RFC 6962 Merkle tree hash of leaf hashes (a lone last node is carried up, not
    doubled); the empty tree is SHA-256 of nothing."""
    level = list(leaves)
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        nxt = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
               for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


def rows_root(rows: Iterable[Mapping[str, Any]]) -> str:
    """The Merkle root of kept rows, in row-number order (each row with its ``row_no``)."""
    return merkle_root(row_leaf(r) for r in rows)


def _text(value: object, field: str, limit: int = 100) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("must be a non-empty string", field=field)
    if len(value) > limit:
        raise InvalidInput(f"at most {limit} characters", field=field)
    return value.strip()


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**12:
        raise InvalidInput("must be a whole number ≥ 0", field=field)
    return value


class RegisterSnapshot(Aggregate):
    """One imported file of a department's register (比对数据快照)."""

    @staticmethod
    def create_id(department: str, kind: str, as_of: dt.date, file_sha256: str,
                  **_: object) -> UUID:
        return snapshot_id(department, kind, as_of, file_sha256)

    @classmethod
    def record(cls, *, department: str, kind: str, as_of: dt.date, file_sha256: str,
               filename: str, rows_read: int, row_count: int, rows_root: str,
               imported_by: str) -> RegisterSnapshot:
        try:
            kind = RegisterKind(kind).value
        except ValueError as exc:
            raise InvalidInput(f"must be one of {[k.value for k in RegisterKind]}",
                               field="kind") from exc
        for name, value in (("file_sha256", file_sha256), ("rows_root", rows_root)):
            if not isinstance(value, str) or len(value) != 64 or \
                    any(c not in "0123456789abcdef" for c in value):
                raise InvalidInput("must be 64 lower-case hex digits", field=name)
        if _count(row_count, "row_count") > _count(rows_read, "rows_read"):
            raise InvalidInput("more rows kept than read", field="row_count")
        return cls(department=_text(department, "department"), kind=kind, as_of=as_of,
                   file_sha256=file_sha256, filename=_text(filename, "filename", 255),
                   rows_read=rows_read, row_count=row_count, rows_root=rows_root,
                   imported_by=_text(imported_by, "imported_by", 2000))

    @event("Imported")
    def __init__(self, department: str, kind: str, as_of: dt.date, file_sha256: str,
                 filename: str, rows_read: int, row_count: int, rows_root: str,
                 imported_by: str) -> None:
        self.department = department
        self.kind = kind
        self.as_of = as_of
        self.file_sha256 = file_sha256
        self.filename = filename
        self.rows_read = rows_read
        self.row_count = row_count
        self.rows_root = rows_root
        self.imported_by = imported_by


def record_snapshot(app: Any, *, department: str, kind: str, as_of: object, file_sha256: str,
                    filename: str, rows_read: int, row_count: int, rows_root: str,
                    imported_by: str) -> dict[str, Any]:
    """Store a snapshot's one event (``app``: a ``domain.application.Zhuisu``); the same
    file again (same department, kind, as-of date and hash) records nothing."""
    check_fields(department=department, kind=kind, filename=filename)
    day = fact_date(as_of, "as_of", app.clock())
    sid = snapshot_id(str(department), str(kind), day, str(file_sha256))
    if app.exists(sid):
        snap = app.load(RegisterSnapshot, sid)
        if snap.rows_root != rows_root:
            raise InvalidInput("a snapshot of this file exists with other rows",
                               field="rows_root")
        return {"snapshot_id": str(sid), "recorded": False}
    with app.batch():  # the batch stamps the event with the application's clock
        snap = RegisterSnapshot.record(
            department=department, kind=kind, as_of=day, file_sha256=file_sha256,
            filename=filename, rows_read=rows_read, row_count=row_count,
            rows_root=rows_root, imported_by=imported_by)
        app._commit(snap)  # noqa: SLF001 - the application's own save (within its batch)
    return {"snapshot_id": str(snap.id), "recorded": True}
