"""Structured logs of the API: every request line names its caller (token name, role, id —
never the token); no bearer token, private key or ID number leaves a trace."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from runtime.logging import configure_logging
from api_support import api_on
from domain.identity import check_digit
from domain.signing import SigningKey, b64
from factories import COUNTY, VILLAGE, World, a_household_through, official_id


def an_id_number(n: int) -> str:
    first17 = f"52262519900101{n:03d}"
    return first17 + check_digit(first17)


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """What the server would write, in production (JSON) format."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buf = io.StringIO()
    configure_logging("json", "INFO", buf)
    yield buf
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()


def request_lines(log: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, log.getvalue().splitlines())
            if line.get("event") == "request"]


def test_each_request_line_names_its_caller(api: Any, world: World, log: io.StringIO) -> None:
    hid = a_household_through(world, 0)
    inspector = api.as_("inspector", COUNTY, name="县纪委 王检查")
    inspector.get(f"/households/{hid}")
    inspector.post("/commands", json={})  # refused: inspectors submit nothing
    api.anonymous("GET", "/health")
    api.anonymous("GET", "/steps")

    lines = request_lines(log)
    assert [(x["route"], x["status"], x["actor"]) for x in lines] == [
        ("/households/{household_id}", 200, "县纪委 王检查"),
        ("/commands", 403, "县纪委 王检查"),
        ("/health", 200, "anonymous"),
        ("/steps", 401, "anonymous"),
    ]
    [token_id] = {x["actor_id"] for x in lines[:2]}
    assert len(token_id) == 32 and {x["role"] for x in lines[:2]} == {"inspector"}
    assert lines[1]["rule"] == "RoleNotPermitted"
    assert "role" not in lines[2] and lines[3]["rule"] == "NotAuthenticated"
    assert inspector.token not in log.getvalue()


def test_no_token_private_key_or_id_number_leaves_a_trace(api: Any, world: World,
                                                          log: io.StringIO) -> None:
    key = SigningKey.from_seed(b"someone's own key")
    private_key = b64(key.private_bytes())
    number = an_id_number(7)
    officer = api.as_("admin", COUNTY, name="县扶贫办 管理员")
    acc = official_id(f"accountant@{VILLAGE}")

    # a token in the header, in a path and in a refused header; a private key where a
    # public key or no key belongs; ID numbers in bodies, in a path, and in a refusal
    officer.get(f"/households/by-code/{officer.token}")
    api.client.get("/steps", headers={"Authorization": f"Bearer {officer.token}x"})
    officer.post(f"/officials/{acc}/keys", json={"public_key": private_key,
                                                 "valid_from": "2025-01-01",
                                                 "private_key": private_key})
    officer.post(f"/officials/{acc}/keys", json={"public_key": "not base64 " + private_key,
                                                 "valid_from": "2025-01-01"})
    officer.post(f"/officials/{acc}/relatives", json={"id_number": number, "relation": "spouse"})
    wrong_check_digit = number[:17] + ("1" if number[17] != "1" else "2")
    officer.post(f"/officials/{acc}/relatives", json={"id_number": wrong_check_digit,
                                                      "relation": "spouse"})
    officer.post("/officials", json={"code": number, "name": "x", "unit_code": f"U{VILLAGE}",
                                     "id_number": number})
    officer.post("/officials", json={"code": number, "name": "x", "unit_code": f"U{VILLAGE}",
                                     "id_number": number})  # AlreadyExists echoes the code
    officer.get(f"/households/by-code/{number}")

    text = log.getvalue()
    assert len(request_lines(log)) == 9
    assert {x["actor"] for x in request_lines(log)} == {"县扶贫办 管理员", "anonymous"}
    for secret in (officer.token, officer.token[3:], private_key, number, number[:17]):
        assert secret not in text, secret
    assert "[id-number]" in text and "[token]" in text


def test_a_crash_is_logged_without_local_variables_however_the_app_is_served(
        app: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Served by plain ``uvicorn --factory`` nothing configures logging first; structlog's
    default renders a traceback's locals, among them the request's headers and its token."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog.reset_defaults()
    try:
        with api_on(app) as api:
            def crash(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("a bug")

            monkeypatch.setattr(app, "load", crash)
            reader = api.as_("reviewer")
            r = reader.get(f"/households/{official_id('nobody')}")
            assert (r.status_code, r.json()["rule"]) == (500, "InternalError")
        written = capsys.readouterr()
        text = written.out + written.err
        assert "RuntimeError: a bug" in text and "unhandled error" in text
        assert reader.token not in text and reader.token[3:20] not in text
        assert "authorization" not in text.lower()
    finally:
        root.handlers[:], root.level = handlers, level
        structlog.reset_defaults()
