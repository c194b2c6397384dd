"""Records kept up to date: ``BACKDATED`` (what counts, and why: ``inspection.rules.records``).

Every signed step is looked at as it comes (``_backdated``, called by
``projection.Flags._signed_step``); nothing is kept but the flag.
"""

from __future__ import annotations

from inspection.rules.records import backdated_by, is_backdated, record_day
from projections.events import Event
from projections.flags.base import FlagKeeping, subject_evidence, subject_of
from projections.projection import Rows


class RecordFlags(FlagKeeping):
    """Signed steps recorded long after their business date."""

    def _backdated(self, e: Event, rows: Rows) -> None:
        """A signed step recorded more than ``backdate_days`` after its business date."""
        if not is_backdated(e["timestamp"], e.day, self.settings.backdate_days):
            return
        kind, subject = subject_of(e)
        days = backdated_by(e["timestamp"], e.day)
        path = self._step_path(e, rows)
        recorded = record_day(e["timestamp"]).isoformat()
        self._raise(rows, e, "BACKDATED", subject, subject_kind=kind, path=path,
                    evidence=[*subject_evidence(e), {"kind": "event", "ref": e.position}],
                    signers=[s["official_id"] for s in e["signatures"]],
                    detail={"step": e.step, "recorded_on": recorded,
                            "recorded_at": e["timestamp"].isoformat(), "days": days,
                            "backdate_days": self.settings.backdate_days},
                    values={"effective_date": e.day.isoformat(), "recorded_on": recorded,
                            "days": days})
