"""What every family of ``projections.flags`` shares: raising and withdrawing a flag, the
log clock's row, a household's row, and where a payment or a signed step happened.

``FlagKeeping`` is the base of the families' mixins (``payments``, ``relations``,
``funds``, ``records``, ``exits``, ``cases``); ``projection.Flags`` combines them.  A
family calls another's method through ``self`` where one event concerns both (a payment
moves money: ``funds``; its payee may be a relative of a signer: ``relations``).
"""

from __future__ import annotations

import datetime as dt

from inspection.rules import RULES, RuleSettings
from projections.events import Event
from projections.flags.tables import (
    LEVELS,
    accounts,
    clock,
    flag_signers,
    flags,
    households,
    movements,
    projects,
)
from projections.projection import Row, Rows


class FlagKeeping:
    """The thresholds, and the rows and flags every family reads and writes."""

    def __init__(self, settings: RuleSettings | None = None):
        self._settings = settings

    @property
    def settings(self) -> RuleSettings:
        """The thresholds given, else those of the environment (``ZHUISU_FLAG_*``)."""
        if self._settings is None:
            self._settings = RuleSettings.from_env()
        return self._settings

    # raising and withdrawing -------------------------------------------------------------
    def _raise(self, rows: Rows, e: Event, rule_id: str, subject_id: str, *,
               path: dict | None, evidence: list[dict], signers: list[str], detail: dict,
               values: dict, day: dt.date | None = None, subject_kind: str | None = None,
               grow: bool = False) -> None:
        """Raise a flag (again: a no-op while it stands).  ``day``: the business date when
        the triggering event has none (a relative declared).  ``grow``: a standing flag
        takes the new evidence, signers, detail and explanation (a split that more payments
        joined) but keeps where and when it was raised."""
        flag_id = f"{rule_id}:{subject_id}"
        row = rows.get(flags, flag_id)
        if row is not None and row["withdrawn_position"] is None:
            if grow:
                self._grow(rows, row, evidence=evidence, signers=signers, detail=detail,
                           values=values)
            return
        rule = RULES[rule_id]
        zh, en = rule.explain(**values)
        path = dict(path or {})
        new = {"flag_id": flag_id, "rule_id": rule_id, "severity": rule.severity,
               "subject_kind": subject_kind or rule.subject_kind, "subject_id": subject_id,
               "region_code": deepest(path), "region_path": path,
               **{level: path.get(level) for level in LEVELS},
               "effective_date": e.get("effective_date") or day, "log_position": e.position,
               "evidence": evidence, "signers": list(dict.fromkeys(signers)),
               "detail": detail, "explanation_zh": zh, "explanation_en": en,
               "withdrawn_position": None}
        if row is None:
            rows.insert(flags, new)
        else:
            row.update(new)
            rows.changed(flags, row)
        for official_id in new["signers"]:
            if rows.get(flag_signers, official_id, flag_id) is None:
                rows.insert(flag_signers, {"official_id": official_id, "flag_id": flag_id})

    @staticmethod
    def _grow(rows: Rows, row: Row, *, evidence: list[dict], signers: list[str],
              detail: dict, values: dict) -> None:
        zh, en = RULES[row["rule_id"]].explain(**values)
        row.update(evidence=evidence, signers=list(dict.fromkeys(signers)), detail=detail,
                   explanation_zh=zh, explanation_en=en)
        rows.changed(flags, row)
        for official_id in row["signers"]:
            if rows.get(flag_signers, official_id, row["flag_id"]) is None:
                rows.insert(flag_signers, {"official_id": official_id,
                                           "flag_id": row["flag_id"]})

    @staticmethod
    def _withdraw(rows: Rows, e: Event, flag_id: str) -> None:
        row = rows.get(flags, flag_id)
        if row is not None and row["withdrawn_position"] is None:
            row["withdrawn_position"] = e.position
            rows.changed(flags, row)

    # the rows the families share -----------------------------------------------------------
    @staticmethod
    def _clock(rows: Rows) -> Row:
        row = rows.get(clock, "log")
        if row is None:
            row = rows.insert(clock, {"name": "log", "day": None, "idle_bound": None,
                                      "due_bound": None})
        return row

    def _household(self, rows: Rows, household_id: str) -> Row:
        """The household's row; a payment seen before the payee's application makes it."""
        h = rows.get(households, household_id)
        if h is None:
            h = rows.insert(households, {
                "household_id": household_id, "code": None, "region_path": None,
                "applied_position": None, "members": [], "registered": False, "id_signers": {},
                "transitions": [], "payments": [], "reviews": [], "exit_year": None,
                "exit_line_fen": None, "last_exit": None})
        return h

    # where it happened ---------------------------------------------------------------------
    @staticmethod
    def _payee_path(rows: Rows, account_id: str, kind: str, payee_id: str,
                    project_id: str | None) -> dict:
        """Where a payment went: the payee household's or project's region, else the account's."""
        if kind == "household":
            h = rows.get(households, payee_id)
            if h is not None and h["region_path"]:
                return h["region_path"]
        project = payee_id if kind == "project" else project_id
        if project:
            p = rows.get(projects, project)
            if p is not None:
                return p["region_path"]
        return rows.need(accounts, account_id)["region_path"]

    def _step_path(self, e: Event, rows: Rows) -> dict:
        return self._path_of(rows, e.step, e.originator_id, e.get("movement_id"))

    def _path_of(self, rows: Rows, step: str, originator_id: str,
                 movement_id: str | None) -> dict:
        """Where a signed step happened: its household's or project's region; a payment's
        payee's (see ``_payee_path``); another money step's account's."""
        aggregate = step.partition(".")[0]
        if aggregate == "Household":
            return rows.need(households, originator_id)["region_path"] or {}
        if aggregate == "Project":
            return rows.need(projects, originator_id)["region_path"]
        if step == "FundAccount.Disbursed" and movement_id:
            m = rows.need(movements, originator_id, movement_id)
            return self._payee_path(rows, originator_id, m["payee_kind"], m["payee_id"],
                                    m["project_id"])
        return rows.need(accounts, originator_id)["region_path"]


def subject_of(e: Event) -> tuple[str, str]:
    """A payment is named by its movement id, any other step by ``{originator}@{version}``."""
    if e.step == "FundAccount.Disbursed":
        return "payment", e["movement_id"]
    return "step", f"{e.originator_id}@{e.version}"


def subject_evidence(e: Event) -> list[dict]:
    aggregate = e.step.partition(".")[0]
    if e.step == "FundAccount.Disbursed":
        return [{"kind": "payment", "ref": e["movement_id"], "account_id": e.originator_id}]
    if aggregate == "FundAccount":
        return [{"kind": "account", "ref": e.originator_id}]
    if aggregate == "Household":
        return [{"kind": "household", "ref": e.originator_id}]
    return []


def payment_ref(entry: dict) -> dict:
    """A payment of a household's (or a split group's) ``payments`` as evidence."""
    return {"kind": "payment", "ref": entry["movement_id"], "account_id": entry["account_id"]}


def group_key(*parts: str) -> str:
    return "|".join(parts)


def deepest(path: dict) -> str | None:
    for level in reversed(LEVELS):
        if path.get(level):
            return path[level]
    return None
