"""The read side of discipline inspection, as one object: what a report is built from.

``inspection.reports`` lays out case and county reports (检查报告) from these queries and
never reads a table itself; this class answers them from the read models (cases, metrics,
chains, flags), so a report shows exactly what the HTTP and CLI queries show.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from projections import case_queries as cq
from projections import chains, runner
from projections.flags import queries as flag_queries
from projections.metrics import metrics
from projections.queries import Db


class ReadSide:
    """``inspection.reports.ReadSide`` over the read models of one database."""

    def __init__(self, db: Db):
        self.db = db

    def case_view(self, case_no: str, *, as_of: dt.date | None = None) -> dict:
        return cq.case_view(self.db, case_no, as_of=as_of)

    def region_of(self, code: str) -> dict | None:
        return cq.region_of(self.db, code)

    def log_clock(self) -> dt.date | None:
        return cq.log_clock(self.db)

    def list_cases(self, **query: Any) -> dict:
        return cq.list_cases(self.db, **query)

    def outstanding_recovery(self, **query: Any) -> Any:
        return cq.outstanding_recovery(self.db, **query)

    def rectification_items(self, **query: Any) -> Any:
        return cq.rectification_items(self.db, **query)

    def case_counts(self, region_code: str | None = None) -> list[dict]:
        return cq.case_counts(self.db, region_code)

    def metrics(self, region_code: str, year: int) -> dict:
        return metrics(self.db, region_code, year)

    def payment_chain(self, movement_id: str, account_id: str | None) -> Any:
        return chains.payment_chain(self.db, movement_id, account_id)

    def flags_kept(self) -> bool:
        """Whether the red-flag read model is among the projections this process runs."""
        return any(p.name == "flags" for p in runner.PROJECTIONS)

    def get_flag(self, flag_id: str) -> dict:
        return flag_queries.get_flag(self.db, flag_id)

    def list_flags(self, **query: Any) -> dict:
        return flag_queries.list_flags(self.db, **query)
