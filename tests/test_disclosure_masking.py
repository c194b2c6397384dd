"""Issue 12 item 17: a bank account number in a path never reaches a log line, and a
problem's ``instance`` never echoes an ID number or a bank account number back."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from factories import id_number

from runtime.logging import configure_logging, mask_text

CARD = "6222021234567890123"  # a 19-digit debit card (一卡通)


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """What the server would write in production (JSON lines)."""
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


@pytest.mark.parametrize("written", [CARD, "6222 0212 3456 7890 123", "6222-0212-3456-7890",
                                     "6217 0000 1000 0123 456"])
def test_a_bank_account_number_in_a_path_is_masked_in_the_log(api: Any, log: io.StringIO,
                                                              written: str) -> None:
    r = api.client.get(f"/households/by-code/{written}")
    assert r.status_code == 404
    [line] = request_lines(log)
    assert line["path"] == "/households/by-code/[account-number]"
    assert written not in log.getvalue() and written.replace(" ", "") not in log.getvalue()


def test_a_problems_instance_masks_an_id_number_and_a_bank_account_number(api: Any) -> None:
    number = id_number(7)
    r = api.client.get(f"/households/by-code/{number}")
    assert (r.status_code, r.headers["content-type"]) == (404, "application/problem+json")
    assert r.json()["instance"] == "/households/by-code/[id-number]"
    assert number not in r.text and number[:17] not in r.text

    r = api.client.get(f"/households/by-code/{CARD}")
    assert r.json()["instance"] == "/households/by-code/[account-number]"
    assert CARD not in r.text
    # refusals before any route (no token) are masked too
    r = api.anonymous("GET", f"/households/by-code/{number}")
    assert (r.status_code, r.json()["instance"]) == (401, "/households/by-code/[id-number]")


def test_what_is_not_an_account_number_stays() -> None:
    kept = ["/villages/522625100001", "/households/00000000-0000-0000-0000-000000000007",
            "/flags/PAY_REMOVED:dee7ea81-eed9-4272-934c-ef080475d018",
            "2025-06-01 to 2025-06-30", "hash 9f2c1234567890123456abcdef", "/chains/events/1234"]
    assert [mask_text(t) for t in kept] == kept
    assert mask_text(f"卡号{CARD}。") == "卡号[account-number]。"
