"""Bulk append of already-verified events: same order, same uniqueness, on both stores."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import IntegrityError

from store.bulk import append_verified
from domain.application import Zhuisu


def _history(app: Zhuisu) -> list[tuple]:
    return [(n.originator_id, n.originator_version, n.topic, n.state)
            for n in app.recorder.select_notifications(1, limit=10_000)]


def test_bulk_append_reproduces_another_store_in_the_same_order(store, app: Zhuisu) -> None:
    app.create_region("52", "贵州省", "province", None)
    app.create_region("5226", "黔东南州", "city", "52")
    app.create_region("5227", "黔南州", "city", "52")
    source = [n for n in app.recorder.select_notifications(1, limit=100)]

    copy = store.app_on(store.new_database_url())
    assert append_verified(copy, source) == 3
    assert _history(copy) == _history(app)
    assert copy.region("5227").path == {"province": "52", "city": "5227"}


def test_bulk_append_of_a_duplicate_event_appends_nothing(store, app: Zhuisu) -> None:
    app.create_region("52", "贵州省", "province", None)
    existing = app.recorder.select_notifications(1, limit=1)
    copy = store.app_on(store.new_database_url())
    copy.create_region("53", "云南省", "province", None)
    before = _history(copy)

    with pytest.raises(IntegrityError):
        append_verified(copy, [*existing, *app.recorder.select_notifications(1, limit=1)])
    assert _history(copy) == before
