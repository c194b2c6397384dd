"""Operations: the health check (anonymous, for load balancers and the image's HEALTHCHECK)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import App, public
from runtime.logging import get_logger

log = get_logger("zhuisu.http")
router = APIRouter(tags=["operations"])


class HealthOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ok", "store": "sqlite", "events": 1234}]})

    status: str
    store: str
    events: int | None = Field(description="highest notification id in the event store")


@router.get("/health", response_model=HealthOut,
            responses={503: {"model": HealthOut, "description": "the store is unavailable"}})
@public
def health(app: App) -> Any:
    """Whether the event store answers, and how many events it holds.  No token needed."""
    store = type(app.recorder).__module__.rsplit(".", 1)[-1]  # eventsourcing.sqlite → sqlite
    try:
        events = app.recorder.max_notification_id() or 0
    except Exception:
        log.exception("health check: store unavailable", store=store)
        return JSONResponse({"status": "unavailable", "store": store, "events": None}, 503)
    return {"status": "ok", "store": store, "events": events}
