"""What follows the event log inside the server: the hash tree and the projections.

After every accepted write the server brings both up to the end of the log before it
answers, so a read that follows a write sees it (projections) and the tree is never far
behind the events (audit).  A thread signs a checkpoint every ``checkpoint_every``
seconds when the log has grown.  Separate ``zhuisu project run`` workers may follow the
log too (PostgreSQL); tracking rows are locked, so nothing is processed twice.
"""

from __future__ import annotations

import threading

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.logging import get_logger
from audit import log as audit_log
from audit import tree_store
from audit.errors import NotInLog
from audit.store import AuditStore
from domain.application import Zhuisu
from projections import runner

log = get_logger("zhuisu.followers")


class Followers:
    def __init__(self, zhuisu: Zhuisu, audit: AuditStore):
        self.zhuisu = zhuisu
        self.audit = audit
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def catch_up(self) -> None:
        tree_store.catch_up(self.audit)
        runner.catch_up(self.zhuisu)

    def start_checkpoints(self, every_seconds: float) -> None:
        """Sign a checkpoint every ``every_seconds`` if the log grew (0: never)."""
        if every_seconds <= 0:
            return
        self._thread = threading.Thread(target=self._checkpoints, args=(every_seconds,),
                                        name="zhuisu-checkpoints", daemon=True)
        self._thread.start()

    def _checkpoints(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                state = tree_store.catch_up(self.audit)
                try:
                    signed = audit_log.get_checkpoint(self.audit).checkpoint.size
                except NotInLog:
                    signed = -1
                if signed < state.size:
                    record = audit_log.make_checkpoint(self.audit)
                    log.info("checkpoint signed", id=record.id, size=record.checkpoint.size)
            except Exception:  # keep signing later; the failure is logged, never silent
                log.exception("periodic checkpoint failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class FollowWrites:
    """ASGI middleware: after an accepted write, catch the followers up, then answer.

    The answer is held until then, so a client that reads after its write sees it.  A
    follower that fails is logged and retried on the next write; the write stands.
    """

    READS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in self.READS:
            return await self.app(scope, receive, send)
        held: list[Message] = []
        await self.app(scope, receive, _holder(held))
        status = next((m["status"] for m in held if m["type"] == "http.response.start"), 500)
        followers = getattr(scope["app"].state, "followers", None)
        if status < 400 and followers is not None:
            try:
                await run_in_threadpool(followers.catch_up)
            except Exception:
                log.exception("followers could not catch up after a write")
        for message in held:
            await send(message)


def _holder(held: list[Message]):
    async def hold(message: Message) -> None:
        held.append(message)
    return hold
