"""大数据比对: other departments' registers kept as evidence, and the comparison models'
matches kept up to date event by event (the models: ``inspection.rules.compare``).

- ``evidence``: ``register_rows``, the kept rows of each imported snapshot (evidence, not
  events: written at import, before the snapshot's event; never truncated by a rebuild),
  and ``verify_snapshot`` (the rows against the event's Merkle root);
- ``tables``: the projection's tables (``cmp_matches`` and the state the models need);
- ``projection``: ``Comparison``, the read model (matches identical after a rebuild);
- ``queries``: ``list_matches``, ``get_match``, ``match_counts``, ``list_snapshots``.

Part of ``projections``; may import what it may: ``domain``, ``store``, ``audit``,
``inspection``.
"""

from __future__ import annotations

from projections.compare.projection import Comparison
from projections.compare.queries import get_match, list_matches, list_snapshots, match_counts

__all__ = ["Comparison", "get_match", "list_matches", "list_snapshots", "match_counts"]
