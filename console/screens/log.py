"""日志: the tamper-evident log — signed checkpoints (newest first), the log's public key and
its SHA-256 fingerprint, the integrity alarm, a full verification run on demand (its last
result kept in memory), and downloads: a checkpoint's signed note, every checkpoint with the
keys, inclusion and consistency proof bundles.

The same data as the API (``api/routes/log.py``): ``audit.log`` for checkpoints, keys and
proofs, ``audit.verify.verify_log`` for the verification.  An inclusion proof carries the
event's record only when the person's jurisdiction covers the event's subject (that read is
recorded in the access log); anyone else gets the leaf hash in its place
(``zhuisu-leaf-inclusion-proof/v1``), as ``GET /log/proofs/inclusion`` answers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from typing import Annotated, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from access.reads import Read
from access.roles import Action
from audit import alarm
from audit import log as audit_log
from audit.errors import NotInLog
from audit.merkle import hash_leaf
from audit.records import decode_record
from audit.verify import verify_log
from console.web import (
    ConsoleRoute,
    Person,
    check_csrf,
    may,
    now,
    page,
    record,
    redirect,
    zhuisu,
)
from domain.case import Case
from domain.errors import InvalidInput, NotFound
from domain.fund_account import FundAccount
from domain.household import Household
from domain.official import Official
from domain.project import Project
from domain.region import Region, Unit

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 20
MAX_ID = 2**62
LEAF_INCLUSION = "zhuisu-leaf-inclusion-proof/v1"
FINDING_ZH = {"changed": "记录被修改", "deleted": "记录被删除", "inserted": "记录被插入",
              "swapped": "记录被调换", "reordered": "记录顺序被改变", "truncated": "日志被截断",
              "rewritten": "日志被整体改写", "tree": "默克尔树被改动", "checkpoint": "检查点不成立"}
KIND_ZH = {"checkpoint": "检查点", "key-rotation": "密钥轮换"}
_running = threading.Lock()  # one full verification at a time per process


def fingerprint(key: Any) -> str:
    """SHA-256 of the raw 32-byte Ed25519 public key, in groups of four hex digits."""
    digest = hashlib.sha256(key.public_key).hexdigest()
    return " ".join(digest[i:i + 4] for i in range(0, len(digest), 4))


def _state(request: Request) -> dict[str, Any] | None:
    return getattr(request.app.state, "console_verification", None)


def _checkpoints(store: Any, before: int | None) -> tuple[list[Any], int | None]:
    """A page of checkpoints, newest first, with ids below ``before`` (None: from the
    newest), and the ``before`` of the next (older) page, or None."""
    try:
        latest = audit_log.get_checkpoint(store).id
        first = audit_log.list_checkpoints(store, limit=1)[0].id
    except (NotInLog, IndexError):
        return [], None
    high = latest if before is None else min(latest, before - 1)
    found: list[Any] = []
    while high >= first and len(found) < PAGE:  # ids may have gaps (sequences)
        low = max(0, high - PAGE)
        found += sorted((r for r in audit_log.list_checkpoints(store, after_id=low, limit=PAGE)
                         if r.id <= high), key=lambda r: -r.id)
        high = low
    found = found[:PAGE]
    older = found[-1].id if found and found[-1].id > first else None
    return found, older


@router.get("/log", response_class=HTMLResponse)
def log_page(request: Request, person: Person,
             before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> HTMLResponse:
    may(person, Action.READ)
    store = request.app.state.audit
    rows, older = _checkpoints(store, before)
    checkpoints = [{"id": r.id, "kind": r.kind, "size": r.checkpoint.size,
                    "root": r.checkpoint.root.hex(), "time": r.checkpoint.time} for r in rows]
    keys = audit_log.log_key_history(store)
    current = audit_log.public_key(store)
    current_key = next((k.key for k in keys if k.key.vkey == current), None)
    return page(request, "log.html", person, checkpoints=checkpoints, older=older,
                before=before, vkey=current, origin=store.config.origin,
                fingerprint=fingerprint(current_key) if current_key else None,
                keys=[{**k.to_dict(), "fingerprint": fingerprint(k.key)} for k in keys],
                alarm=alarm.current_alarm(store), last=_state(request), KIND_ZH=KIND_ZH,
                FINDING_ZH=FINDING_ZH, running=_running.locked())


@router.post("/log/verify", response_class=HTMLResponse)
async def verify_now(request: Request, person: Person) -> Response:
    """Run the full verification (``zhuisu verify``) now; keep its result for the page."""
    await check_csrf(request, person)
    may(person, Action.READ)
    if _running.acquire(blocking=False):
        try:
            began = now()
            result = await run_in_threadpool(verify_log, request.app.state.audit)
            request.app.state.console_verification = {
                "at": began, "by": person.account.name, "result": result.to_dict()}
        finally:
            _running.release()
    if request.headers.get("hx-request") == "true":
        return page(request, "log_verification.html", person, last=_state(request),
                    FINDING_ZH=FINDING_ZH, running=_running.locked())
    return redirect("/console/log#h-verify")


@router.get("/log/checkpoint.txt")
def checkpoint_note(request: Request, person: Person,
                    id: Annotated[str | None, Query(max_length=20)] = None
                    ) -> Response:
    """One checkpoint's signed note as text (the latest if no id is given)."""
    may(person, Action.READ)
    cid = _int(id, "id") if id and id.strip() and id.strip() != "latest" else None
    found = audit_log.get_checkpoint(request.app.state.audit, cid)
    return _download(found.note, f"checkpoint-{found.id}.txt", "text/plain; charset=utf-8")


@router.get("/log/export.txt")
def export(request: Request, person: Person) -> Response:
    """Every checkpoint with the log's public keys, to keep outside the system."""
    may(person, Action.READ)
    text = audit_log.export_checkpoints(request.app.state.audit, fmt="text")
    return _download(text, "checkpoints.txt", "text/plain; charset=utf-8")


@router.get("/log/proofs/inclusion.json")
def inclusion_proof(request: Request, person: Person,
                    position: Annotated[str | None, Query(max_length=20)] = None,
                    checkpoint: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    """An inclusion proof bundle of the event at a log position (notification id) in a
    checkpoint (default: the latest) — its record only within the person's jurisdiction."""
    may(person, Action.READ)
    if not position or not position.strip():
        raise InvalidInput("请填写事件的日志位置", field="position")
    pos = _int(position, "position")
    cid = _int(checkpoint, "checkpoint") if checkpoint and checkpoint.strip() else None
    bundle = audit_log.prove_inclusion(request.app.state.audit, position=pos,
                                       checkpoint_id=cid)
    bundle = _disclosed(request, person, bundle)
    return _download(json.dumps(bundle, ensure_ascii=False, indent=2) + "\n",
                     f"inclusion-{pos}.json", "application/json")


@router.get("/log/proofs/consistency.json")
def consistency_proof(request: Request, person: Person,
                      old: Annotated[str | None, Query(max_length=20)] = None,
                      new: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    """A consistency proof bundle from an older checkpoint to a newer one (default: latest)."""
    may(person, Action.READ)
    if not old or not old.strip():
        raise InvalidInput("请填写较早检查点的编号", field="old")
    old_id = _int(old, "old")
    new_id = _int(new, "new") if new and new.strip() else None
    bundle = audit_log.prove_consistency(request.app.state.audit, old_id, new_id)
    name = f"consistency-{old_id}-{new_id or 'latest'}.json"
    return _download(json.dumps(bundle, ensure_ascii=False, indent=2) + "\n", name,
                     "application/json")


def _disclosed(request: Request, person: Person, bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle as is, its subject's read recorded, if the person's jurisdiction covers
    the event's subject; otherwise the proof with the leaf hash in place of the record."""
    raw = base64.b64decode(bundle["record"])
    subject = _subject(request, decode_record(raw))
    principal = person.account.principal
    if principal.covers(subject.region_path):
        record(request, person, [subject])
        return bundle
    return {"type": LEAF_INCLUSION, "checkpoint": bundle["checkpoint"],
            "leaf_index": bundle["leaf_index"],
            "leaf_hash": base64.b64encode(hash_leaf(raw)).decode(), "proof": bundle["proof"],
            "record_withheld": f"the event's subject lies outside the account's jurisdiction "
                               f"({principal.jurisdiction}): only its leaf hash is shown"}


KINDS = ((Household, "household"), (FundAccount, "account"), (Project, "project"),
         (Official, "official"), (Case, "case"), (Region, "region"), (Unit, "unit"))


def _subject(request: Request, stored: Any) -> Read:
    """What the event's aggregate is and where it lies (as the API's ``subject_of``)."""
    app = zhuisu(request)
    try:
        aggregate = app.repository.get(UUID(stored.originator_id.decode()),
                                       deepcopy_from_cache=False)
    except (AggregateNotFoundError, ValueError):
        return Read("event", str(stored.position), {})
    kind = next((k for cls, k in KINDS if isinstance(aggregate, cls)),
                type(aggregate).__name__.lower())
    if isinstance(aggregate, Region):
        return Read(kind, aggregate.code, dict(aggregate.path))
    if isinstance(aggregate, (Official, Unit)):
        try:
            path = dict(app.region(aggregate.region_code).path)
        except NotFound:
            path = {}
        return Read(kind, str(aggregate.id), path)
    return Read(kind, str(aggregate.id), dict(getattr(aggregate, "region_path", {}) or {}))


def _int(text: str | None, field: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError as exc:
        raise InvalidInput("应为正整数", field=field) from exc
    if not 0 < value <= MAX_ID:
        raise InvalidInput("应为正整数", field=field)
    return value


def _download(text: str, name: str, media: str) -> Response:
    cls = PlainTextResponse if media.startswith("text/") else Response
    return cls(text, media_type=media,
               headers={"Content-Disposition": f'attachment; filename="{name}"'})
