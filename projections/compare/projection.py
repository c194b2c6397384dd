"""The comparison projection: the models of ``inspection.rules.compare`` kept up to date as
registers and events arrive, identical after a rebuild.

Joins look every way, because any side may come first in the log:

- a snapshot becoming its register's current one (``RegisterSnapshot.Imported``) is
  joined, in SQL, with every household member by ID hash (``register_rows`` ⋈
  ``cmp_members``): each row about a member is judged (``row_matches``; a death row against
  the payments the household received; a disability snapshot against households giving
  因残 as a cause);
- a household's registration (county approval) looks its members up in the current
  snapshots of every register;
- a household payment looks its payee's members up in the current death registers, and
  adds itself (evidence, signers) to the household's standing matches;
- an application looks for the same ID hash in other households (``COMPARE_DUPLICATE_PERSON``).

An older snapshot imported after a newer one of the same register (same department and
kind) never becomes current: it makes no matches.  Matches are never withdrawn; a match
found again (a newer snapshot, the same subject) is a no-op and keeps its first snapshot.
Payments are taken as made: a reversal (冲正) does not withdraw a match.
"""

from __future__ import annotations

import datetime as dt
import zlib

from sqlalchemy import select

from inspection.rules.compare import (
    MODELS,
    CompareSettings,
    disability_contradicts,
    paid_after_death,
    row_matches,
    values_for,
    yuan,
)
from projections.compare.evidence import register_rows
from projections.compare.tables import current, households, matches, members, snapshots
from projections.events import Event
from projections.flags.base import deepest
from projections.flags.tables import LEVELS
from projections.projection import Projection, Row, Rows, handles

IDENTIFICATION = (
    "Household.AppraisedByVillage", "Household.VerifiedByVillage", "Household.NoticePosted",
    "Household.ObjectionResolved", "Household.ReviewedByTownship",
    "Household.ApprovedByCounty")
NOT_GROWN = {"COMPARE_PAID_AFTER_DEATH"}  # a match per payment; the others take payments


def _signers(signatures: list[dict] | None) -> list[str]:
    return [s["official_id"] for s in signatures or [] if s.get("role") != "witness"]


class Comparison(Projection):
    name = "compare"
    LAYOUT = 1
    tables = (matches, snapshots, current, households, members)

    def __init__(self, settings: CompareSettings | None = None):
        self._settings = settings

    @property
    def settings(self) -> CompareSettings:
        if self._settings is None:
            self._settings = CompareSettings.from_env()
        return self._settings

    @property
    def version(self) -> int:  # type: ignore[override]
        return zlib.crc32(f"{self.LAYOUT}:{self.settings.digest()}".encode()) & 0x7FFFFFFF

    # households ----------------------------------------------------------------------
    def _household(self, rows: Rows, household_id: str) -> Row:
        h = rows.get(households, household_id)
        if h is None:
            h = rows.insert(households, {
                "household_id": household_id, "code": None, "region_path": None,
                "applied_on": None, "applied_position": None, "registered_on": None,
                "registered_position": None, "causes": [], "disabled_cause": False,
                "members": [], "id_signers": [], "id_positions": [], "payments": []})
        return h

    @handles("Household.Applied")
    def applied(self, e: Event, rows: Rows) -> None:
        hid = e.originator_id
        h = self._household(rows, hid)
        causes = [e["main_cause"], *e.get("secondary_causes", [])]
        h.update(code=e["household_code"], region_path=e["region_path"], applied_on=e.day,
                 applied_position=e.position, causes=causes,
                 disabled_cause="disability" in causes,
                 members=[[m["id_number_hash"], m["name"]] for m in e["members"]],
                 id_signers=list(dict.fromkeys([*h["id_signers"],
                                                *_signers(e.get("signatures"))])),
                 id_positions=[*h["id_positions"], e.position])
        rows.changed(households, h)
        for m in e["members"]:
            if rows.get(members, m["id_number_hash"], hid) is None:
                rows.insert(members, {"id_hash": m["id_number_hash"], "household_id": hid,
                                      "name": m["name"]})
        rows.flush()
        for id_hash, name in h["members"]:
            others = rows.conn.execute(
                select(members.c.household_id).where(members.c.id_hash == id_hash,
                                                     members.c.household_id != hid)
                .order_by(members.c.household_id)).scalars().all()
            for other_id in others:
                other = rows.get(households, other_id)
                if other is None or other["code"] is None:
                    continue
                same = (other["region_path"] or {}).get("village") == \
                    (h["region_path"] or {}).get("village")
                self._raise(rows, e, "COMPARE_DUPLICATE_PERSON", f"{hid}:{id_hash[:16]}", h=h,
                            id_hash=id_hash, day=e.day,
                            evidence=[{"kind": "household", "ref": hid},
                                      {"kind": "household", "ref": other_id},
                                      {"kind": "event", "ref": other["applied_position"]},
                                      {"kind": "event", "ref": e.position}],
                            signers=h["id_signers"],
                            detail={"member": name, "other_household_id": other_id,
                                    "other_code": other["code"], "same_village": same},
                            values={"member": name, "other_code": other["code"],
                                    "where": "（同村）" if same else "（跨村）",
                                    "where_en": "(same village)" if same
                                    else "(another village)"})
                break

    @handles(*IDENTIFICATION)
    def identification(self, e: Event, rows: Rows) -> None:
        h = rows.get(households, e.originator_id)
        if h is None:
            return
        h["id_signers"] = list(dict.fromkeys([*h["id_signers"],
                                              *_signers(e.get("signatures"))]))
        h["id_positions"] = [*h["id_positions"], e.position]
        rows.changed(households, h)
        if e.step == "Household.ApprovedByCounty" and h["registered_on"] is None:
            h.update(registered_on=e.day, registered_position=e.position)
            self._household_registered(e, rows, h)

    # payments ------------------------------------------------------------------------
    def prefetch(self, events: list[Event], rows: Rows) -> None:
        """Payments arrive in bulk (a 发放清册 is thousands of ``Disbursed`` in one batch):
        their households, the current death registers' rows about their members and their
        standing matches are read here in a few statements, not a few per payment.  Not
        when the batch imports a register (the current snapshots change within it)."""
        self._pre = None
        payees = sorted({e["payee_id"] for e in events if e.step == "FundAccount.Disbursed"
                         and e["payee_kind"] == "household"})
        if len(payees) < 2 or any(e.step == "RegisterSnapshot.Imported" for e in events):
            return
        rows.load(households, [(hid,) for hid in payees])
        hashes = sorted({m[0] for hid in payees if (h := rows.get(households, hid))
                         for m in h["members"]})
        c, r, m = current.c, register_rows.c, matches.c
        sids = rows.conn.execute(select(c.snapshot_id).where(c.kind == "death")
                                 .order_by(c.snapshot_id)).scalars().all()
        death: dict[str, list[dict]] = {}
        if sids and hashes:
            register_rows.create(rows.conn, checkfirst=True)
            for i in range(0, len(hashes), 500):
                for x in rows.conn.execute(
                        select(r.snapshot_id, r.row_no, r.kind, r.id_hash, r.fields)
                        .where(r.snapshot_id.in_(sids), r.id_hash.in_(hashes[i:i + 500]))
                        ).mappings():
                    death.setdefault(x["id_hash"], []).append(dict(x))
        standing: dict[str, list[str]] = {}
        for i in range(0, len(payees), 500):
            for match_id, hid in rows.conn.execute(
                    select(m.match_id, m.household_id)
                    .where(m.household_id.in_(payees[i:i + 500]))).all():
                standing.setdefault(hid, []).append(match_id)
        rows.load(matches, [(x,) for ids in standing.values() for x in ids])
        self._pre = {"rows": rows, "hashes": set(hashes), "death": death,
                     "standing": standing, "payees": set(payees)}

    def _prefetched(self, rows: Rows, hid: str, hashes: list[str]) -> dict | None:
        pre = getattr(self, "_pre", None)
        if pre is None or pre["rows"] is not rows or hid not in pre["payees"] or \
                not set(hashes) <= pre["hashes"]:
            return None
        return pre

    @handles("FundAccount.Disbursed")
    def disbursed(self, e: Event, rows: Rows) -> None:
        if e["payee_kind"] != "household":
            return
        h = self._household(rows, e["payee_id"])
        entry = {"movement_id": e["movement_id"], "account_id": e.originator_id,
                 "paid_on": e.day.isoformat(), "amount_fen": e["amount_fen"],
                 "purpose": e["purpose"], "position": e.position,
                 "signers": _signers(e.get("signatures"))}
        h["payments"] = [*h["payments"], entry]
        rows.changed(households, h)
        hashes = [m[0] for m in h["members"]]
        pre = self._prefetched(rows, h["household_id"], hashes)
        if pre is None:
            rows.flush()
            found = self._current_rows(rows, hashes, kind="death") if hashes else []
            conn, m = rows.conn, matches.c
            standing = list(conn.execute(
                select(m.match_id).where(m.household_id == h["household_id"])
                .order_by(m.match_id)).scalars().all())
        else:
            found = sorted((x for x in (r for hh in set(hashes) for r in pre["death"]
                                        .get(hh, []))),
                           key=lambda x: (x["snapshot_id"], x["row_no"]))
            standing = sorted(pre["standing"].get(h["household_id"], []))
        for r in found:
            self._judge(rows, e, h, r, payments=[entry])
        for match_id in standing:
            row = rows.need(matches, match_id)
            if row["model_id"] in NOT_GROWN:
                continue
            row["evidence"] = [*row["evidence"], _payment_ref(entry),
                               {"kind": "event", "ref": entry["position"]}]
            row["signers"] = list(dict.fromkeys([*row["signers"], *entry["signers"]]))
            detail = dict(row["detail"])
            detail["payments"] = detail.get("payments", 0) + 1
            detail["paid_fen"] = detail.get("paid_fen", 0) + entry["amount_fen"]
            row["detail"] = detail
            rows.changed(matches, row)

    # snapshots -----------------------------------------------------------------------
    @handles("RegisterSnapshot.Imported")
    def imported(self, e: Event, rows: Rows) -> None:
        sid = e.originator_id
        as_of = e["as_of"]
        snap = rows.insert(snapshots, {
            "snapshot_id": sid, "department": e["department"], "kind": e["kind"],
            "as_of": as_of, "file_sha256": e["file_sha256"], "filename": e["filename"],
            "rows_read": e["rows_read"], "row_count": e["row_count"],
            "rows_root": e["rows_root"], "imported_by": e["imported_by"],
            "log_position": e.position, "superseded_by": None})
        cur = rows.get(current, e["department"], e["kind"])
        if cur is not None and (cur["as_of"], cur["log_position"]) > (as_of, e.position):
            snap["superseded_by"] = cur["snapshot_id"]  # older than the current one
            return
        if cur is not None:
            old = rows.need(snapshots, cur["snapshot_id"])
            old["superseded_by"] = sid
            rows.changed(snapshots, old)
            cur.update(snapshot_id=sid, as_of=as_of, log_position=e.position)
            rows.changed(current, cur)
        else:
            rows.insert(current, {"department": e["department"], "kind": e["kind"],
                                  "snapshot_id": sid, "as_of": as_of,
                                  "log_position": e.position})
        rows.flush()
        register_rows.create(rows.conn, checkfirst=True)
        r, mem = register_rows.c, members.c
        found = rows.conn.execute(
            select(r.snapshot_id, r.row_no, r.kind, r.id_hash, r.fields, mem.household_id)
            .join(members, mem.id_hash == r.id_hash).where(r.snapshot_id == sid)
            .order_by(r.row_no, mem.household_id)).mappings().all()
        for found_row in found:
            h = rows.get(households, found_row["household_id"])
            if h is not None and h["code"] is not None:
                self._judge(rows, e, h, dict(found_row), payments=h["payments"])
        if e["kind"] == "disability":
            hids = rows.conn.execute(
                select(households.c.household_id).where(households.c.disabled_cause.is_(True))
                .order_by(households.c.household_id)).scalars().all()
            for hid in hids:
                h = rows.need(households, hid)
                if h["registered_on"] is not None:
                    self._disability(rows, e, h, [sid])

    # judging -------------------------------------------------------------------------
    def _household_registered(self, e: Event, rows: Rows, h: Row) -> None:
        rows.flush()
        hashes = [m[0] for m in h["members"]]
        for r in self._current_rows(rows, hashes):
            if r["kind"] != "death":
                self._judge(rows, e, h, r, payments=h["payments"])
        if h["disabled_cause"]:
            c = current.c
            sids = rows.conn.execute(select(c.snapshot_id).where(c.kind == "disability")
                                     .order_by(c.snapshot_id)).scalars().all()
            if sids:
                self._disability(rows, e, h, list(sids))

    def _current_rows(self, rows: Rows, hashes: list[str],
                      kind: str | None = None) -> list[dict]:
        c, r = current.c, register_rows.c
        q = select(c.snapshot_id)
        if kind is not None:
            q = q.where(c.kind == kind)
        sids = rows.conn.execute(q.order_by(c.snapshot_id)).scalars().all()
        if not sids:
            return []
        return [dict(x) for x in rows.conn.execute(
            select(r.snapshot_id, r.row_no, r.kind, r.id_hash, r.fields)
            .where(r.snapshot_id.in_(sids), r.id_hash.in_(hashes))
            .order_by(r.snapshot_id, r.row_no)).mappings()]

    def _judge(self, rows: Rows, e: Event, h: Row, r: dict, payments: list[dict]) -> None:
        """A register row about a member of household ``h``."""
        kind, fields, id_hash = r["kind"], r["fields"], r["id_hash"]
        name = next((n for x, n in h["members"] if x == id_hash), "")
        snap = rows.need(snapshots, r["snapshot_id"])
        base = [{"kind": "register", "ref": r["snapshot_id"], "row_no": r["row_no"],
                 "register": kind, "department": snap["department"]},
                {"kind": "event", "ref": snap["log_position"]},
                {"kind": "household", "ref": h["household_id"]}]
        common = {"member": name, "register": kind, "department": snap["department"],
                  "as_of": snap["as_of"].isoformat(), "fields": fields}
        if kind == "death":
            for p in payments:
                if not paid_after_death(fields, dt.date.fromisoformat(p["paid_on"])):
                    continue
                self._raise(rows, e, "COMPARE_PAID_AFTER_DEATH",
                            f"{p['movement_id']}:{id_hash[:16]}", h=h, id_hash=id_hash,
                            snapshot_id=r["snapshot_id"], row_no=r["row_no"], kind=kind,
                            day=dt.date.fromisoformat(p["paid_on"]),
                            evidence=[*base, _payment_ref(p), {"kind": "event",
                                                               "ref": p["position"]}],
                            signers=p["signers"],
                            detail={**common, "movement_id": p["movement_id"],
                                    "account_id": p["account_id"],
                                    "amount_fen": p["amount_fen"], "paid_on": p["paid_on"],
                                    "purpose": p["purpose"]},
                            values=values_for("COMPARE_PAID_AFTER_DEATH", fields, name,
                                              paid_on=p["paid_on"],
                                              amount=yuan(p["amount_fen"])))
            return
        if h["registered_on"] is None:
            return
        model = row_matches(kind, fields, self.settings, applied_on=h["applied_on"])
        if model is None:
            return
        self._raise_household(rows, e, model, h, id_hash=id_hash, snapshot_id=r["snapshot_id"],
                              row_no=r["row_no"], kind=kind, base=base, detail=common,
                              values=values_for(model, fields, name,
                                                applied_on=str(h["applied_on"] or "")))

    def _disability(self, rows: Rows, e: Event, h: Row, sids: list[str]) -> None:
        hashes = [m[0] for m in h["members"]]
        r = register_rows.c
        n = len(rows.conn.execute(select(r.row_no).where(
            r.snapshot_id.in_(sids), r.id_hash.in_(hashes)).limit(1)).all())
        if not disability_contradicts(h["causes"], n):
            return
        sid = sorted(sids, key=lambda s: (rows.need(snapshots, s)["as_of"],
                                          rows.need(snapshots, s)["log_position"]))[-1]
        snap = rows.need(snapshots, sid)
        base = [{"kind": "register", "ref": sid, "row_no": None, "register": "disability",
                 "department": snap["department"]},
                {"kind": "event", "ref": snap["log_position"]},
                {"kind": "household", "ref": h["household_id"]}]
        self._raise_household(rows, e, "COMPARE_DISABILITY_CONTRADICTS", h, id_hash=None,
                              snapshot_id=sid, row_no=None, kind="disability", base=base,
                              detail={"register": "disability", "department": snap["department"],
                                      "as_of": snap["as_of"].isoformat(),
                                      "causes": h["causes"]},
                              values={})

    def _raise_household(self, rows: Rows, e: Event, model: str, h: Row, *,
                         id_hash: str | None, snapshot_id: str, row_no: int | None, kind: str,
                         base: list[dict], detail: dict, values: dict) -> None:
        pays = h["payments"]
        evidence = [*base, *({"kind": "event", "ref": p} for p in h["id_positions"])]
        for p in pays:
            evidence += [_payment_ref(p), {"kind": "event", "ref": p["position"]}]
        signers = [*h["id_signers"], *(s for p in pays for s in p["signers"])]
        subject = f"{h['household_id']}:{id_hash[:16]}" if id_hash else h["household_id"]
        self._raise(rows, e, model, subject, h=h, id_hash=id_hash, snapshot_id=snapshot_id,
                    row_no=row_no, kind=kind, day=h["registered_on"], evidence=evidence,
                    signers=signers,
                    detail={**detail, "payments": len(pays),
                            "paid_fen": sum(p["amount_fen"] for p in pays)},
                    values=values)

    def _raise(self, rows: Rows, e: Event, model_id: str, subject: str, *, h: Row,
               id_hash: str | None, day: dt.date | None, evidence: list[dict],
               signers: list[str], detail: dict, values: dict, snapshot_id: str | None = None,
               row_no: int | None = None, kind: str | None = None) -> None:
        match_id = f"{model_id}:{subject}"
        if rows.get(matches, match_id) is not None:
            return
        pre = getattr(self, "_pre", None)
        if pre is not None and pre["rows"] is rows and model_id not in NOT_GROWN:
            pre["standing"].setdefault(h["household_id"], []).append(match_id)
        model = MODELS[model_id]
        zh, en = model.explain(**values)
        path = dict(h["region_path"] or {})
        rows.insert(matches, {
            "match_id": match_id, "model_id": model_id, "severity": model.severity,
            "register_kind": kind, "snapshot_id": snapshot_id, "row_no": row_no,
            "household_id": h["household_id"], "id_hash": id_hash,
            "region_code": deepest(path), "region_path": path,
            **{level: path.get(level) for level in LEVELS},
            "effective_date": day, "log_position": e.position, "evidence": evidence,
            "signers": list(dict.fromkeys(signers)),
            "detail": {**detail, "household_code": h["code"]},
            "explanation_zh": zh, "explanation_en": en})


def _payment_ref(p: dict) -> dict:
    return {"kind": "payment", "ref": p["movement_id"], "account_id": p["account_id"]}

