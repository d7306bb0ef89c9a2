"""The documentation's curl walk-throughs run as written, one after the other, against a
fresh service started as `make run` starts it: every request answers below 400 unless the
text says it will not."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from core.migrate import upgrade_to_head
from tests.e2e.conftest import ROOT, Server, _free_port, running

# The pages whose shell blocks with curl make one walk-through, in the documentation's order.
PAGES = ("docs/api.md", "docs/program.md")
BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
STATUS = re.compile(r"^\d{3} [A-Z]+ http")
pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")),
    reason="the walk-throughs are curl and jq commands (Debian's curl and jq)",
)


def blocks(path: Path) -> list[str]:
    return [block for block in BLOCK.findall(path.read_text()) if "curl" in block]


def _run(script: str, tmp_path: Path, *, extra_env: dict[str, str]) -> list[str]:
    """Run the script with bash; every curl's status and URL, in order (what it printed is
    left in `tmp_path / "stdout"`)."""
    shims = tmp_path / "bin"
    shims.mkdir(exist_ok=True)
    log = tmp_path / "statuses"
    curl = shims / "curl"
    # Every request's status goes to the log; a block's own --write-out comes later and wins.
    curl.write_text(
        "#!/bin/sh\n"
        f"exec {shutil.which('curl')} --write-out '%{{stderr}}%{{http_code}} %{{method}} "
        '%{url_effective}\\n\' "$@" 2>>' + str(log) + "\n"
    )
    curl.chmod(curl.stat().st_mode | stat.S_IEXEC)
    done = subprocess.run(  # noqa: S603 (our own script)
        ["bash", "-eo", "pipefail", "-c", script],  # noqa: S607
        cwd=ROOT,
        env={**os.environ, **extra_env, "PATH": f"{shims}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (tmp_path / "stdout").write_text(done.stdout)
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if STATUS.match(line)]  # not curl's own progress meter


def _fresh_server(tmp_path: Path, name: str) -> tuple[Server, dict[str, str]]:
    database = f"sqlite:///{tmp_path / name}.db"
    upgrade_to_head(database)
    port = _free_port()
    env = {
        "DATABASE_URL": database,
        "JOBS_IN_PROCESS": "true",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    return Server(port=port, REDIS_URL=None, **env), env


def _pointed_at(script: str, server: Server) -> str:
    """The blocks name `make run`'s address; this server listens elsewhere."""
    return script.replace("127.0.0.1:8000", server.base_url.removeprefix("http://"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_documentation_walk_throughs_run_in_order(tmp_path: Path) -> None:
    script = "\n".join(block for page in PAGES for block in blocks(ROOT / page))
    assert script.count("curl") >= 30
    server, env = _fresh_server(tmp_path, "docs")
    # `make superuser` in the text runs the project's own command on this server's database.
    with running(server):
        statuses = _run(_pointed_at(script, server), tmp_path, extra_env=env)
    assert len(statuses) >= 28, statuses
    failures = [line for line in statuses if not line.startswith(("2", "3"))]
    # Every request succeeds: a 4xx would mean the text no longer matches the service.
    assert failures == [], failures


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_readme_tour_runs(tmp_path: Path) -> None:
    """The tour, the campaign from start to refund, and a Telegram campaign, on one fresh
    service (no bot runs: its chat stays unchecked)."""
    tour, campaign, club = blocks(ROOT / "README.md")
    server, env = _fresh_server(tmp_path, "readme")
    with running(server):
        statuses = _run(_pointed_at(tour + campaign + club, server), tmp_path, extra_env=env)
    assert [line.split()[0] for line in statuses] == [
        "201",  # Ada
        "200",  # her token
        "201",  # her code
        "200",  # the operator's token
        "201",  # the campaign
        "201",  # Ada's code in it
        "201",  # Erin
        "201",  # her purchase
        "200",  # Ada's rewards: in hold
        "200",  # the funnel
        "200",  # the refund
        "200",  # Ada's rewards: none left in hold
        "201",  # the Telegram campaign
        "200",  # its chat, as the bot last checked it
    ]
    printed = (tmp_path / "stdout").read_text()
    held, after = (
        json.loads(part)
        for part in re.findall(r'\{\s*"balance": \d+,\s*"pending": \d+\s*\}', printed)
    )
    assert (held, after) == ({"balance": 0, "pending": 200}, {"balance": 0, "pending": 0})
    assert '"status": "unchecked"' in printed
