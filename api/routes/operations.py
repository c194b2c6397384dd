"""Operations: the health check (anonymous, for load balancers and the image's HEALTHCHECK).

Red (503) when the store does not answer, or while the log's integrity alarm is raised
(``audit.alarm``: the sweep or a proof found the log changed): the answer says why.
``degraded`` (still 200) when some projection went past stored events it could not take
(``failed_events``; ``GET /projections/lag`` lists them).  ``rebuilding``: a changed
projection layout being built beside the live tables (``projections.bluegreen``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import App, public
from audit.alarm import current_alarm
from projections import runner
from runtime.logging import get_logger

log = get_logger("zhuisu.http")
router = APIRouter(tags=["operations"])


class HealthOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ok", "store": "sqlite", "events": 1234}]})

    status: str
    store: str
    events: int | None = Field(description="highest notification id in the event store")
    failed_events: int | None = Field(None, description="only when some projection went past "
                                      "stored events it could not take: how many "
                                      "(GET /projections/lag lists them); status is then "
                                      "'degraded', still 200")
    rebuilding: dict[str, dict[str, Any]] | None = Field(
        None, description="only while a projection's new layout is built beside its live "
        "tables (which answer reads until the switch): per projection, the version "
        "built, its position, how far behind the head, when started; status unchanged")


class AlarmOut(BaseModel):
    id: int
    raised_at: str
    reason: str = Field(description="what was found, where (kind, leaf, notification id)")
    position: int | None = Field(description="notification id of the event concerned")


class HealthAlarmOut(HealthOut):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "alarm", "store": "sqlite", "events": 1234,
         "reason": "integrity alarm 1 raised 2026-11-23T16:47:39Z: changed at leaf 41: …",
         "alarm": {"id": 1, "raised_at": "2026-11-23T16:47:39+00:00", "position": 42,
                   "reason": "changed at leaf 41: notification id 42 (leaf 41): state "
                             "differs from the leaf (found by the sweep)"}}]})

    reason: str | None = None
    alarm: AlarmOut | None = Field(None, description="the integrity alarm: writes, checkpoints "
                                   "and proofs are refused until an operator clears it "
                                   "(zhuisu alarm clear)")


@router.get("/health", response_model=HealthOut, response_model_exclude_unset=True,
            responses={503: {"model": HealthAlarmOut, "description": "the store is "
                             "unavailable, or the log's integrity alarm is raised"}})
@public
def health(app: App, request: Request) -> Any:
    """Whether the event store answers, how many events it holds, whether the log is
    trusted (no integrity alarm) and whether the read models took every stored event
    (``degraded`` if not).  No token needed."""
    store = type(app.recorder).__module__.rsplit(".", 1)[-1]  # eventsourcing.sqlite → sqlite
    audit = getattr(request.app.state, "audit", None)
    try:
        events = app.recorder.max_notification_id() or 0
        alarm = current_alarm(audit) if audit is not None else None
    except Exception:
        log.exception("health check: store unavailable", store=store)
        return JSONResponse({"status": "unavailable", "store": store, "events": None}, 503)
    if alarm is not None:
        return JSONResponse({"status": "alarm", "store": store, "events": events,
                             "reason": alarm.summary, "alarm": {
                                 "id": alarm.id, "raised_at": alarm.raised_at.isoformat(),
                                 "reason": alarm.reason, "position": alarm.position}}, 503)
    try:
        failed = sum(runner.failed_events(app).values())
    except Exception:  # the read models' tables: reported, never a reason to fail the check
        log.exception("health check: projection failures unavailable", store=store)
        failed = None
    out: dict[str, Any] = {"status": "ok", "store": store, "events": events}
    if failed:
        out.update(status="degraded", failed_events=failed)
    try:
        building = runner.rebuilds(app)
    except Exception:  # as above: reported, never a reason to fail the check
        log.exception("health check: rebuilds unavailable", store=store)
        building = {}
    if building:
        out["rebuilding"] = building
    return out
