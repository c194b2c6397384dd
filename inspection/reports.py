"""Inspection reports (检查报告): what one case, or a county's summary, shows — gathered here,
laid out by ``exchange.reports``.

A report is a list of sheets, each a header of stable English field names and rows of plain
values (money as integer fen), built from the read models only, so what it shows is what
``GET /cases/{case_no}`` and the other queries show:

* **case** — the facts (案件), persons under review with their 一案双查 basis (人员),
  evidence (证据), findings (事实), accountability actions (问责), recovery per line and per
  official, ordered / recovered / outstanding (追回), rectification status (整改), and for
  each payment the case concerns (its evidence, its orders, the payments its flags name)
  the responsibility chain: who signed which step, in which role and position, with which
  key (责任链, ``projections.chains.payment_chain``);
* **county** — flags per rule and township (问题线索), cases per status and type, recovery
  outstanding per unit and per official, 三率一度 per township, and the chains of the
  flagged payments (the first ``chain_limit``).

``Report.chains`` keeps each payment's chain as read, for the layouts that show more of it
(the payee).  ``exchange.reports`` writes these sheets as the machine-readable CSV (the
field names and fen as here) and lays the same data out for people (Chinese headers, 元,
合计 rows, masked ID and bank numbers) as an .xlsx: one writer, ``exchange.layout``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from domain.errors import InvalidInput, NotFound


class ReadSide(Protocol):
    """The queries a report is built from (``projections.read_side.ReadSide`` answers them
    from the read models; a report never reads a table itself)."""

    def case_view(self, case_no: str, *, as_of: dt.date | None = None) -> dict: ...
    def region_of(self, code: str) -> dict | None: ...
    def log_clock(self) -> dt.date | None: ...
    def list_cases(self, **query: Any) -> dict: ...
    def outstanding_recovery(self, **query: Any) -> Any: ...
    def rectification_items(self, **query: Any) -> Any: ...
    def case_counts(self, region_code: str | None = None) -> list[dict]: ...
    def metrics(self, region_code: str, year: int) -> dict: ...
    def payment_chain(self, movement_id: str, account_id: str | None) -> Any: ...
    def flags_kept(self) -> bool: ...
    def get_flag(self, flag_id: str) -> dict: ...
    def list_flags(self, **query: Any) -> dict: ...

MONEY = ["ordered_fen", "recovered_fen", "outstanding_fen"]
CHAIN_HEADER = ["payment_account_id", "payment_movement_id", "part", "step", "effective_date",
                "log_position", "amount_fen", "role", "official_code", "official_name",
                "position", "position_region", "responsibility", "key_id", "key_revoked_on"]
FIGURES = ("incidence", "wrong_exit", "missed", "satisfaction")
FLAG_PAGE = 1000


@dataclass
class Sheet:
    name: str
    header: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class Report:
    title: str
    sheets: list[Sheet]
    shown: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    """(kind, id, region path) of each case and flag the report shows (the access log)."""
    chains: list[tuple[str | None, str, dict | None]] = field(default_factory=list)
    """(account, movement, its chain or None when not found) of each payment shown."""

    def sheet(self, name: str) -> Sheet:
        return next(s for s in self.sheets if s.name == name)


# the case ---------------------------------------------------------------------------------
def case_report(read: ReadSide, case_no: str, *, as_of: dt.date | None = None) -> Report:
    view = read.case_view(case_no, as_of=as_of)
    facts = Sheet("案件 Case", ["field", "value"], [[k, view[k]] for k in (
        "case_no", "case_type", "title", "region_code", "status", "opened_on", "incident_date",
        "rectified_on", "closed_on", "suspend_policies", "flag_ids", "recorded_by", "summary",
        "conclusion")])
    recovery = view["recovery"]
    facts.rows += [[f"recovery_{k}", recovery["total"][k]] for k in MONEY]
    people = Sheet("人员 Persons", ["official_id", "code", "name", "unit_code", "basis",
                                  "reason", "region_code", "position", "added_on"],
                   [[p[k] for k in ("official_id", "code", "name", "unit_code", "basis",
                                    "reason", "region_code", "position", "added_on")]
                    for p in view["persons"]])
    proofs = Sheet("证据 Evidence", ["seq", "kind", "ref", "account_id", "note", "linked_on"],
                   [[e[k] for k in ("seq", "kind", "ref", "account_id", "note", "linked_on")]
                    for e in view["evidence"]])
    facts_found = Sheet("事实 Findings", ["finding_id", "text", "amount_fen", "recorded_on"],
                        [[f[k] for k in ("finding_id", "text", "amount_fen", "recorded_on")]
                         for f in view["findings"]])
    imposed = Sheet("问责 Actions", ["official_id", "code", "name", "action", "decision_no",
                                   "reason", "imposed_on"],
                    [[a[k] for k in ("official_id", "code", "name", "action", "decision_no",
                                     "reason", "imposed_on")] for a in view["actions"]])
    lines = Sheet("追回 Recovery", ["order_id", "ordered_on", "line_no", "account_id",
                                  "movement_id", "purpose", "payee_kind", "payee_id",
                                  "official_id", "code", "name", "role", *MONEY])
    for o in recovery["orders"]:
        for ln in o["lines"]:
            for s in ln["liable"]:
                lines.rows.append([o["order_id"], o["ordered_on"], ln["line_no"],
                                   ln["account_id"], ln["movement_id"], ln["purpose"],
                                   ln["payee_kind"], ln["payee_id"], s["official_id"],
                                   s["code"], s["name"], s["role"], *[s[k] for k in MONEY]])
    per_official = Sheet("追回 by official", ["official_id", "code", "name", "unit_code", *MONEY],
                         [[e[k] for k in ("official_id", "code", "name", "unit_code", *MONEY)]
                          for e in recovery["by_official"]])
    per_official.rows.append(["total", None, None, None, *[recovery["total"][k] for k in MONEY]])
    rect = Sheet("整改 Rectification", ["item_id", "problem", "unit_code", "official_code",
                                       "official_name", "deadline", "completed_on", "status",
                                       "days_overdue", "completion_evidence"],
                 [[i["item_id"], i["problem"], i["unit_code"], i["official"]["code"],
                   i["official"]["name"], i["deadline"], i["completed_on"], i["status"],
                   i["days_overdue"], i["completion_evidence"]]
                  for i in view["rectification"]["items"]])
    facts.rows.append(["rectification_as_of", view["rectification"]["as_of"]])
    found = payment_chains(read, _payments_of_case(read, view))
    chain = Sheet("责任链 Chains", CHAIN_HEADER, chain_rows(found))
    return Report(f"案件 {view['case_no']}", [facts, people, proofs, facts_found, imposed,
                                             lines, per_official, rect, chain],
                  [("case", view["case_id"], view["region_path"])], found)


def _payments_of_case(read: ReadSide, view: dict) -> list[tuple[str | None, str]]:
    """(account, movement) of every payment the case concerns, in the order first named."""
    found: list[tuple[str | None, str]] = []

    def add(account: str | None, movement: str) -> None:
        if all(m != movement for _, m in found):
            found.append((account, movement))

    for e in view["evidence"]:
        if e["kind"] == "payment":
            add(e["account_id"], e["ref"])
    for o in view["recovery"]["orders"]:
        for ln in o["lines"]:
            add(ln["account_id"], ln["movement_id"])
    for flag_id in view["flag_ids"] if read.flags_kept() else ():
        try:
            flag = read.get_flag(flag_id)
        except NotFound:
            continue
        for ref in _flag_payments(flag):
            add(*ref)
    return found


def _flag_payments(flag: dict) -> list[tuple[str | None, str]]:
    """The payments a flag names: its subject (a payment) and its payment evidence."""
    out = [(e.get("account_id"), str(e["ref"])) for e in flag.get("evidence") or []
           if e.get("kind") == "payment"]
    if flag.get("subject_kind") == "payment" and all(m != flag["subject_id"] for _, m in out):
        out.insert(0, (None, str(flag["subject_id"])))
    return out


def payment_chains(read: ReadSide, found: list[tuple[str | None, str]]
                   ) -> list[tuple[str | None, str, dict | None]]:
    """Each payment's chain (``ReadSide.payment_chain``), None for a payment not found."""
    out: list[tuple[str | None, str, dict | None]] = []
    for account, movement in found:
        try:
            out.append((account, movement, read.payment_chain(movement, account)))
        except NotFound:
            out.append((account, movement, None))
    return out


def chain_rows(found: list[tuple[str | None, str, dict | None]]) -> list[list[Any]]:
    """One row per signature on each payment's chain: the payment, what funded it, what
    became of it, and the payee household's registration."""
    rows: list[list[Any]] = []
    for account, movement, chain in found:
        if chain is None:
            rows.append([account, movement, "not found"] + [None] * (len(CHAIN_HEADER) - 3))
            continue
        pay = chain["payment"]
        parts = [("payment", pay)]
        parts += [("funding", st) for f in chain["funding"] for st in f["steps"]]
        parts += [("later", st) for st in chain["later"]]
        parts += [("payee registration", st)
                  for st in (chain["payee"] or {}).get("registration", [])]
        for part, st in parts:
            for s in st.get("signatures") or [{}]:
                rows.append([pay["account_id"], pay["movement_id"], part, st.get("step"),
                             st.get("effective_date"), st.get("log_position"),
                             st.get("amount_fen"), s.get("role"), s.get("code"), s.get("name"),
                             s.get("position"), s.get("position_region"),
                             s.get("responsibility"), s.get("key_id"), s.get("key_revoked_on")])
    return rows


# the county ------------------------------------------------------------------------------
def all_flags(read: ReadSide, region_code: str) -> list[dict] | None:
    """Every flag in a region's subtree (None when the flags read model is not installed)."""
    if not read.flags_kept():
        return None
    out: list[dict] = []
    after = None
    while True:
        page = read.list_flags(region_code=region_code, after=after, limit=FLAG_PAGE)
        out += page
        if len(page) < FLAG_PAGE:
            return out
        after = page[-1]["flag_id"]


def county_report(read: ReadSide, county_code: str, *, year: int | None = None,
                  as_of: dt.date | None = None, chain_limit: int = 50) -> Report:
    region = read.region_of(county_code)
    if region is None or region["level"] != "county":
        raise NotFound(f"no county {county_code}", field="code")
    clock = read.log_clock()
    if year is None:
        if clock is None:
            raise InvalidInput("the log is empty: give the year", field="year")
        year = clock.year
    found = all_flags(read, county_code)
    cases = read.list_cases(region_code=county_code, limit=100_000)["items"]
    by_unit = read.outstanding_recovery(by="unit", region_code=county_code)
    by_official = read.outstanding_recovery(by="official", region_code=county_code)
    figures = read.metrics(county_code, year)
    overdue = read.rectification_items(overdue_only=True, as_of=as_of, region_code=county_code)

    summary = Sheet("概况 Summary", ["field", "value"], [
        ["county", county_code], ["name", region["name"]], ["year", year],
        ["log_clock", clock.isoformat() if clock else None],
        ["flags", len(found) if found is not None else "flags read model not installed"],
        ["cases", len(cases)],
        *[[f"recovery_{k}", by_unit["total"][k]] for k in MONEY],
        ["rectification_items_overdue", len(overdue["items"])]])
    flag_sheet = Sheet("线索 Flags", ["rule_id", "severity", "township", "township_name",
                                    "flags"])
    if found is not None:
        names = {c["region_code"]: c["name"] for c in figures["children"]}
        counts: dict[tuple[str, str, str], int] = {}
        known: dict[str, str | None] = {}
        for f in found:
            key = (f["rule_id"], f["severity"], _township_of(read, f, known) or "")
            counts[key] = counts.get(key, 0) + 1
        flag_sheet.rows = [[r, s, t, names.get(t), n] for (r, s, t), n in sorted(counts.items())]
    status = Sheet("案件 Cases by status", ["status", "case_type", "cases"],
                   [[c["status"], c["case_type"], c["cases"]]
                    for c in read.case_counts(county_code)])
    listing = Sheet("案件 Cases", ["case_no", "case_type", "title", "region_code", "status",
                                 "opened_on", "rectified_on", "closed_on"],
                    [[c[k] for k in ("case_no", "case_type", "title", "region_code", "status",
                                     "opened_on", "rectified_on", "closed_on")] for c in cases])
    units = Sheet("追回 by unit", ["unit_code", *MONEY, "cases"],
                  [[e["unit_code"], *[e[k] for k in MONEY], ", ".join(e["cases"])]
                   for e in by_unit["items"]])
    units.rows.append(["total", *[by_unit["total"][k] for k in MONEY], None])
    officials = Sheet("追回 by official", ["official_id", "code", "name", "unit_code", *MONEY],
                      [[e[k] for k in ("official_id", "code", "name", "unit_code", *MONEY)]
                       for e in by_official["items"]])
    rates = Sheet("三率一度 by township", ["region_code", "name", "population",
                                        *[f"{f}_{part}" for f in FIGURES
                                          for part in ("numerator", "denominator", "rate",
                                                       "meets")]],
                  [_figures_row(r) for r in [*figures["children"], figures]])
    overdue_sheet = Sheet("整改逾期 Overdue", ["case_no", "item_id", "problem", "unit_code",
                                           "official_code", "deadline", "days_overdue"],
                          [[i["case_no"], i["item_id"], i["problem"], i["unit_code"],
                            i["official"]["code"], i["deadline"], i["days_overdue"]]
                           for i in overdue["items"]])
    flagged: list[tuple[str | None, str]] = []
    for f in found or []:
        for ref in _flag_payments(f):
            if all(m != ref[1] for _, m in flagged):
                flagged.append(ref)
    chained = payment_chains(read, flagged[:chain_limit])
    chain = Sheet("责任链 Chains", CHAIN_HEADER, chain_rows(chained))
    if len(flagged) > chain_limit:
        summary.rows.append(["chains_shown", f"{chain_limit} of {len(flagged)} flagged payments"])
    shown = [("case", c["case_id"], c["region_path"]) for c in cases]
    shown += [("flag", f["flag_id"], f.get("region_path") or {}) for f in found or []]
    return Report(f"县 {county_code} {year}", [summary, flag_sheet, status, listing, units,
                                              officials, rates, overdue_sheet, chain], shown,
                  chained)


def _figures_row(r: dict) -> list[Any]:
    return [r["region_code"], r["name"], r["population"],
            *[r[f][part] for f in FIGURES for part in ("numerator", "denominator", "rate",
                                                       "meets")]]


def _township_of(read: ReadSide, flag: dict, known: dict[str, str | None]) -> str | None:
    """The township of a flag's region (from its path, else the region's; ``known`` caches)."""
    path = flag.get("region_path") or {}
    if path.get("township"):
        return path["township"]
    code = flag.get("region_code")
    if not code:
        return None
    if code not in known:
        region = read.region_of(code)
        known[code] = (region or {}).get("path", {}).get("township")
    return known[code]
