"""`make superuser`: operators are made on the command line, by the sign-up's own rules."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx

from tests.conftest import API, PASSWORD, ROOT


async def _superuser(email: str, password: str | None) -> tuple[int, str]:
    env = {key: value for key, value in os.environ.items() if key != "PASSWORD"}
    if password is not None:
        env["PASSWORD"] = password
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core.cli",
        "superuser",
        email,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_an_operator_is_made_by_the_sign_up_rules_and_counted(
    client: httpx.AsyncClient, core, login
) -> None:
    code, output = await _superuser("ops@example.com", "x")
    assert code == 1
    assert output.strip() == "error: A password has 8 to 128 characters."
    code, output = await _superuser("nobody@example.com", None)
    assert (code, output.strip()) == (
        1,
        "error: no user nobody@example.com; set PASSWORD=… to create one",
    )

    code, output = await _superuser("Ops@Example.com", PASSWORD)
    assert (code, output.strip()) == (0, "created superuser ops@example.com")
    headers = await login("ops@example.com")
    overview = (await client.get(f"{API}/admin/stats", headers=headers)).json()
    assert overview["totals"]["users"] == 1  # counted like every other sign-up
    assert overview["days"][-1]["signups"] == 1

    code, output = await _superuser("ops@example.com", None)
    assert (code, output.strip()) == (0, "ops@example.com is now a superuser")
