"""What a ledger reads, and for whom: the read models, the application (for what only the
aggregates hold: members' and bank accounts' keyed hashes), the reader's jurisdiction and
role, and the parameters of the request.

``Context.covers`` is the adapter's jurisdiction check (``access.roles.check_covers`` with
the caller's principal; the command line, run by the store's operator, passes none): a
ledger calls it on the subject it is asked about — its region, account or household —
before it reads anything else, so all three adapters refuse alike (403
``OutsideJurisdiction``).  Names and places are read from the read models
(``projections.case_queries.region_of``, ``projections.chains.event_chain``) and cached
for the ledger being built.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from access.reads import Read
from domain.application import Zhuisu
from domain.errors import InvalidInput, NotFound
from domain.official import Official
from exchange.labels import POSITION_ZH, SIGN_ROLE_ZH
from exchange.layout import today
from projections import case_queries as cq
from projections import chains
from projections.queries import Db

Covers = Callable[[Mapping[str, str], str, str | None], None]


def covers_all(region_path: Mapping[str, str], what: str, field: str | None) -> None:
    """The command line's check: the operator of the store reads every region."""


@dataclass(frozen=True)
class Params:
    """What a ledger is asked for (each ledger reads the ones it needs)."""

    region: str | None = None  # a region code: the ledger's 填报单位 and subtree
    date_from: dt.date | None = None  # business dates, inclusive
    date_to: dt.date | None = None
    status: str = "standing"  # 问题线索台账: standing, withdrawn or all
    as_of: dt.date | None = None  # 整改台账: judge overdue items on this date
    account: str | None = None  # 发放清册: one account's payments (its id)
    household: str | None = None  # 一户一档: a household's id or code

    def dates(self) -> str:
        if self.date_from is None and self.date_to is None:
            return ""
        return (f"业务日期 {self.date_from.isoformat() if self.date_from else '不限'} 至 "
                f"{self.date_to.isoformat() if self.date_to else '不限'}")


@dataclass
class Context:
    db: Db  # the read models, caught up with the log
    app: Zhuisu
    covers: Covers = covers_all
    role: str | None = None  # the reader's role (masking); None: the operator
    on: dt.date = field(default_factory=today)  # 填报日期
    _regions: dict[str, dict] = field(default_factory=dict, repr=False)
    _chains: dict[int, dict | None] = field(default_factory=dict, repr=False)
    _officials: dict[str, str | None] = field(default_factory=dict, repr=False)

    # places -----------------------------------------------------------------------------
    def region(self, code: str, field: str = "region") -> dict:
        """A region (code, name, level, path) as the read models know it."""
        if code not in self._regions:
            found = cq.region_of(self.db, code)
            if found is None:
                raise NotFound(f"no region {code}", field=field)
            self._regions[code] = found
        return self._regions[code]

    def region_in_reach(self, code: str | None, field: str = "region") -> dict:
        """The ledger's region, if the reader's jurisdiction covers it."""
        if not code:
            raise InvalidInput("give the region (a region code) the ledger is for", field=field)
        if len(code) > 32:
            raise InvalidInput("a region code has at most 32 characters", field=field)
        region = self.region(code, field)
        self.covers(region["path"], f"地区 {code}", field)
        return region

    def label(self, code: str | None) -> str | None:
        """'坪地村（522625100001）' (the code alone if the read models have no such region)."""
        if not code:
            return None
        try:
            return f"{self.region(code)['name']}（{code}）"
        except NotFound:
            return code

    def region_read(self, region: dict) -> Read:
        return Read("region", region["code"], dict(region["path"]))

    # people -----------------------------------------------------------------------------
    def event_signers(self, log_position: int) -> list[dict]:
        """Who signed the event at ``log_position`` (name, role, position), in role order."""
        if log_position not in self._chains:
            try:
                self._chains[log_position] = chains.event_chain(self.db, int(log_position))
            except NotFound:
                self._chains[log_position] = None
        return (self._chains[log_position] or {}).get("signatures") or []

    def official_read(self, official_id: str) -> Read | None:
        """An official named in a ledger, as a subject of the access log (None: unknown)."""
        try:
            official = self.app.load(Official, official_id, "official_id")
            return Read("official", str(official.id), self.region(official.region_code)["path"])
        except (NotFound, InvalidInput):
            return None

    def official_name(self, official_id: str) -> str | None:
        """An official's name, from the signatures read so far, else the official itself."""
        if official_id not in self._officials:
            name = next((s["name"] for c in self._chains.values() if c
                         for s in c.get("signatures") or [] if s["official_id"] == official_id),
                        None)
            if name is None:
                try:
                    name = self.app.load(Official, official_id, "official_id").name
                except (NotFound, InvalidInput):
                    name = None
            self._officials[official_id] = name
        return self._officials[official_id]


def signer(sig: Mapping[str, Any], *, role: bool = False, position: bool = False) -> str:
    """'张三' / '张三（经办）' / '张三（乡镇财政所会计）' for one signature."""
    name = sig.get("name") or sig.get("code") or str(sig.get("official_id", ""))[:8]
    what = []
    if role:
        what.append(SIGN_ROLE_ZH.get(sig.get("role") or "", sig.get("role") or ""))
    if position and sig.get("position"):
        what.append(POSITION_ZH.get(sig["position"], sig["position"]))
    what = [w for w in what if w]
    return f"{name}（{'，'.join(what)}）" if what else name


def by_role(signatures: list[Mapping[str, Any]], *, position: bool = False) -> dict[str, str]:
    """role → '张三' (several signers of one role joined with '、')."""
    out: dict[str, list[str]] = {}
    for s in signatures:
        out.setdefault(s.get("role") or "", []).append(signer(s, position=position))
    return {r: "、".join(names) for r, names in out.items()}
