"""The application's repository: eventsourcing's, with the aggregate cache safe across threads.

With ``AGGREGATE_CACHE_MAXSIZE`` set (``store.settings``), eventsourcing's ``Repository.get``
keeps one instance of each aggregate in a cache, fast-forwards that instance in place with
the events stored since (under a lock per aggregate) and hands the caller a deep copy —
but it copies *after* releasing the lock.  So while one request copied a cached account,
another could be applying a newer event to the very same instance, and the copy failed
with ``RuntimeError: dictionary changed size during iteration`` (a 500 for an ordinary
command, 1–2 in 50 under concurrent writers), or could have copied a half-applied state.

Here the cached instance is touched only while its lock is held: looking it up or
reconstructing and caching it, fast-forwarding it, and copying it for the caller all
happen under one lock per aggregate (one of ``STRIPES`` locks, chosen by the aggregate's
id: bounded memory, and two aggregates rarely share one).  A fast-forward that fails part-way drops the
instance from the cache instead of keeping it half-applied.  Callers get their own copy
(unless they ask for the cached instance, ``deepcopy_from_cache=False``, to read what never
changes, such as a region path), so a command's changes never reach the cache until they
are stored and read back.  Every path that touches the cache goes through these locks (the
library's own fast-forward lock is no longer used; ``fastforward_skipping`` waits instead).
"""

from __future__ import annotations

import contextlib
import threading
from copy import deepcopy
from typing import Any

from eventsourcing.application import (
    AggregateNotFoundError,
    Repository,
    project_aggregate,
)

STRIPES = 256
_LOCKS = tuple(threading.Lock() for _ in range(STRIPES))


class LockedCacheRepository(Repository):
    """``Repository`` whose cached aggregates are read, advanced and copied under one lock."""

    def get(self, aggregate_id: Any, *, version: int | None = None,
            projector_func: Any = project_aggregate, fastforward_skipping: bool = False,
            deepcopy_from_cache: bool = True) -> Any:
        if not self.cache or version is not None or not self.fastforward:
            return super().get(aggregate_id, version=version, projector_func=projector_func,
                               fastforward_skipping=fastforward_skipping,
                               deepcopy_from_cache=deepcopy_from_cache)
        with _LOCKS[hash(aggregate_id) % STRIPES]:
            aggregate = self._cached(aggregate_id, projector_func)
            if deepcopy_from_cache and self.deepcopy_from_cache:
                return deepcopy(aggregate)
            return aggregate  # the cached instance itself, for a caller that only reads what
            # never changes (a region path: ``api.deps``)

    def _cached(self, aggregate_id: Any, projector_func: Any) -> Any:
        """The cached instance, brought up to date (caller holds the aggregate's lock)."""
        assert self.cache is not None
        try:
            aggregate = self.cache.get(aggregate_id)
        except KeyError:
            aggregate = self._reconstruct_aggregate(aggregate_id, None, projector_func)
            self.cache.put(aggregate_id, aggregate)
            return aggregate
        try:
            new_events = self.event_store.get(originator_id=aggregate_id, gt=aggregate.version)
            advanced = projector_func(aggregate, new_events)
        except BaseException:
            with contextlib.suppress(KeyError):
                self.cache.get(aggregate_id, evict=True)
            raise
        if advanced is None:
            raise AggregateNotFoundError(aggregate_id)
        if advanced is not aggregate:
            self.cache.put(aggregate_id, advanced)
        return advanced
