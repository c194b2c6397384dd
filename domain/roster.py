"""Roster imports (花名册导入): households taken from the national register's export.

A county's poverty office exports the national register (全国扶贫开发信息系统) as a 花名册:
one row per person, grouped into households by 户编号.  Importing it records *where each
household came from*: one ``Roster.Imported`` event names the file (its name and SHA-256),
the as-of date, the number of households and the Merkle root of the household rows
(``domain.batch``), and carries the signatures of the county officials who vouch for it
(经办, 审核, 审批 of the county, as for a county's approval of a registration).  Each
household then becomes its own ``Household.Applied`` event marked as imported (its
``batch``: the import, its row, the file rows it came from), on the register from its
首次识别时间, exited if the roster gives a 脱贫年度.  Its chain says: imported from file
<sha256>, rows 5–8, signed by these three.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from eventsourcing.domain import event

from domain.region import RegionPath, stable_id
from domain.signed import SignedAggregate


class Roster(SignedAggregate):
    """One signed import of a 花名册 (its manifest)."""

    @staticmethod
    def create_id(import_id: str, **_: object) -> UUID:
        return stable_id("roster", str(import_id))

    @event("Imported")
    def __init__(self, import_id: str, county_code: str, effective_date: dt.date,
                 row_count: int, rows_root: str, source_file: str, source_sha256: str,
                 region_path: dict[str, str], signatures: list[dict]) -> None:
        self.import_id = import_id
        self.county_code = county_code
        self.effective_date = effective_date
        self.row_count = row_count
        self.rows_root = rows_root
        self.source_file = source_file
        self.source_sha256 = source_sha256
        self.region_path: RegionPath = dict(region_path)
        self.accepted = {}
        self._init_accepted("Roster.Imported", {
            "import_id": import_id, "county_code": county_code, "effective_date": effective_date,
            "row_count": row_count, "rows_root": rows_root, "source_file": source_file,
            "source_sha256": source_sha256})

    @classmethod
    def record(cls, *, import_id: str, county_code: str, effective_date: dt.date,
               row_count: int, rows_root: str, source_file: str, source_sha256: str,
               rows: list, region_path: RegionPath, signatures: list[dict]) -> Roster:
        """The manifest; the service checks the rows and makes the households."""
        return cls(import_id=import_id, county_code=county_code, effective_date=effective_date,
                   row_count=row_count, rows_root=rows_root, source_file=source_file,
                   source_sha256=source_sha256, region_path=dict(region_path),
                   signatures=signatures)
