"""One structured line per request, with its id and its caller; bugs become a 500 problem.

The request id comes in as ``X-Request-ID`` (if well-formed) or is made, and goes out on
every response.  The line names the route, status and latency, the caller (token name,
role and token id: never the token) and, for a refusal, the rule and field.  Nothing of
the request's headers, query or body is logged.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems
from runtime.logging import bind_request, get_logger

log = get_logger("zhuisu.http")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestContext:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        bind_request(request_id, actor="anonymous")
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", method=scope["method"], path=scope["path"])
            state["problem"] = problems.INTERNAL
            if not response_started:
                response = problems.problem_response(problems.INTERNAL, Request(scope))
                await response(scope, receive, send_with_id)
        finally:
            self._log(scope, state, status, started)

    @staticmethod
    def _log(scope: Scope, state: dict[str, Any], status: int, started: float) -> None:
        principal = state.get("principal")
        fields: dict[str, Any] = {
            "method": scope["method"], "route": getattr(scope.get("route"), "path", None),
            "path": scope["path"], "status": status,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if principal is None:
            fields["actor"] = "anonymous"
        else:
            fields.update(actor=principal.name, role=principal.role.value,
                          actor_id=principal.token_id)
        if state.get("idempotent_replay"):
            fields["replayed"] = True
        problem = state.get("problem")
        if problem is not None:
            fields.update(rule=problem.rule, field=problem.field, detail=problem.detail)
        level = "error" if status >= 500 else ("warning" if status >= 400 else "info")
        getattr(log, level)("request", **fields)
