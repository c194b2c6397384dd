"""The HTTP API's routers, one module per area; ``create_app`` includes every one.

A module here exposes ``router`` (a FastAPI ``APIRouter``).  Adding an area is adding a
module — nothing else changes (``log.py``, the tamper-evident log, came in that way; the
projections' routes will too).  Every route declares a guard from ``api.deps`` (``Reader``,
``Submitter``, ``Admin``, ``AccessLogReader``, ``CaseWriter``) or is marked ``@public``;
``create_app`` refuses to start with a route that is neither.
"""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    """Every area's router, in module-name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found
