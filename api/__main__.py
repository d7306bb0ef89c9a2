"""`python -m api` (`make run`, the image): the API under uvicorn, checked before it forks.

Settings are read and checked once, in this parent process: a setting that cannot work ends
the start with one line, instead of every uvicorn worker failing with a traceback and being
restarted for ever. The parent imports no part of the app (its metrics would count as a
worker's).
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from core.infra.settings import settings_or_exit, workers_problem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)
    settings = settings_or_exit("api")
    workers = os.environ.get("WEB_CONCURRENCY", "1")
    problem = workers_problem(settings, workers)
    if problem:
        print(f"api: {problem}", file=sys.stderr)
        return 2
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=int(workers),
        access_log=False,
        proxy_headers=False,  # api.clients reads X-Forwarded-For from TRUSTED_PROXIES only
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
