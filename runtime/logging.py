"""Structured logs: one configuration for the HTTP server, the CLI and the libraries below.

JSON lines when ``ZHUISU_LOG_FORMAT=json`` (production), a console renderer otherwise.
structlog and stdlib loggers (uvicorn, eventsourcing) go through the same handler, so
every line gets the request id and the caller (token name, role and id) bound in context
variables, and every line passes :func:`redact` last before rendering: a secret, a bearer
token, a resident ID number (公民身份号码) or a bank account number must never reach a
log, whatever code path wrote it (:func:`mask_text` is the same masking for one string).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars
from structlog.typing import EventDict, WrappedLogger

MASK = "[redacted]"
ID_MASK = "[id-number]"
SECRET_KEY = re.compile(
    r"token|authorization|password|passwd|secret|private_key|signature|id_number|cookie|api_key",
    re.IGNORECASE,
)
# 18-character resident ID number (GB 11643): 17 digits and a digit or X check character.
ID_NUMBER = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
# A bearer token of the API (access.tokens), wherever it turns up (a path, a message).
TOKEN = re.compile(r"zs_[A-Za-z0-9_-]{16,}")
TOKEN_MASK = "[token]"
# A bank card or account number (银行卡号, 一卡通; ``domain.identity.hash_bank_account``
# takes 12 to 30 digits): a run of 13 to 30 digits, or groups of four digits split by
# single spaces or hyphens (6222 0212 3456 7890 123).  A bare run of 12 digits stays: it
# is what a region code looks like (522625100001), and logs must keep those.  Digits
# inside a word of ASCII letters and digits (a hex hash) stay too, and so do groups of
# four inside a hyphenated word (a UUID such as 00000000-0000-0000-0000-000000000007).
BANK_ACCOUNT = re.compile(
    r"(?<![0-9A-Za-z])\d{13,30}(?![0-9A-Za-z])"
    r"|(?<![0-9A-Za-z-])\d{4}(?:[ -]\d{4}){2,6}(?:[ -]\d{1,4})?(?![0-9A-Za-z-])")
BANK_MASK = "[account-number]"

_HANDLER_NAME = "zhuisu"


def mask_text(text: str) -> str:
    """``text`` with every ID number, bank account number and bearer token masked (logs,
    and whatever else echoes a request's path: problem+json ``instance``)."""
    text = TOKEN.sub(TOKEN_MASK, text)  # first: a token's own digits must not split it
    return BANK_ACCOUNT.sub(BANK_MASK, ID_NUMBER.sub(ID_MASK, text))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: (MASK if SECRET_KEY.search(str(k)) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_scrub(v) for v in value]
    return value


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Mask values under secret-looking keys, and any ID number, bank account number or
    bearer token inside any string."""
    return _scrub(event_dict)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each line (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def configure_logging(fmt: str = "console", level: str = "INFO",
                      stream: TextIO | None = None) -> None:
    """Install the one log handler on the root logger (again: replaces the previous one)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become text before redaction, so they are scrubbed too; rich's
            # traceback with local variables is never used (locals hold keys and bodies).
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def bind_request(request_id: str, actor: str) -> None:
    """Start a fresh log context: every line until the next call carries these two."""
    clear_contextvars()
    bind_contextvars(request_id=request_id, actor=actor)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
