"""Throughput of the cached code lookup against a bare Starlette + Redis GET baseline.

    make bench                 # or: .venv/bin/python bench/lookup.py --seconds 15
Needs wrk (apt-get install wrk) and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/14;
the database is flushed). Both servers run on the same uvicorn (uvloop + httptools), one worker,
one at a time, with rate limiting off (the documented setting for load tests; --rate-limits
measures it on). Results are appended to bench/results/lookup.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
EMAIL = "bench@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer at {url}")


def serve(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "uvicorn",
            *(["--factory"] if app.endswith(":create_app") else []),
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--no-proxy-headers",
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
        cwd=ROOT,
        env=env,
    )


def wrk(url: str, *, seconds: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out:
        raise RuntimeError(f"wrk run failed or got errors:\n{out}")
    return float(match.group(1))


def prepare(env: dict[str, str]) -> None:
    """Migrate a fresh SQLite file and create one user with an active code."""
    subprocess.run(
        [PYTHON, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    script = f"""
import asyncio, datetime as dt
from core.container import build_core
from core.settings import get_settings
async def main():
    core = build_core(get_settings()); await core.start()
    user = await core.users.register(email={EMAIL!r}, password="bench-password")
    await core.referrals.create_code(owner=user,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
    body = await core.referrals.public_by_email({EMAIL!r})
    await core.cache.client.set("bench:" + {EMAIL!r}, body)  # the baseline's value
    await core.stop()
asyncio.run(main())
"""
    subprocess.run([PYTHON, "-c", script], cwd=ROOT, env=env, check=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--rate-limits",
        action="store_true",
        help="with the lookup limit on (a limit too high to refuse): one more Redis call",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    workdir = Path(tempfile.mkdtemp(prefix="referral-bench-"))
    env = {
        **os.environ,
        "ENV_FILE": "none",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "REDIS_URL": redis_url,
        "BENCH_REDIS_URL": redis_url,
        "RATE_LIMIT_ENABLED": "true" if args.rate_limits else "false",
        "RATE_LIMIT_LOOKUP": "1000000000/1",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": "bench-secret-bench-secret-bench-secret-0123456789",
    }
    subprocess.run(
        [PYTHON, "-c", f"import redis; redis.Redis.from_url({redis_url!r}).flushdb()"], check=True
    )
    prepare(env)
    targets = {
        "baseline (Starlette + 1 Redis GET)": ("bench.baseline:app", f"/lookup?email={EMAIL}"),
        "service GET /api/v1/referral-codes?email=": (
            "api.main:create_app",
            f"/api/v1/referral-codes?email={EMAIL}",
        ),
    }
    results: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(args.rounds):  # interleaved rounds: drift hits both sides alike
        for name, (app, path) in targets.items():
            port = free_port()
            server = serve(app, port, env)
            try:
                url = f"http://127.0.0.1:{port}{path}"
                wait_up(url)
                wrk(url, seconds=2, connections=args.connections)  # warm-up
                results[name].append(wrk(url, seconds=args.seconds, connections=args.connections))
            finally:
                server.terminate()
                server.wait()
    base, ours = (max(values) for values in results.values())
    ratio = ours / base
    lines = [
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "",
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, best of {args.rounds} interleaved "
        "rounds, one uvicorn worker (uvloop, httptools), Redis on loopback, rate limits "
        + ("on (the lookup limit counted in Redis)." if args.rate_limits else "off."),
        "",
        "| endpoint | req/s (each round) | best |",
        "|---|---|---|",
    ]
    for name, values in results.items():
        lines.append(f"| {name} | {', '.join(f'{v:,.0f}' for v in values)} | {max(values):,.0f} |")
    lines += ["", f"**service / baseline = {ratio:.0%}**", ""]
    report = "\n".join(lines)
    print(report)
    out = ROOT / "bench" / "results" / "lookup.md"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as file:
        file.write(report + "\n")
    return 0


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    sys.exit(main())
