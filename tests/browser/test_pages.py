"""The landing page and the operator console in headless Chromium."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import expect

from tests.api.support import ahead
from tests.browser.conftest import API, make_superuser, sign_up, token_of

pytestmark = pytest.mark.browser


async def _referrer(base: str, email: str, name: str) -> tuple[dict, str, str]:
    user = await sign_up(base, email, full_name=name)
    token = await token_of(base, email)
    async with httpx.AsyncClient(base_url=base) as http:
        created = await http.post(
            f"{API}/referral-codes",
            json={"expires_at": ahead(days=14)},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert created.status_code == 201, created.text
    return user, token, created.json()["code"]


async def test_the_landing_page_in_english_signs_a_referral_up(server, open_page) -> None:
    ada, token, code = await _referrer(server, "ada@example.com", "Ada Lovelace")
    watched = await open_page("en-US")
    page = watched.page

    await page.goto(f"{server}/r/{code}")

    await expect(page.locator("h1")).to_have_text("You are invited")
    await expect(page.locator(".lead")).to_contain_text("Ada Lovelace invites you")
    await expect(page.locator("#code")).to_have_text(code)
    assert "ada@example.com" not in await page.content()
    qr_width = await page.locator("#qr").evaluate("img => img.complete && img.naturalWidth")
    assert qr_width, "the QR image loaded"
    await expect(page.locator("#telegram")).to_have_attribute(
        "href", f"https://t.me/referral_test_bot?start={code}"
    )
    await watched.screenshot("landing-en")

    await page.fill("#full_name", "Bob Browser")
    await page.fill("#email", "bob@example.com")
    await page.fill("#password", "bob's long password")
    await page.click("button[type=submit]")

    await expect(page.locator("#done")).to_be_visible()
    await expect(page.locator("#done")).to_contain_text("Sign in with your email and password.")
    await watched.screenshot("landing-en-done")
    async with httpx.AsyncClient(base_url=server) as http:
        listed = await http.get(
            f"{API}/users/{ada['id']}/referrals", headers={"Authorization": f"Bearer {token}"}
        )
    assert [item["email"] for item in listed.json()["items"]] == ["bob@example.com"]
    assert watched.errors == []
    assert await watched.violations() == []


async def test_the_landing_page_in_russian_explains_errors_by_their_field(
    server, open_page
) -> None:
    _, _, code = await _referrer(server, "ivan@example.com", "Иван")
    await sign_up(server, "taken@example.com")
    watched = await open_page("ru-RU")
    page = watched.page

    await page.goto(f"{server}/r/{code}")
    await expect(page.locator("h1")).to_have_text("Вас пригласили")
    await expect(page.locator(".lead")).to_contain_text("Иван приглашает вас")

    await page.fill("#email", "taken@example.com")
    await page.fill("#password", "достаточно длинный")
    await page.click("button[type=submit]")
    await expect(page.locator("#email-error")).to_have_text(
        "Этот адрес уже зарегистрирован. Войдите."
    )
    await page.fill("#email", "new@example.com")
    await page.fill("#password", "short")
    await page.click("button[type=submit]")
    await expect(page.locator("#password-error")).to_have_text(
        "Пароль должен быть от 8 до 128 символов."
    )
    await watched.screenshot("landing-ru-errors")
    assert [e for e in watched.errors if "422" not in e and "409" not in e] == []
    assert await watched.violations() == []


async def test_an_unknown_code_gets_a_friendly_404(server, open_page) -> None:
    watched = await open_page("en-US")
    response = await watched.page.goto(f"{server}/r/no-such-code")
    assert response is not None
    assert response.status == 404
    await expect(watched.page.locator("h1")).to_have_text("This invitation does not work")
    await watched.screenshot("landing-404")
    assert await watched.violations() == []


async def test_the_console_signs_in_charts_and_approves(server, open_page) -> None:
    root = await sign_up(server, "root@example.com")
    await make_superuser(root["id"])
    _, _, code = await _referrer(server, "carol@example.com", "Carol")
    held = await sign_up(server, "held@mailinator.com", full_name="Held", referral_code=code)
    watched = await open_page("en-US")
    page = watched.page

    await page.goto(f"{server}/console")
    await expect(page.locator("#sign-in")).to_be_visible()
    await page.fill("#username", "root@example.com")
    await page.fill("#password", "correct horse battery")
    await page.click("#sign-in-form button")

    await expect(page.locator("#console")).to_be_visible()
    await expect(page.locator("#daily-chart")).to_be_visible()
    await expect(page.locator("#total-pending_review")).to_have_text("1")
    row = page.locator(f"#queue tr[data-referral='{held['id']}']")
    await expect(row).to_contain_text("disposable_email")
    await watched.screenshot("console")
    stored = await page.evaluate("sessionStorage.getItem('console-token')")
    assert stored
    assert await page.evaluate("localStorage.length") == 0

    await row.get_by_role("button", name="Approve").click()
    await expect(row).to_have_count(0)
    await expect(page.locator("#queue-empty")).to_be_visible()
    await expect(page.locator("#audit")).to_contain_text("referral.approved")
    await expect(page.locator("#top")).to_contain_text("Carol — 1")  # approved now: counted

    await page.fill("#key-name", "shop backend")
    await page.click("#key-form button")
    await expect(page.locator("#new-key")).to_contain_text("rk_")
    await expect(page.locator("#keys")).to_contain_text("shop backend")
    async with httpx.AsyncClient(base_url=server) as http:
        item = (
            await http.get(
                f"{API}/admin/referrals",
                headers={"Authorization": f"Bearer {await token_of(server, 'root@example.com')}"},
            )
        ).json()["items"]
    assert {i["id"]: i["status"] for i in item}[held["id"]] == "approved"
    assert watched.errors == []
    assert await watched.violations() == []


async def test_the_console_is_for_operators_only_and_ends_with_the_token(server, open_page) -> None:
    await sign_up(server, "plain@example.com")
    watched = await open_page("en-US")
    page = watched.page
    await page.goto(f"{server}/console")
    await page.fill("#username", "plain@example.com")
    await page.fill("#password", "correct horse battery")
    await page.click("#sign-in-form button")
    await expect(page.locator("#notice")).to_have_text(
        "Operators only: this account is not an operator."
    )
    await expect(page.locator("#console")).to_be_hidden()

    await page.evaluate("sessionStorage.setItem('console-token', 'expired.or.forged')")
    await page.reload()
    await expect(page.locator("#sign-in")).to_be_visible()
    await expect(page.locator("#notice")).to_have_text("Your session has ended: sign in again.")
    assert await watched.violations() == []
