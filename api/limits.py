"""The request size limit: a body over ``max_bytes`` is refused before it is read.

``ZHUISU_MAX_BODY_BYTES`` (default 1 MiB, ``DEFAULT_MAX_BODY_BYTES``).  The largest
legitimate request is a signed step: a project approved with its beneficiary list (some
40 bytes a household: 1 MiB holds about 25,000), a household's application with its
members, a case opened with its evidence — each text within ``domain.limits`` (at most
2,000 characters).  The largest step of the demo county is under 3 KB.

The ASGI middleware sits outside authentication and idempotency (which reads the body to
hash it), so nothing of an oversize request is parsed, authenticated or stored:

- a ``Content-Length`` above the limit is answered at once: **413** problem+json, rule
  ``PayloadTooLarge``, field ``body``, ``Connection: close``; not one byte of the body is
  read;
- a body without a length (``Transfer-Encoding: chunked``, or a write with neither header)
  is read here, counting, and the
  request is refused the moment the count passes the limit, so at most the limit plus one
  chunk is ever held; a body within the limit is handed on as it came;
- a ``Content-Length`` that is not a number is ``InvalidInput`` (422) naming the header.

File uploads (``uploads``: path prefixes such as ``/imports/`` and their own limit,
``ZHUISU_MAX_UPLOAD_BYTES``, ``exchange.imports.upload_limit``) are not held here: a
``Content-Length`` above the upload limit is refused at once as above (413, naming the
upload limit); otherwise the body streams on to the route, which spools the file to a
temporary file, and is counted as it goes: past the limit, reading it raises
``exchange.imports.PayloadTooLarge`` (413) and nothing is stored.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collections.abc import Mapping

from access.errors import Problem
from api import problems
from exchange.imports import PayloadTooLarge, too_large_message

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
RULE = "PayloadTooLarge"
BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})  # without a length or chunks: no body


def too_large(max_bytes: int) -> Problem:
    return Problem(RULE, 413, f"the request body is larger than {max_bytes:,} bytes (the "
                              "limit, ZHUISU_MAX_BODY_BYTES); it was refused unparsed and "
                              "nothing was stored", "body")


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 uploads: Mapping[str, int] | None = None):
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = dict(uploads or {})  # path prefix -> its own limit (file uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length: bytes | None = None
        chunked = False
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        upload = next((limit for prefix, limit in self.uploads.items()
                       if scope.get("path", "").startswith(prefix)), None)
        if upload is not None and scope["method"] not in BODILESS:
            if length is not None and not chunked and length.strip().isdigit() \
                    and int(length) > upload:
                return await self._refuse(scope, receive, send, Problem(
                    RULE, 413, too_large_message(upload), "file"))
            if length is None or chunked or length.strip().isdigit():
                return await self.app(scope, _counting(receive, upload), send)
        if length is not None and not chunked:
            if not length.strip().isdigit():
                return await self._refuse(scope, receive, send, Problem(
                    "InvalidInput", 422, "must be a whole number of bytes", "Content-Length"))
            if int(length) > self.max_bytes:
                return await self._refuse(scope, receive, send, too_large(self.max_bytes))
            return await self.app(scope, receive, send)
        if not chunked and scope["method"] in BODILESS:
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                scope.setdefault("state", {})["body_bytes_read"] = size
                return await self._refuse(scope, receive, send, too_large(self.max_bytes))
            chunks.append(body)
            if not message.get("more_body", False):
                break
        return await self.app(scope, _replay(b"".join(chunks), receive), send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
        scope.setdefault("state", {})["problem"] = problem
        response = problems.problem_response(problem, Request(scope),
                                             headers={"Connection": "close"})
        await response(scope, receive, send)


def _counting(receive: Receive, limit: int) -> Receive:
    """``receive``, raising ``PayloadTooLarge`` once the body passes ``limit`` bytes."""
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise PayloadTooLarge(too_large_message(limit), field="file")
        return message

    return counted


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
