"""Running the demo's plan (``demo.county``) through the real command path.

``build_demo`` signs every planned step with its officials' keys (in a second process when
it pays), runs them through ``Zhuisu.execute`` in month-sized transactions under a
simulated record clock (``RecordClock``), and plants the misconduct of
``demo.misconduct`` when asked; ``load_demo_if_empty`` is what ``zhuisu serve`` uses.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import structlog

from domain.application import Zhuisu
from domain.fund_account import FundAccount
from domain.official import Official
from domain.signing import SigningKey, sign_command

log = structlog.get_logger("zhuisu.demo")

YEAR = 2025
PROVINCE, CITY, COUNTY = "990000", "990100", "990121"
KEYS_VALID_FROM = dt.date(2024, 12, 1)
SET_UP_ON = KEYS_VALID_FROM  # record date of the regions, units, officials and accounts
POSITIONS_FROM = dt.date(2024, 1, 1)
DEMO_NAMESPACE = uuid5(NAMESPACE_URL, "https://zhuisu.example/demo")
from demo.county import (
    Admin,
    demo_keys,
    DemoStepRefused,
    DemoSummary,
    official_codes,
    official_key,
    _Planner,
    _shape,
    Step,
    store_is_empty,
    StoreNotEmpty,
    townships,
)
from demo.misconduct import plant_misconduct
from demo.registers import plant_registers as plant_register_matches

__all__ = ["DemoSummary", "RecordClock", "StoreNotEmpty", "build_demo", "load_demo_if_empty",
           "store_is_empty"]


class _Signer:
    """The officials' side: signs each step with the keys of its signers (derived lazily)."""

    def __init__(self, seed: int):
        self.seed = seed
        self.keys: dict[str, tuple[str, SigningKey]] = {}

    def command(self, s: Step) -> dict[str, Any]:
        signers = []
        for code, role in s.signers:
            if code not in self.keys:
                self.keys[code] = (str(Official.create_id(code)), official_key(self.seed, code))
            signers.append((*self.keys[code], role))
        return sign_command(s.step, s.subject, s.content, signers)


_WORKER_SIGNERS: dict[int, _Signer] = {}


def _sign_chunk(seed: int, steps: list[Step]) -> list[dict[str, Any]]:
    signer = _WORKER_SIGNERS.setdefault(seed, _Signer(seed))
    return [signer.command(s) for s in steps]


def _signed_commands(steps: list[Step], seed: int, in_worker: bool) -> Iterator[dict[str, Any]]:
    """The steps' signed commands, in order.  With ``in_worker`` a second process signs
    ahead (a few chunks at most) while this one executes: the client's work overlaps the
    server's, as it would with real clients."""
    if not in_worker:
        yield from map(_Signer(seed).command, steps)
        return
    chunks = (steps[i:i + 500] for i in range(0, len(steps), 500))
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        ahead: deque[Future[list[dict[str, Any]]]] = deque(
            pool.submit(_sign_chunk, seed, chunk) for chunk in islice(chunks, 4))
        while ahead:
            signed = ahead.popleft().result()
            following = next(chunks, None)
            if following is not None:
                ahead.append(pool.submit(_sign_chunk, seed, following))
            yield from signed


def build_demo(app: Zhuisu, size: str = "small", seed: int = 20251,
               progress: Callable[[int, int], None] | None = None, *, plant: int = 0,
               allow_existing: bool = False, sign_in_worker: bool | None = None,
               plant_registers: int = 0, register_noise: int | dict[str, int] = 20
               ) -> DemoSummary:
    """Build the synthetic county of ``size`` and its year 2025 through ``app.execute``.

    One transaction (``app.batch()``) for the set-up, then the year in record order,
    ``MAX_TRANSACTION`` commands a transaction.  While it runs, record time is simulated
    (``RecordClock``): ``app.clock`` and the events' timestamps follow the business dates
    (restored afterwards).  ``plant`` adds that many of each kind of misconduct the red-flag
    rules look for (``demo.misconduct``); ``DemoSummary.truth`` says what was planted
    and what the rules must find.  ``progress(done, total)`` counts commands run, every
    1,000 and after each transaction.  ``sign_in_worker`` (default: on for small and larger
    sizes when there is more than one CPU) signs the commands in a second process,
    overlapping with their execution.  A store that already holds events is refused
    (``StoreNotEmpty``) unless ``allow_existing``; even then the demo's fixed region and
    official codes must be free.  ``plant_registers`` plants that many register matches of
    each comparison model (``demo.registers``; ``register_noise`` rows of people from
    elsewhere per register): ``DemoSummary.registers`` holds the files to import and their
    truth.
    """
    _shape(size)
    if plant < 0:
        raise ValueError("plant is a number of misconduct items per kind (0 or more)")
    if not allow_existing and not store_is_empty(app):
        raise StoreNotEmpty(
            f"the store already holds {app.recorder.max_notification_id()} events; the demo "
            "writes a fresh synthetic county into an empty store (allow_existing=True to add "
            "it anyway)")
    started = time.perf_counter()
    first = app.recorder.max_notification_id() or 0
    plan = _Planner(size, seed, app)
    plan.plan_setup()
    plan.plan_identification()
    plan.plan_year()

    truth = plant_misconduct(plan, plant)
    registers = plant_register_matches(plan, plant_registers, register_noise) \
        if plant_registers else None
    plan.plan_funding()
    batches = plan.batches()
    total = sum(len(b) for b in batches)
    steps = [item for batch in batches for _, item in batch if isinstance(item, Step)]
    if sign_in_worker is None:
        sign_in_worker = len(steps) >= 5000 and (os.cpu_count() or 1) > 1
    commands = _signed_commands(steps, seed, sign_in_worker)
    clock = RecordClock(seed)
    done = 0
    if progress:
        progress(done, total)
    try:
        with clock.driving(app):
            for batch in batches:
                with app.batch():
                    for day, item in batch:
                        clock.advance(day)
                        _run(app, item, commands)
                        done += 1
                        if progress and done % 1000 == 0:
                            progress(done, total)
                if progress:
                    progress(done, total)
    finally:
        commands.close()
    seconds = time.perf_counter() - started
    events = (app.recorder.max_notification_id() or 0) - first
    return DemoSummary(
        size=size, seed=seed, households=len(plan.households),
        officials=len(official_codes(size)),
        helpers=sum(len(h) for h in plan.helpers.values()), projects=plan.projects,
        payments=sum(1 for s in steps if s.step == "FundAccount.Disbursed"),
        events_written=events, seconds=seconds, events_per_second=events / seconds,
        final_status={h.code: h.status for h in plan.households}, keys=demo_keys(seed, size),
        accounts={f"{r}/{s}": str(FundAccount.create_id(r, s))
                  for r in [PROVINCE, CITY, COUNTY, *townships(size)]
                  for s in ("central", "provincial")},
        plant=plant, truth=truth, registers=registers)


def _run(app: Zhuisu, item: Admin | Step, commands: Iterator[dict[str, Any]]) -> None:
    try:
        if isinstance(item, Admin):
            getattr(app, item.verb)(*item.args, **(item.kwargs or {}))
        else:
            app.execute(next(commands))
    except Exception as exc:
        what = (item.verb if isinstance(item, Admin)
                else f"{item.step} on {item.subject} ({item.day})")
        raise DemoStepRefused(f"demo step {what} was refused: {exc}") from exc


# ---------------------------------------------------------------------------------------
# simulated record time

class RecordClock:
    """Record time while the demo is written: each item is recorded a seeded 0–3 days after
    its record date (its business date unless planted late), in office hours (09:00–18:00
    Beijing time, as UTC).  Transactions are written in order of their first record date
    but may overlap (a village's identification round, a month of the rest), so record
    times are not always increasing along the log.

    ``driving(app)`` sets ``app.clock`` to this clock — the application stamps its events
    with it (the record time stored with each event) — and restores it on leaving.
    """

    def __init__(self, seed: int):
        self.rng = random.Random(f"zhuisu-demo/{seed}/record-time")
        self.now = dt.datetime.combine(SET_UP_ON, dt.time(1), tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, day: dt.date) -> None:
        delay = dt.timedelta(days=self.rng.choice((0, 0, 0, 1, 1, 2, 3)),
                             seconds=self.rng.randrange(9 * 3600))
        self.now = dt.datetime.combine(day, dt.time(1), tzinfo=dt.timezone.utc) + delay

    @contextmanager
    def driving(self, app: Zhuisu) -> Iterator[None]:
        saved, app.clock = app.clock, self
        try:
            yield
        finally:
            app.clock = saved


def load_demo_if_empty(app: Zhuisu, size: str = "small") -> DemoSummary | None:
    """Load the demo county of ``size`` into ``app`` if its store is empty (``zhuisu serve``)."""
    if not store_is_empty(app):
        log.info("demo skipped: the store already holds events")
        return None
    log.info("loading the demo into the empty store (the server starts after it)", size=size)
    summary = build_demo(app, size=size)
    log.info("demo loaded", households=summary.households, officials=summary.officials,
             events=summary.events_written, seconds=round(summary.seconds, 2))
    return summary
