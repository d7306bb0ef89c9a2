"""A real browser (Debian's Chromium, driven by Playwright) against the service in a subprocess.

`make test-browser` installs Chromium when it is missing. These tests never skip: a browser
that cannot start fails them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from core.users.models import User
from tests.conftest import PASSWORD
from tests.e2e.conftest import Server, _execute, _free_port, running

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
API = "/api/v1"
PUBLIC_BASE_URL = "https://referrals.example.com"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The service as `make run` starts it, on the run's database, its public address
    (PUBLIC_BASE_URL) another host than the one the browser opens: the pages' own resources
    must load wherever they are served."""
    port = _free_port()
    served = Server(port=port, PUBLIC_BASE_URL=PUBLIC_BASE_URL)
    with running(served):
        yield served.base_url


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no Chromium at {CHROMIUM}: make test-browser installs Debian's chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        await instance.close()


@dataclass
class Watched:
    """A page, with every console error and CSP violation it reported."""

    page: Page
    errors: list[str] = field(default_factory=list)

    async def screenshot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    async def violations(self) -> list[Any]:
        return list(await self.page.evaluate("window.__violations || []"))


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[Any]:
    contexts = []

    async def make(locale: str = "en-US", viewport: dict[str, int] | None = None) -> Watched:
        context = await browser.new_context(
            locale=locale, viewport=viewport or {"width": 1100, "height": 900}
        )
        contexts.append(context)
        # Through the DevTools protocol, not the page: the page's CSP does not apply to it.
        await context.add_init_script(
            "window.__violations = [];"
            "document.addEventListener('securitypolicyviolation',"
            " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
        )
        page = await context.new_page()
        watched = Watched(page)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                watched.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: watched.errors.append(str(error)))
        return watched

    yield make
    for context in contexts:
        await context.close()


async def sign_up(base: str, email: str, **fields: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post(
            f"{API}/auth/register", json={"email": email, "password": PASSWORD, **fields}
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


async def token_of(base: str, email: str) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post(
            f"{API}/auth/token", data={"username": email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


async def make_superuser(user_id: int) -> None:
    users = User.ormar_config.table
    await _execute(users.update().where(users.c.id == user_id).values(is_superuser=True))


async def mailed_token(user_id: int, purpose: str) -> str:
    """What a mail job makes: a one-time token, stored as its digest, valid 30 minutes."""
    import datetime as dt

    from core.infra import security
    from core.users.models import AccountToken

    token = security.new_opaque_token()
    now = dt.datetime.now(dt.UTC)
    tokens = AccountToken.ormar_config.table
    await _execute(
        tokens.insert().values(
            user_id=user_id,
            purpose=purpose,
            token_hash=security.token_digest(token),
            created_at=now,
            expires_at=now + dt.timedelta(minutes=30),
        )
    )
    return token
