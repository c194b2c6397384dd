"""What follows the event log inside the server: the hash tree, the projections, receipts,
checkpoints, and the sweep that re-verifies the log.

After every accepted write the server brings the tree and the projections up to the end of
the log before it answers, so a read that follows a write sees it (projections) and the
tree is never far behind the events (audit).  Separate ``zhuisu project run`` workers may
follow the log too (PostgreSQL); tracking rows are locked, so nothing is processed twice.

Receipts (``audit.receipts``).  A write that stored events is answered with a receipt of
them: their log positions and leaf indexes, a signed checkpoint that covers them and each
event's inclusion proof, checkable offline (``zhuisu verify-proof``).  The answer waits for
that checkpoint: one thread (``CheckpointBatcher``) signs a checkpoint as soon as a write
waits for one, and every write that arrives while it signs waits for the next, so one
checkpoint signs for every write of a short window (group commit: under load, a checkpoint
per signing time, some 10–40 ms, rather than one per write).  ``ZHUISU_RECEIPT_INTERVAL``
(seconds, default 0) keeps checkpoints at least that far apart, bounding their number
under load at the cost of that much more wait; ``ZHUISU_RECEIPT_WAIT`` (default 2 s) is the
longest a write waits: after it, or with 0, the receipt is *pending* — positions and leaf
indexes, and for each the route that gives its proof once the checkpoint exists
(``GET /log/proofs/inclusion?position=N``), signed within the interval all the same.
``bench/api.py`` measures write → covering checkpoint under its write load.

Checkpoints also come every ``ZHUISU_CHECKPOINT_EVERY`` seconds when the log or a chained
table (access log, token changes: ``audit.chains``) grew.

The sweep (``audit.sweep``) re-verifies the whole log, ``ZHUISU_SWEEP_PAGES`` pages of 4096
leaves every ``ZHUISU_SWEEP_EVERY`` seconds (defaults 2 and 2; 0: no sweep): a change to any
event is noticed within ``(ceil(leaves / (pages × 4096)) + 1) × every`` seconds — 6 s for
the small demo, about 4 minutes for a million events.  Small ticks keep each burst of
hashing (which holds the GIL in this process) short: ``bench/sweep.py`` times them.  A finding raises the integrity
alarm (``audit.alarm``), kept in the store: from then on no event is stored (every write
is refused, 503 ``IntegrityAlarm``), no checkpoint or proof is made, and ``/health`` is
red, in every process, until an operator clears it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.logging import get_logger
from audit import log as audit_log
from audit import receipts, tree_store
from audit.alarm import IntegrityAlarm, check_events, raise_alarm, refuse_if_alarmed
from audit.chains import heads_in_text, latest_heads
from audit.errors import NotInLog
from audit.store import AuditStore
from audit.sweep import DEFAULT_PAGES, SweepState, sweep_tick
from domain.application import Zhuisu
from domain.errors import InvalidInput
from projections import flag_recompute, runner

log = get_logger("zhuisu.followers")

@dataclass
class Written:
    """The notification ids the current request's events were stored at, and when."""

    positions: list[int] = field(default_factory=list)
    stored_at: float | None = None  # time.monotonic() after the last save


# Set per request by ``FollowWrites``; the store hook of ``Followers`` fills it.
WRITTEN: ContextVar[Written | None] = ContextVar("zhuisu-written", default=None)


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"must be a number of seconds, got {raw!r}", field=name) from None
    if not 0 <= value <= 86400:
        raise InvalidInput(f"must be between 0 and 86400 seconds, got {raw!r}", field=name)
    return value


@dataclass(frozen=True)
class FollowerSettings:
    """Receipts and the sweep, from the environment (see the module docstring)."""

    receipt_interval: float = 0.0
    receipt_wait: float = 2.0
    sweep_every: float = 2.0
    sweep_pages: int = DEFAULT_PAGES

    @classmethod
    def from_env(cls) -> FollowerSettings:
        pages = os.environ.get("ZHUISU_SWEEP_PAGES", "").strip()
        if pages and (not pages.isdigit() or not 1 <= int(pages) <= 4096):
            raise InvalidInput(f"must be a whole number of pages from 1 to 4096, got {pages!r}",
                               field="ZHUISU_SWEEP_PAGES")
        return cls(_seconds("ZHUISU_RECEIPT_INTERVAL", cls.receipt_interval),
                   _seconds("ZHUISU_RECEIPT_WAIT", cls.receipt_wait),
                   _seconds("ZHUISU_SWEEP_EVERY", cls.sweep_every),
                   int(pages) if pages else cls.sweep_pages)


class CheckpointBatcher:
    """Signs one checkpoint for every write waiting for one (see the module docstring).

    Writes name what they need covered by notification id: a checkpoint covers position
    ``p`` when its last leaf's position is ``p`` or later (leaves follow positions)."""

    def __init__(self, audit: AuditStore, interval: float = 0.0):
        self.audit = audit
        self.interval = interval
        self._cond = threading.Condition()
        self._wanted = 0  # the notification id some waiting write needs covered
        self._covered = 0  # the last notification id the latest checkpoint here covers
        self._latest: audit_log.CheckpointRecord | None = None
        self._failures = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    def want(self, position: int) -> None:
        """Ask for a checkpoint covering ``position`` soon; do not wait."""
        with self._cond:
            if position > self._wanted:
                self._wanted = position
                self._start()
                self._cond.notify_all()

    def covering(self, position: int, timeout: float) -> audit_log.CheckpointRecord | None:
        """A checkpoint signed here that covers ``position``; None after ``timeout`` seconds
        or a failure (0: ask for one, do not wait)."""
        deadline = time.monotonic() + timeout
        self.want(position)
        with self._cond:
            failures = self._failures
            while self._covered < position and not self._stopped and \
                    self._failures == failures:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._latest if self._covered >= position else None

    def _start(self) -> None:
        if self._thread is None and not self._stopped:
            self._thread = threading.Thread(target=self._run, name="zhuisu-receipts",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        last = float("-inf")
        while True:
            with self._cond:
                while not self._stopped and self._wanted <= self._covered:
                    self._cond.wait()
                if self._stopped:
                    return
            pause = last + self.interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                record = audit_log.make_checkpoint(self.audit)
                covered = receipts.last_position(self.audit, record.checkpoint.size)
            except Exception as exc:  # the waiting writes get pending receipts
                if isinstance(exc, IntegrityAlarm):
                    log.warning("receipt checkpoint not signed: the integrity alarm is raised")
                else:
                    log.exception("receipt checkpoint failed")
                with self._cond:
                    self._failures += 1
                    self._wanted = self._covered
                    self._cond.notify_all()
                time.sleep(0.2)
                continue
            last = time.monotonic()
            with self._cond:
                if covered >= self._covered:
                    self._covered, self._latest = covered, record
                self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)


class Followers:
    def __init__(self, zhuisu: Zhuisu, audit: AuditStore,
                 settings: FollowerSettings | None = None):
        self.zhuisu = zhuisu
        self.audit = audit
        self.settings = settings or FollowerSettings()
        self.batcher = CheckpointBatcher(audit, self.settings.receipt_interval)
        self.sweep_state = SweepState()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._hooked = self._hook_store()
        flag_recompute.check_at_start(zhuisu)  # thresholds changed since the flags?

    # the store hook: refuse writes while alarmed, note where each event was stored ------
    def _hook_store(self) -> bool:
        """Wrap this application's ``save`` (its one way of storing events): refused while
        the integrity alarm is raised; the stored notification ids go to ``WRITTEN``.  And
        its recorder's ``select_events`` (how it reads an aggregate it has not cached): each
        event, as read, is held against its leaf (``audit.alarm.check_events``)."""
        if "save" in vars(self.zhuisu):
            return False  # another Followers of this application holds the hook
        original: Callable[..., Any] = self.zhuisu.save
        audit = self.audit

        def save(*objs: Any, **kwargs: Any) -> Any:
            refuse_if_alarmed(audit, "a write")
            recordings = original(*objs, **kwargs)
            sink = WRITTEN.get()
            if sink is not None and recordings:
                sink.positions.extend(r.notification.id for r in recordings)
                sink.stored_at = time.monotonic()
            return recordings

        self.zhuisu.save = save  # type: ignore[method-assign]

        recorder = self.zhuisu.recorder
        read: Callable[..., Any] = recorder.select_events

        def select_events(originator_id: Any, **kwargs: Any) -> Any:
            events = read(originator_id, **kwargs)
            check_events(audit, originator_id, events)  # as read, against their leaves
            return events

        recorder.select_events = select_events  # type: ignore[method-assign]
        return True

    def catch_up(self) -> None:
        tree_store.catch_up(self.audit)
        runner.catch_up(self.zhuisu)

    def receipt(self, positions: list[int]) -> dict[str, Any]:
        """The receipt of the events a write stored (after ``catch_up``), waiting up to
        ``receipt_wait`` seconds for a checkpoint that covers them."""
        checkpoint = self.batcher.covering(max(positions), self.settings.receipt_wait)
        return receipts.receipt(self.audit, positions, checkpoint)

    # periodic checkpoints ---------------------------------------------------------------
    def start_checkpoints(self, every_seconds: float) -> None:
        """Sign a checkpoint every ``every_seconds`` if the log grew (0: never)."""
        if every_seconds > 0:
            self._thread_of(self._checkpoints, every_seconds, "zhuisu-checkpoints")

    def _thread_of(self, target: Callable[[float], None], every: float, name: str) -> None:
        thread = threading.Thread(target=target, args=(every,), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _checkpoints(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.checkpoint_if_grown()
            except IntegrityAlarm:
                log.warning("periodic checkpoint not signed: the integrity alarm is raised")
            except Exception:  # keep signing later; the failure is logged, never silent
                log.exception("periodic checkpoint failed")

    def checkpoint_if_grown(self) -> audit_log.CheckpointRecord | None:
        """Sign a checkpoint if the log or a chained table grew since the latest one."""
        state = tree_store.catch_up(self.audit)
        try:
            latest = audit_log.get_checkpoint(self.audit)
            signed, heads = latest.checkpoint.size, heads_in_text(latest.note)
        except NotInLog:
            signed, heads = -1, {}
        if signed < state.size or heads != latest_heads(self.audit):
            record = audit_log.make_checkpoint(self.audit)
            log.info("checkpoint signed", id=record.id, size=record.checkpoint.size)
            return record
        return None

    # the sweep --------------------------------------------------------------------------
    def start_sweep(self, every_seconds: float | None = None, pages: int | None = None) -> None:
        """Re-verify ``pages`` pages of the log every ``every_seconds`` (0: never)."""
        every = self.settings.sweep_every if every_seconds is None else every_seconds
        if pages is not None:
            self.settings = FollowerSettings(self.settings.receipt_interval,
                                             self.settings.receipt_wait, every, pages)
        if every > 0:
            self._thread_of(self._sweep, every, "zhuisu-sweep")

    def _sweep(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.sweep_once()
            except Exception:
                log.exception("sweep tick failed")

    def sweep_once(self) -> list[Any]:
        """One tick of the sweep; a finding raises the alarm.  The findings."""
        began = time.perf_counter()
        findings = sweep_tick(self.audit, self.sweep_state, self.settings.sweep_pages)
        if findings:
            first = findings[0]
            where = f" at leaf {first.leaf_index}" if first.leaf_index is not None else ""
            raise_alarm(self.audit, f"{first.kind}{where}: {first.message} (found by the "
                                    f"sweep)", first.position)
        elif self.sweep_state.done:
            log.debug("sweep pass done", leaves=self.sweep_state.pass_size,
                      passes=self.sweep_state.passes,
                      seconds=round(time.perf_counter() - began, 3))
        return findings

    def stop(self) -> None:
        self._stop.set()
        self.batcher.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._hooked:
            vars(self.zhuisu).pop("save", None)
            vars(self.zhuisu.recorder).pop("select_events", None)
            self._hooked = False


class FollowWrites:
    """ASGI middleware: after an accepted write, catch the followers up, add the receipt of
    the events it stored to its JSON answer (``"receipt"``), then answer.

    The answer is held until then, so a client that reads after its write sees it.  A
    follower that fails is logged and retried on the next write; the write stands (its
    receipt is then pending).
    """

    READS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in self.READS:
            return await self.app(scope, receive, send)
        held: list[Message] = []
        written = Written()
        token = WRITTEN.set(written)
        try:
            await self.app(scope, receive, _holder(held))
        finally:
            WRITTEN.reset(token)
        status = next((m["status"] for m in held if m["type"] == "http.response.start"), 500)
        followers = getattr(scope["app"].state, "followers", None)
        if status < 400 and followers is not None:
            if written.positions:  # the checkpoint is signed while the projections catch up
                followers.batcher.want(max(written.positions))
            try:
                await run_in_threadpool(followers.catch_up)
            except Exception:
                log.exception("followers could not catch up after a write")
            if written.positions:
                try:
                    receipt = await run_in_threadpool(followers.receipt, written.positions)
                    waited = (time.monotonic() - (written.stored_at or time.monotonic())) * 1000
                    held = with_receipt(held, receipt, waited)
                except Exception:
                    log.exception("no receipt for a write", positions=written.positions[:20])
        for message in held:
            await send(message)


def with_receipt(held: list[Message], receipt: dict[str, Any],
                 waited_ms: float | None = None) -> list[Message]:
    """The held answer with ``receipt`` added to its JSON object body (else unchanged), and
    how long after the events were stored the receipt was ready (``Server-Timing:
    receipt;dur=<ms>``: the window before a checkpoint signed them, as the server saw it)."""
    start = next((m for m in held if m["type"] == "http.response.start"), None)
    bodies = [m for m in held if m["type"] == "http.response.body"]
    if start is None or not bodies:
        return held
    headers = [(k, v) for k, v in start.get("headers", [])]
    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    if not content_type.startswith(b"application/json"):
        return held
    try:
        body = json.loads(b"".join(m.get("body", b"") for m in bodies))
    except ValueError:
        return held
    if not isinstance(body, dict):
        return held
    body["receipt"] = receipt
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = [(k, str(len(data)).encode() if k.lower() == b"content-length" else v)
               for k, v in headers]
    if waited_ms is not None and receipt.get("checkpoint"):
        headers.append((b"server-timing", f"receipt;dur={waited_ms:.1f}".encode()))
    others = [m for m in held if m["type"] not in ("http.response.start", "http.response.body")]
    return [{**start, "headers": headers}, {"type": "http.response.body", "body": data},
            *others]


def _holder(held: list[Message]):
    async def hold(message: Message) -> None:
        held.append(message)
    return hold
