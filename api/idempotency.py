"""Idempotent writes: a retry with the same ``Idempotency-Key`` gets the first answer again.

Every write (POST, PUT, PATCH, DELETE) may carry an ``Idempotency-Key`` header (1–200
visible ASCII characters).  Records are keyed by (token id, key) and hold a hash of the
request (method, path, query and the body, canonical when it is JSON):

* first use: the request runs and its answer (status, body, content type, location) is
  stored; a retry returns exactly that answer, marked ``Idempotent-Replayed: true``, and
  writes nothing more;
* the same key with a different request: ``IdempotencyKeyReused`` (422), nothing runs;
* the same key while the first request is still running: ``IdempotencyKeyInFlight`` (409);
* an answer that invites a retry is not stored, so the retry runs again: a server error, a
  missing or bad token (401), a lost race (``ConcurrentWrite``, 409).

A first answer is kept for ``keep`` (``ZHUISU_IDEMPOTENCY_DAYS``, default 7 days) from
the first request: after that the key is free again and a request with it runs as new.
Expired answers are purged at most once an hour, as writes arrive.

The record is written in its own transaction, not the events'.  If the process dies between
the two, the key stays "in flight" for ``IN_FLIGHT_TIMEOUT``, after which a retry runs
again; the domain makes that rerun harmless (a repeated signed step or movement id is
recognised and stores nothing new).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems
from access.tables import idempotency
from access.roles import Principal

HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IN_FLIGHT_TIMEOUT = dt.timedelta(minutes=5)
KEEP = dt.timedelta(days=7)
PURGE_EVERY = dt.timedelta(hours=1)
REPLAYED_HEADERS = ("content-type", "location")
RETRY_STATUSES = frozenset({401, 408, 429})
RETRY_RULES = frozenset({"ConcurrentWrite"})

_KEY = re.compile(KEY_PATTERN)


class Outcome(enum.Enum):
    STARTED = "started"
    REPLAY = "replay"
    MISMATCH = "mismatch"
    IN_FLIGHT = "in_flight"


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeDecodeError):
        canonical = body
    digest = hashlib.sha256(f"{method} {path}?{query}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


class IdempotencyRecords:
    """The table of first answers, keyed by (token id, key)."""

    def __init__(self, engine: Engine, keep: dt.timedelta = KEEP):
        if keep <= dt.timedelta(0):
            raise ValueError("idempotency records must be kept for a positive time")
        self.engine = engine
        self.keep = keep
        self._purged: dt.datetime | None = None

    def purge(self, now: dt.datetime) -> int:
        """Delete the answers first given ``keep`` ago or earlier; returns how many."""
        t = idempotency.c
        with self.engine.begin() as conn:
            gone = conn.execute(delete(idempotency).where(
                t.status.is_not(None), t.started_at <= now - self.keep)).rowcount
        self._purged = now
        return gone

    def begin(self, token_id: str, key: str, digest: str,
              now: dt.datetime) -> tuple[Outcome, StoredAnswer | None]:
        t = idempotency.c
        where = (t.token_id == token_id) & (t.key == key)
        if self._purged is None or now - self._purged >= PURGE_EVERY:
            self.purge(now)
        for _ in range(3):  # a record released between our insert and select: try again
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(idempotency).values(
                        token_id=token_id, key=key, request_hash=digest, started_at=now))
                return Outcome.STARTED, None
            except IntegrityError:
                pass
            with self.engine.begin() as conn:
                row = conn.execute(select(idempotency).where(where)).first()
                if row is None:
                    continue
                m = row._mapping
                started = m["started_at"]
                if started.tzinfo is None:
                    started = started.replace(tzinfo=dt.UTC)
                if m["status"] is not None and now - started >= self.keep:
                    conn.execute(delete(idempotency).where(  # expired: the key is free
                        where, t.started_at == m["started_at"], t.status.is_not(None)))
                    continue
                if m["request_hash"] != digest:
                    return Outcome.MISMATCH, None
                if m["status"] is not None:
                    return Outcome.REPLAY, StoredAnswer(
                        m["status"], [tuple(h) for h in json.loads(m["headers"])], m["body"])
                if now - started < IN_FLIGHT_TIMEOUT:
                    return Outcome.IN_FLIGHT, None
                taken = conn.execute(update(idempotency).where(
                    where, t.started_at == m["started_at"], t.status.is_(None))
                    .values(started_at=now)).rowcount
                return (Outcome.STARTED if taken else Outcome.IN_FLIGHT), None
        return Outcome.IN_FLIGHT, None

    def complete(self, token_id: str, key: str, answer: StoredAnswer) -> None:
        t = idempotency.c
        with self.engine.begin() as conn:
            conn.execute(update(idempotency).where(t.token_id == token_id, t.key == key).values(
                status=answer.status, headers=json.dumps(answer.headers), body=answer.body))

    def release(self, token_id: str, key: str) -> None:
        t = idempotency.c
        with self.engine.begin() as conn:
            conn.execute(delete(idempotency).where(
                t.token_id == token_id, t.key == key, t.status.is_(None)))


Authenticate = Callable[[Request], Awaitable[Principal | None]]


class IdempotencyMiddleware:
    """ASGI middleware applying the rules above to every write that carries a key."""

    def __init__(self, app: ASGIApp, authenticate: Authenticate,
                 clock: Callable[[], dt.datetime]):
        self.app = app
        self.authenticate = authenticate
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITES:
            return await self.app(scope, receive, send)
        routed = problems.methods_at(scope)
        if routed is not None and scope["method"] not in routed:
            return await self.app(scope, receive, send)  # 405 (or 404): no key is taken
        request = Request(scope)
        key = request.headers.get(HEADER)
        if key is None:
            return await self.app(scope, receive, send)
        if not _KEY.fullmatch(key):
            return await self._refuse(scope, receive, send, problems.Problem(
                "InvalidInput", 422, "must be 1 to 200 visible ASCII characters", HEADER), key)
        principal = await self.authenticate(request)
        if principal is None:  # the route answers 401; nothing to remember
            return await self.app(scope, receive, send)

        body = await _read_body(receive)
        digest = request_hash(scope["method"], scope["path"],
                              scope.get("query_string", b"").decode("latin-1"), body)
        records: IdempotencyRecords = scope["app"].state.idempotency
        outcome, answer = await run_in_threadpool(
            records.begin, principal.token_id, key, digest, self.clock())
        if outcome is Outcome.REPLAY:
            assert answer is not None
            scope.setdefault("state", {})["idempotent_replay"] = True
            headers = dict(answer.headers) | {HEADER: key, "Idempotent-Replayed": "true"}
            return await Response(answer.body, answer.status, headers)(scope, receive, send)
        if outcome is Outcome.MISMATCH:
            return await self._refuse(scope, receive, send, _problem(
                problems.IdempotencyKeyReused("this key was already used for a different "
                                              "request; use a new key for a new request",
                                              field=HEADER)), key)
        if outcome is Outcome.IN_FLIGHT:
            return await self._refuse(scope, receive, send, _problem(
                problems.IdempotencyKeyInFlight("the first request with this key is still "
                                                "being processed; retry later",
                                                field=HEADER)), key)

        # The answer is held back until it is stored (or the key released): a client that
        # retries the moment it has an answer must find the key settled.
        held: list[Message] = []

        async def hold(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (HEADER.lower().encode(), key.encode())]
            held.append(message)

        try:
            await self.app(scope, _replaying(body, receive), hold)
        except BaseException:
            await run_in_threadpool(records.release, principal.token_id, key)
            raise
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        status = start["status"] if start else 500
        problem = scope.get("state", {}).get("problem")
        if status >= 500 or status in RETRY_STATUSES or (
                problem is not None and problem.rule in RETRY_RULES):
            await run_in_threadpool(records.release, principal.token_id, key)
        else:
            kept = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                    for k, v in (start or {}).get("headers", [])]
            answer = b"".join(m.get("body", b"") for m in held
                              if m["type"] == "http.response.body")
            await run_in_threadpool(records.complete, principal.token_id, key, StoredAnswer(
                status, [(k, v) for k, v in kept if k in REPLAYED_HEADERS], answer))
        for message in held:
            await send(message)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, problem: problems.Problem,
                      key: str) -> None:
        scope.setdefault("state", {})["problem"] = problem
        response = problems.problem_response(problem, Request(scope), headers={HEADER: key})
        await response(scope, receive, send)


def _problem(refusal: problems.Refusal) -> problems.Problem:
    problem = problems.problem_from(refusal)
    assert problem is not None
    return problem


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
