"""Record rules (记录): steps written down long after the date they claim.

==============  ======
``BACKDATED``   倒签
==============  ======

A signed step whose business date (``effective_date``) is more than ``backdate_days``
before its record date: the event's record time (``timestamp``, UTC) as a date in China
Standard Time.  A payment is named by its movement id, any other step by
``{originator_id}@{version}``.  Kept up to date by ``projections.flags.records``, which
looks at every signed step as it comes.
"""

from __future__ import annotations

import datetime as dt

CHINA_STANDARD_TIME = dt.timezone(dt.timedelta(hours=8), "CST")
"""Business dates are dates in China; a record time (UTC) is compared in this zone."""


def record_day(timestamp: dt.datetime) -> dt.date:
    """The date (China Standard Time) on which an event was recorded."""
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=dt.UTC)
    return timestamp.astimezone(CHINA_STANDARD_TIME).date()


def backdated_by(timestamp: dt.datetime, effective_date: dt.date) -> int:
    """Days between the business date and the record date (negative: dated ahead)."""
    return (record_day(timestamp) - effective_date).days


def is_backdated(timestamp: dt.datetime, effective_date: dt.date, backdate_days: int) -> bool:
    """Recorded more than ``backdate_days`` after its business date (倒签)."""
    return backdated_by(timestamp, effective_date) > backdate_days
