"""The landing page `/r/{code}` and the console's files, over HTTP (the browser tests click)."""

from __future__ import annotations

import datetime as dt
import io

import httpx

from core.infra import clock
from core.users.models import User
from tests.api.support import ahead, assert_problem
from tests.conftest import API

STRICT = "script-src 'self'"


async def _code(client: httpx.AsyncClient, user, **fields) -> tuple[dict, str]:
    body, headers = await user("ada@example.com", full_name="Ada Lovelace", **fields)
    created = await client.post(
        f"{API}/referral-codes", json={"expires_at": ahead(days=7), "max_uses": 2}, headers=headers
    )
    return {**body, "headers": headers}, created.json()["code"]


async def test_the_landing_page_names_the_referrer_and_never_their_email(
    client: httpx.AsyncClient, core, user
) -> None:
    _ada, code = await _code(client, user)
    page = await client.get(f"/r/{code}", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert STRICT in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<html lang="en">' in html
    assert "Ada Lovelace invites you" in html
    assert code in html
    assert "ada@example.com" not in html
    assert 'property="og:title"' in html
    assert 'name="twitter:card"' in html
    assert f'href="https://t.me/referral_test_bot?start={code}"' in html
    # The page's own resources are relative (any host and port, under img-src 'self');
    # only what other sites read is absolute.
    base = core.settings.mail.public_base_url
    assert f'src="/r/{code}/qr.svg"' in html
    assert f'content="{base}/r/{code}/preview.png"' in html
    assert f'href="{base}/r/{code}"' in html  # canonical
    assert 'content="image/png"' in html
    assert 'href="/account"' in html
    assert "<script>" not in html
    assert "style=" not in html
    assert '<script src="/static/pages/landing.js">' in html


async def test_russian_by_accept_language(client: httpx.AsyncClient, user) -> None:
    _, code = await _code(client, user)
    page = await client.get(f"/r/{code}", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert '<html lang="ru">' in page.text
    assert "Ada Lovelace приглашает вас" in page.text
    weighted = await client.get(f"/r/{code}", headers={"Accept-Language": "ru;q=0.2, en;q=0.8"})
    assert '<html lang="en">' in weighted.text
    assert (
        '<html lang="en">'
        in (await client.get(f"/r/{code}", headers={"Accept-Language": "de"})).text
    )


async def test_the_qr_code_is_an_svg_of_the_pages_address(client: httpx.AsyncClient, user) -> None:
    _, code = await _code(client, user)
    qr = await client.get(f"/r/{code}/qr.svg")
    assert qr.status_code == 200
    assert qr.headers["content-type"] == "image/svg+xml"
    assert qr.text.startswith("<svg")


async def test_the_link_preview_is_a_png_with_the_referrers_name(
    client: httpx.AsyncClient, user
) -> None:
    from PIL import Image

    _, code = await _code(client, user)
    for language in ("en", "ru"):
        image = await client.get(f"/r/{code}/preview.png", headers={"Accept-Language": language})
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        picture = Image.open(io.BytesIO(image.content))
        assert picture.size == (1200, 630)
        # Text was drawn (many colours), not an empty card.
        assert len(picture.getcolors(maxcolors=100_000) or []) > 20
    assert (await client.get("/r/NoSuchCode/preview.png")).status_code == 404


async def test_unknown_expired_deleted_and_exhausted_codes_get_a_friendly_404(
    client: httpx.AsyncClient, user, register
) -> None:
    ada, code = await _code(client, user)
    for bad in ("nosuchcode", "x", "%00", "a" * 300):
        page = await client.get(f"/r/{bad}")
        assert page.status_code == 404
        assert "This invitation does not work" in page.text
    await register("b1@example.com", referral_code=code)
    await register("b2@example.com", referral_code=code)  # max_uses 2: used up
    exhausted = await client.get(f"/r/{code}")
    assert exhausted.status_code == 404
    assert "Ada" not in exhausted.text
    assert (await client.get(f"/r/{code}/qr.svg")).status_code == 404
    created = await client.post(
        f"{API}/referral-codes", json={"expires_at": ahead(days=1)}, headers=ada["headers"]
    )
    fresh = created.json()["code"]
    with clock.shift(dt.timedelta(days=2)):
        assert (await client.get(f"/r/{fresh}")).status_code == 404
    await client.delete(f"{API}/referral-codes/me", headers=ada["headers"])
    assert (await client.get(f"/r/{fresh}")).status_code == 404


async def test_a_view_counts_as_a_link_open_once_per_visitor_in_a_window(
    app, client: httpx.AsyncClient, core, user, settings
) -> None:
    ada, code = await _code(client, user)

    async def views(address: str, count: int) -> None:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as visitor:
            for _ in range(count):
                assert (await visitor.get(f"/r/{code}")).status_code == 200

    async def opens() -> int:
        await core.link_opens.flush()
        stats = await client.get(f"{API}/users/me/referral-stats", headers=ada["headers"])
        return int(stats.json()["link_opens"])

    await views("203.0.113.1", 50)  # a loop from one address
    assert await opens() == 1
    await views("203.0.113.2", 1)
    await views("2001:db8::1", 2)
    assert await opens() == 3
    with clock.shift(dt.timedelta(seconds=settings.program.link_open_repeat_seconds + 1)):
        await views("203.0.113.1", 3)
    assert await opens() == 4


async def test_the_console_and_its_chart(client: httpx.AsyncClient, user) -> None:
    page = await client.get("/console")
    assert page.status_code == 200
    assert STRICT in page.headers["content-security-policy"]
    assert '<script src="/static/console/console.js">' in page.text
    assert (await client.get("/static/console/console.js")).status_code == 200
    assert_problem(await client.get(f"{API}/admin/stats/chart.svg"), 401, "not_authenticated")
    body, headers = await user("root@example.com")
    assert_problem(
        await client.get(f"{API}/admin/stats/chart.svg", headers=headers), 403, "forbidden"
    )
    await User.objects.filter(id=body["id"]).update(is_superuser=True)
    chart = await client.get(f"{API}/admin/stats/chart.svg", params={"days": 7}, headers=headers)
    assert chart.status_code == 200
    assert chart.headers["content-type"] == "image/svg+xml"
    assert chart.text.count("<title>") == 21  # three series a day
    assert "style=" not in chart.text


async def test_the_landing_page_names_its_campaign_and_says_when_it_is_not_running(
    client: httpx.AsyncClient, user
) -> None:
    body, _ = await user("root@example.com")
    await User.objects.filter(id=body["id"]).update(is_superuser=True)
    token = await client.post(
        f"{API}/auth/token",
        data={"username": "root@example.com", "password": "correct horse battery"},
    )
    operator = {"Authorization": f"Bearer {token.json()['access_token']}"}
    made = await client.post(
        f"{API}/campaigns", json={"key": "winter", "name": "Winter <drive>"}, headers=operator
    )
    assert made.status_code == 201, made.text
    _, headers = await user("ada@example.com", full_name="Ada Lovelace")
    created = await client.post(
        f"{API}/referral-codes",
        json={"expires_at": ahead(days=7), "campaign": "winter"},
        headers=headers,
    )
    code = created.json()["code"]
    html = (await client.get(f"/r/{code}", headers={"Accept-Language": "en"})).text
    assert '<strong id="campaign">Winter &lt;drive&gt;</strong>' in html
    assert 'id="not-running"' not in html
    await client.patch(f"{API}/campaigns/winter", json={"status": "paused"}, headers=operator)
    html = (await client.get(f"/r/{code}", headers={"Accept-Language": "ru"})).text
    assert "Эта кампания сейчас не проводится" in html
    assert '<section id="signup" hidden>' in html
    preview = await client.get(f"/r/{code}/preview.png")
    assert preview.status_code == 200


async def test_a_telegram_campaigns_landing_page_offers_the_owners_chat_link(
    client: httpx.AsyncClient, user, operator: dict[str, str]
) -> None:
    """The link the bot made for this code (read from the database: the page never asks
    Telegram), and the campaign's chat as the operator sees it."""
    from core.infra.db import database, execute
    from core.telegram.tables import invite_links, telegram_chats

    chat_id = -1009876543210
    made = await client.post(
        f"{API}/campaigns",
        json={
            "key": "club",
            "name": "Club",
            "rules": {"telegram": {"chat_id": chat_id, "qualify_after_days": 7}},
        },
        headers=operator,
    )
    assert made.status_code == 201, made.text
    assert made.json()["rules"]["telegram"] == {
        "chat_id": chat_id,
        "qualify_after_days": 7,
        "join_requests": False,
    }
    assert made.json()["telegram_chat"]["status"] == "unchecked"
    ada, headers = await user("ada@example.com", full_name="Ada Lovelace")
    created = await client.post(
        f"{API}/referral-codes",
        json={"expires_at": ahead(days=7), "campaign": "club"},
        headers=headers,
    )
    code = created.json()["code"]
    html = (await client.get(f"/r/{code}")).text
    assert 'id="chat-invite"' not in html  # the bot made no link yet

    now = clock.utcnow()
    async with database.transaction(), database.connection() as connection:
        await execute(
            connection,
            telegram_chats.insert().values(
                chat_id=chat_id,
                title="Cooks",
                status="not_admin",
                problem="no rights",
                checked_at=now,
            ),
        )
        await execute(
            connection,
            invite_links.insert().values(
                user_id=ada["id"],
                campaign_id=made.json()["id"],
                chat_id=chat_id,
                link="https://t.me/+abc",
                code=code,
                join_request=False,
                created_at=now,
            ),
        )
    html = (await client.get(f"/r/{code}")).text
    assert 'href="https://t.me/+abc"' in html
    assert "Join the chat in Telegram: Cooks" in html
    shown = (await client.get(f"{API}/campaigns/club", headers=operator)).json()["telegram_chat"]
    assert (shown["ready"], shown["problem"], shown["title"]) == (False, "no rights", "Cooks")

    bad = await client.patch(
        f"{API}/campaigns/club",
        json={"rules": {"telegram": {"chat_id": chat_id, "qualify_after_days": 91}}},
        headers=operator,
    )
    assert_problem(bad, 422, "validation_error")
    assert "rules.telegram.qualify_after_days" in bad.text
