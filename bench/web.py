"""Console (检查台) benchmark: server time of every screen, and the weight of the heaviest.

For each store (a SQLite file; PostgreSQL when ZHUISU_BENCH_POSTGRES_URL or
ZHUISU_TEST_POSTGRES_URL is set, in a fresh schema dropped afterwards) it loads a demo
county of ``--size`` (``small``: 1,271 households; ``county``: 12 townships, ≈20,000; any
``TxVxH``), serves it in-process (uvicorn on a loopback port), signs an inspector in through
the real form, then asks every screen ``--repeat`` times, one at a time, and prints per
screen p50 / p95 of the server's time (the ``latency_ms`` the server logs for the request,
so the client's parsing is not counted) with the target measured against in the same run,
and the total transfer of each screen with everything it loads (HTML, scripts, styles).

    python bench/web.py [--size small|county|TxVxH] [--repeat 30] [--stores sqlite,postgres]

Targets (issue 13): p95 < 150 ms per screen at 10× the county; heaviest screen < 2 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import unquote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import pyotp  # noqa: E402
import structlog  # noqa: E402

TARGET_P95_MS = 150.0
TARGET_BYTES = 2 * 1024 * 1024
ASSET = re.compile(r"""(?:src|href)=["'](/static/[^"']+)["']""")


SERVER_MS: dict[str, list[float]] = {}


def keep_latency(_: object, __: str, event: dict) -> dict:
    """Keep the server's own latency of each request (its log line), by path."""
    if event.get("event") == "request" and "latency_ms" in event:
        SERVER_MS.setdefault(event.get("path", "?"), []).append(float(event["latency_ms"]))
    return event


def screens(client: httpx.Client) -> list[str]:
    """The console's screens, and one detail page of each kind found on its list."""
    paths = ["/console/", "/console/flags", "/console/households",
             "/console/households?village=990121101201", "/console/money",
             "/console/officials", "/console/cases", "/console/replay", "/console/log",
             "/console/exports"]
    for listing, prefix in (("/console/flags", "/console/flags/"),
                            ("/console/households?village=990121101201", "/console/households/"),
                            ("/console/cases", "/console/cases/"),
                            ("/console/officials", "/console/officials/"),
                            ("/console/money", "/console/money/accounts/")):
        html = client.get(listing).text
        found = re.search(rf'href="({re.escape(prefix)}(?!new")[^"?]+)"', html)
        if found:
            paths.append(found.group(1))
    return paths


def run_store(kind: str, url: str, tmp: Path, args: argparse.Namespace) -> None:
    import uvicorn

    from access.roles import ApiRole
    from api.http import create_app
    from demo.build import build_demo
    from store.settings import Settings, build_app

    settings = Settings(database_url=url, id_pepper_file=tmp / f"pepper-{kind}",
                        log_key_file=tmp / f"log-key-{kind}",
                        admin_token_file=tmp / f"admin-{kind}", checkpoint_every=0)
    app = build_app(settings)
    started = time.perf_counter()
    summary = build_demo(app, size=args.size, plant=1)
    print(f"[{kind}] demo {args.size}: {summary.households:,} households, "
          f"{summary.events_written:,} events in {time.perf_counter() - started:.0f} s", flush=True)
    api = create_app(settings, zhuisu=app, bootstrap_admin=False)
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=0, log_config=None,
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    new = api.state.accounts.create(f"bench-{kind}", "基准测试", ApiRole.INSPECTOR,
                                    app.region("990121", "region"), created_by="bench",
                                    now=dt.datetime.now(dt.UTC))
    with httpx.Client(base_url=base, timeout=120) as client:
        form = client.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        client.post("/console/login", data={"username": new.account.username,
                                            "password": new.password, "csrf": csrf,
                                            "code": pyotp.TOTP(new.totp_secret).now()})
        paths = screens(client)
        print(f"[{kind}] {'screen':42} {'p50 ms':>8} {'p95 ms':>8} {'target':>8} {'bytes':>10}")
        heaviest = 0
        for path in paths:
            SERVER_MS.clear()
            first = client.get(path)
            if first.status_code != 200:
                print(f"[{kind}] {path:42} answered {first.status_code}")
                continue
            size = len(first.content) + sum(len(client.get(a).content)
                                            for a in set(ASSET.findall(first.text)))
            heaviest = max(heaviest, size)
            SERVER_MS.clear()
            for _ in range(args.repeat):
                client.get(path)
            times = sorted(SERVER_MS.get(unquote(path.split("?")[0]), []))
            if not times:
                print(f"[{kind}] {path[:42]:42} no server timing logged")
                continue
            p50 = statistics.median(times)
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            mark = "ok" if p95 < TARGET_P95_MS else "OVER"
            print(f"[{kind}] {path[:42]:42} {p50:8.1f} {p95:8.1f} {TARGET_P95_MS:8.0f} "
                  f"{size:10,} {mark}", flush=True)
        print(f"[{kind}] heaviest screen with its assets: {heaviest:,} bytes "
              f"(target < {TARGET_BYTES:,}: {'ok' if heaviest < TARGET_BYTES else 'OVER'})")
    server.should_exit = True
    thread.join(timeout=10)
    app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    structlog.configure(processors=[keep_latency, structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory(open(os.devnull, "w")))
    tmp = Path(tempfile.mkdtemp(prefix="zhuisu-web-"))
    for kind in args.stores.split(","):
        if kind == "sqlite":
            run_store(kind, f"sqlite:///{tmp}/web.db", tmp, args)
        elif kind == "postgres":
            url = os.environ.get("ZHUISU_BENCH_POSTGRES_URL") or os.environ.get(
                "ZHUISU_TEST_POSTGRES_URL")
            if not url:
                print("[postgres] skipped: set ZHUISU_BENCH_POSTGRES_URL")
                continue
            import psycopg

            schema = f"bench_web_{os.getpid()}"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            try:
                run_store(kind, f"{url}?schema={schema}", tmp, args)
            finally:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
