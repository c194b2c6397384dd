"""The request size limit: an oversize body is refused (413 ``PayloadTooLarge``) before it
is read, before authentication — a 200 MB body without a token once took the server from
214 MB to 800 MB before its 401.

The middleware is checked on its own (how much of the body it reads: nothing for a
declared length, at most the limit and one chunk for a chunked body), through the app
(an anonymous oversize POST is a 413, not a 401) and on a live server on 127.0.0.1
streaming 200 MB at it.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import api_on, refused

from api.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from store.settings import Settings

CHUNK = 64 * 1024
LIMIT = 1000


class Inner:
    """The app behind the middleware: records whether it ran and what body it got."""

    def __init__(self) -> None:
        self.called = False
        self.body = b""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        while True:
            message = await receive()
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def call(limit: int, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes],
         method: str = "POST") -> tuple[Inner, int, list[dict], dict]:
    """Run one request through ``BodyLimit``: (inner app, bytes it read, sent, state)."""
    inner = Inner()
    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        body = next(chunks, None)
        if body is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += len(body)
        return {"type": "http.request", "body": body, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/commands", "headers": headers,
             "query_string": b"", "app": None, "state": {}, "root_path": "",
             "scheme": "http", "server": ("testserver", 80)}
    asyncio.run(BodyLimit(inner, max_bytes=limit)(scope, receive, send))
    return inner, read, sent, scope["state"]


def endless() -> Iterator[bytes]:
    while True:
        yield b"x" * CHUNK


def test_a_declared_length_over_the_limit_is_refused_without_reading_a_byte() -> None:
    inner, read, sent, state = call(LIMIT, [(b"content-length", b"209715200")], endless())
    assert (inner.called, read) == (False, 0)
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]
    body = json.loads(sent[1]["body"])
    assert (body["rule"], body["field"], body["status"]) == ("PayloadTooLarge", "body", 413)
    assert state["problem"].rule == "PayloadTooLarge"  # the request's log line names it


def test_a_chunked_body_is_counted_and_refused_past_the_limit() -> None:
    inner, read, sent, _ = call(10 * CHUNK, [(b"transfer-encoding", b"chunked")], endless())
    assert not inner.called
    assert sent[0]["status"] == 413
    assert 10 * CHUNK < read <= 11 * CHUNK  # the limit and one chunk at most


def test_bodies_within_the_limit_reach_the_app_unchanged() -> None:
    body = b"y" * LIMIT
    pieces = iter([body[:300], body[300:]])
    inner, _, sent, _ = call(LIMIT, [(b"transfer-encoding", b"chunked")], pieces)
    assert inner.called and inner.body == body and sent[0]["status"] == 204
    inner, _, sent, _ = call(LIMIT, [(b"content-length", str(LIMIT).encode())], iter([body]))
    assert inner.called and inner.body == body and sent[0]["status"] == 204
    inner, _, sent, _ = call(LIMIT, [], iter([]), method="GET")  # no body: passed on
    assert inner.called and sent[0]["status"] == 204


def test_a_content_length_that_is_not_a_number_is_refused_naming_the_header() -> None:
    inner, _, sent, _ = call(LIMIT, [(b"content-length", b"lots")], endless())
    body = json.loads(sent[1]["body"])
    assert not inner.called
    assert (sent[0]["status"], body["rule"], body["field"]) == (422, "InvalidInput",
                                                                "Content-Length")


def test_the_default_limit_is_one_mib_and_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_MAX_BODY_BYTES == Settings().max_body_bytes == 1024 * 1024
    monkeypatch.setenv("ZHUISU_MAX_BODY_BYTES", "2048")
    assert Settings.from_env().max_body_bytes == 2048
    monkeypatch.setenv("ZHUISU_MAX_BODY_BYTES", "-1")
    from domain.errors import InvalidInput

    with pytest.raises(InvalidInput) as bad:
        Settings.from_env()
    assert bad.value.field == "ZHUISU_MAX_BODY_BYTES"


def test_an_oversize_body_without_a_token_is_413_not_401(app: Any) -> None:
    with api_on(app, settings=Settings.from_env(max_body_bytes=LIMIT)) as api:
        oversize = api.client.post("/commands", content=b"{" + b" " * LIMIT + b"}",
                                   headers={"Authorization": "",
                                            "content-type": "application/json"})
        refused(oversize, 413, "PayloadTooLarge", "body")
        small = api.anonymous("POST", "/commands", json={"step": "x"})
        refused(small, 401, "NotAuthenticated")
        assert api.client.get("/health").status_code == 200


# a live server ------------------------------------------------------------------------------
@pytest.fixture
def live(app: Any) -> Iterator[tuple[str, int]]:
    """The API on ``app`` served by uvicorn on 127.0.0.1 (an ephemeral port), 1 MiB limit."""
    import uvicorn

    from api.http import create_app

    api = create_app(Settings.from_env(max_body_bytes=DEFAULT_MAX_BODY_BYTES), zhuisu=app,
                     bootstrap_admin=False)
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=0, log_config=None,
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (server.started and server.servers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def stream(address: tuple[str, int], head: bytes, body: Iterator[bytes],
           total: int) -> tuple[int, bytes]:
    """Send ``head`` then up to ``total`` bytes of ``body`` until an answer comes back;
    (bytes of body sent, the answer's first bytes)."""
    sent = 0
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        for piece in body:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                try:
                    answer = sock.recv(65536)
                except ConnectionError:
                    pass
                break
            if not writable or sent >= total:
                continue
            try:
                sent += sock.send(piece)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionError:
                break
        sock.setblocking(True)
        while True:  # the rest of the answer: the server closes the connection after it
            try:
                more = sock.recv(65536)
            except (ConnectionError, TimeoutError):
                break
            if not more:
                break
            answer += more
    return sent, answer


def test_a_live_server_refuses_200_mb_early(live: tuple[str, int]) -> None:
    total = 200 * 1024 * 1024
    declared, answer = stream(live, b"POST /commands HTTP/1.1\r\nHost: test\r\n"
                              b"Content-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % total, endless(), total)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"PayloadTooLarge" in answer

    def chunks() -> Iterator[bytes]:
        for piece in endless():
            yield b"%x\r\n%s\r\n" % (len(piece), piece)

    chunked, answer = stream(live, b"POST /commands HTTP/1.1\r\nHost: test\r\n"
                             b"Content-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n", chunks(), total)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    print(f"\nbody bytes the client got into the socket before the 413: declared length "
          f"{declared:,}, chunked {chunked:,} (limit {DEFAULT_MAX_BODY_BYTES:,})")
    assert declared < 32 * 1024 * 1024 and chunked < 32 * 1024 * 1024
    with socket.create_connection(live, timeout=10) as sock:  # still serving
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
