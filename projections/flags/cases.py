"""Cases kept up to date: ``RECTIFICATION_OVERDUE`` (what counts, and why:
``inspection.rules.cases``).

Cases' numbers and regions (``flag_cases``) and every rectification item with its
deadline and completion (``flag_rectification``).  An item is looked at when it is added
and completed and, when the log clock moves, found by index once the clock passes
``flag_clock.due_bound`` — no later than the earliest deadline of the open items not yet
flagged (``_due_tick``, called by ``projection.Flags._tick``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import false, func, select

from inspection.rules.cases import completed_late, overdue_on, overdue_state
from projections.events import Event
from projections.flags.base import FlagKeeping
from projections.flags.tables import cases, clock, rectification
from projections.projection import Row, Rows, handles


class CaseFlags(FlagKeeping):
    """Cases and their rectification items."""

    @handles("Case.Opened")
    def case_opened(self, e: Event, rows: Rows) -> None:
        rows.insert(cases, {"case_id": e.originator_id, "case_no": e["case_no"],
                            "region_path": e["region_path"]})

    @handles("Case.RectificationItemAdded")
    def item_added(self, e: Event, rows: Rows) -> None:
        case = rows.need(cases, e.originator_id)
        item = rows.insert(rectification, {
            "case_id": e.originator_id, "item_id": e["item_id"], "case_no": case["case_no"],
            "region_path": case["region_path"], "deadline": e["deadline"],
            "official_id": e["official_id"], "added_position": e.position,
            "completed_on": None, "flagged": False})
        c = self._clock(rows)
        if overdue_on(e["deadline"], c["day"]):
            self._overdue(rows, e, item)
        elif c["due_bound"] is None or e["deadline"] < c["due_bound"]:
            c["due_bound"] = e["deadline"]
            rows.changed(clock, c)

    @handles("Case.RectificationItemCompleted")
    def item_completed(self, e: Event, rows: Rows) -> None:
        item = rows.need(rectification, e.originator_id, e["item_id"])
        item["completed_on"] = e.day
        rows.changed(rectification, item)
        if completed_late(item["deadline"], e.day):
            if not item["flagged"]:
                self._overdue(rows, e, item)
        elif item["flagged"]:  # completed in time, though the log clock had run past it
            item["flagged"] = False
            self._withdraw(rows, e, f"RECTIFICATION_OVERDUE:{item['case_no']}/{item['item_id']}")

    def _due_tick(self, e: Event, rows: Rows, c: Row, day: dt.date) -> None:
        """The log clock moved to ``day``: the open items whose deadline it passed."""
        if c["due_bound"] is not None and c["due_bound"] < day:
            r = rectification.c
            rows.flush()
            for case_id, item_id in rows.conn.execute(
                    select(r.case_id, r.item_id)
                    .where(r.flagged == false(), r.deadline < day, r.completed_on.is_(None))
                    .order_by(r.case_no, r.item_id)).all():
                if e.step == "Case.RectificationItemCompleted" and \
                        (case_id, item_id) == (e.originator_id, e["item_id"]):
                    continue  # judged by its completion date (``item_completed``)
                self._overdue(rows, e, rows.need(rectification, case_id, item_id))
            rows.flush()
            c["due_bound"] = rows.conn.execute(
                select(func.min(r.deadline))
                .where(r.flagged == false(), r.completed_on.is_(None))).scalar()

    def _overdue(self, rows: Rows, e: Event, item: Row) -> None:
        item["flagged"] = True
        rows.changed(rectification, item)
        done = item["completed_on"]
        self._raise(rows, e, "RECTIFICATION_OVERDUE", f"{item['case_no']}/{item['item_id']}",
                    path=item["region_path"],
                    evidence=[{"kind": "official", "ref": item["official_id"]},
                              {"kind": "event", "ref": item["added_position"]}],
                    signers=[item["official_id"]],
                    detail={"case_id": item["case_id"], "case_no": item["case_no"],
                            "item_id": item["item_id"], "deadline": item["deadline"].isoformat(),
                            "completed_on": done.isoformat() if done else None},
                    values={"case_no": item["case_no"], "item_id": item["item_id"],
                            "deadline": item["deadline"].isoformat(), **overdue_state(done)})
