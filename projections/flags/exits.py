"""Exits kept up to date: ``EXIT_CHECKS_FAILED``, ``RELAPSE_SOON`` (what counts, and why:
``inspection.rules.exits``).

Each household's row keeps its exit proposal (year and income line), its annual reviews
and its latest exit approval (date, position, signers); ``_exit_step`` is called by
``projection.Flags.household_step`` for every household step.
"""

from __future__ import annotations

import datetime as dt

from domain.money import yuan
from inspection.rules.exits import exit_line, failing_review, relapsed_soon
from projections.events import Event
from projections.flags.base import FlagKeeping
from projections.projection import Row, Rows


class ExitFlags(FlagKeeping):
    """Exit proposals, annual reviews, exit approvals and relapses."""

    def _exit_step(self, e: Event, rows: Rows, h: Row) -> None:
        step = e.step
        if step == "Household.ExitProposed":
            h["exit_year"], h["exit_line_fen"] = e["year"], e["income_line_fen"]
        elif step == "Household.AnnualReviewRecorded":
            h["reviews"] = [*h["reviews"], [e["year"], e.day.isoformat(), e.position,
                                            e["income_per_capita_fen"]]]
        elif step == "Household.ExitApprovedByCounty":
            self._exit_checks(e, rows, h)
            h["last_exit"] = [e.day.isoformat(), e.position,
                              [s["official_id"] for s in e["signatures"]]]
        elif step == "Household.Relapsed":
            self._relapse(e, rows, h)

    def _exit_checks(self, e: Event, rows: Rows, h: Row) -> None:
        """Exit approved although the latest annual review fails the exit year's line."""
        year = h["exit_year"]
        if year is None:
            return
        line = exit_line(year, h["exit_line_fen"])
        review = failing_review(h["reviews"], year, e.day, line) if line else None
        if review is None:
            return
        self._raise(rows, e, "EXIT_CHECKS_FAILED", e.originator_id, path=h["region_path"],
                    evidence=[{"kind": "household", "ref": e.originator_id},
                              {"kind": "event", "ref": review[2]},
                              {"kind": "event", "ref": e.position}],
                    signers=[s["official_id"] for s in e["signatures"]],
                    detail={"exit_year": year, "line_fen": line, "review_year": review[0],
                            "review_date": review[1], "income_per_capita_fen": review[3],
                            "approved_on": e.day.isoformat()},
                    values={"year": review[0], "income": yuan(review[3]), "line": yuan(line)})

    def _relapse(self, e: Event, rows: Rows, h: Row) -> None:
        if h["last_exit"] is None:
            return
        exited_on, position, signers = h["last_exit"]
        days = (e.day - dt.date.fromisoformat(exited_on)).days
        if not relapsed_soon(dt.date.fromisoformat(exited_on), e.day,
                             self.settings.relapse_window_days):
            return
        self._raise(rows, e, "RELAPSE_SOON", e.originator_id, path=h["region_path"],
                    evidence=[{"kind": "household", "ref": e.originator_id},
                              {"kind": "event", "ref": position},
                              {"kind": "event", "ref": e.position}],
                    signers=signers,
                    detail={"exited_on": exited_on, "relapsed_on": e.day.isoformat(),
                            "days": days, "cause": e["cause"],
                            "window_days": self.settings.relapse_window_days},
                    values={"days": days})
