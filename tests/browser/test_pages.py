"""The landing page and the operator console in headless Chromium."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.api.support import ahead
from tests.browser.conftest import (
    API,
    PUBLIC_BASE_URL,
    mailed_token,
    make_superuser,
    sign_up,
    token_of,
)

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
    assert qr_width, "the QR image loaded, though PUBLIC_BASE_URL names another host"
    preview = page.locator("meta[property='og:image']")
    await expect(preview).to_have_attribute("content", f"{PUBLIC_BASE_URL}/r/{code}/preview.png")
    await expect(page.locator("#telegram")).to_have_attribute(
        "href", f"https://t.me/referral_test_bot?start={code}"
    )
    await watched.screenshot("landing-en")

    await page.fill("#full_name", "Bob Browser")
    await page.fill("#email", "bob@example.com")
    await page.fill("#password", "bob's long password")
    await page.click("button[type=submit]")

    await expect(page.locator("#done")).to_be_visible()
    # The chat is linked to the new account by a one-time link, never by the referral deep
    # link (a second account, a second referral); the account page is where one signs in.
    link = page.locator("#link-telegram")
    await expect(link).to_be_visible()
    href = await link.get_attribute("href")
    assert href is not None
    assert href.startswith("https://t.me/referral_test_bot?start=link_")
    await expect(page.locator("#telegram")).to_be_hidden()
    await expect(page.locator("#account")).to_have_attribute("href", "/account")
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


async def test_a_mailed_verification_link_confirms_the_address(server, open_page) -> None:
    ann = await sign_up(server, "verify@example.com")
    token = await mailed_token(ann["id"], "email_verification")
    watched = await open_page("en-US")
    page = watched.page

    await page.goto(f"{server}/verify-email?token={token}")
    await expect(page.locator("#heading")).to_have_text("Your email is confirmed")
    await watched.screenshot("verify-email")
    async with httpx.AsyncClient(base_url=server) as http:
        me = await http.get(
            f"{API}/users/me",
            headers={"Authorization": f"Bearer {await token_of(server, 'verify@example.com')}"},
        )
    assert me.json()["email_verified"] is True

    await page.goto(f"{server}/verify-email?token={token}")  # the same link again
    await expect(page.locator("#heading")).to_have_text("This link does not work")
    assert [e for e in watched.errors if "400" not in e] == []  # the used link's page
    assert await watched.violations() == []


async def test_a_mailed_reset_link_takes_the_new_password_twice(server, open_page) -> None:
    ann = await sign_up(server, "reset@example.com")
    token = await mailed_token(ann["id"], "password_reset")
    watched = await open_page("ru-RU")
    page = watched.page

    await page.goto(f"{server}/reset-password?token={token}")
    await expect(page.locator("h1")).to_have_text("Придумайте новый пароль")
    await page.fill("#new_password", "новый пароль 1")
    await page.fill("#repeat_password", "новый пароль 2")
    await page.click("#reset-form button")
    await expect(page.locator("#reset-error")).to_have_text("Пароли не совпадают.")
    await watched.screenshot("reset-password-ru")
    await page.fill("#repeat_password", "новый пароль 1")
    await page.click("#reset-form button")
    await expect(page.locator("#heading")).to_have_text("Пароль изменён")
    async with httpx.AsyncClient(base_url=server) as http:
        signed_in = await http.post(
            f"{API}/auth/token",
            data={"username": "reset@example.com", "password": "новый пароль 1"},
        )
    assert signed_in.status_code == 200
    assert watched.errors == []
    assert await watched.violations() == []


async def test_the_account_page_signs_in_makes_a_code_and_links_telegram(server, open_page) -> None:
    await sign_up(server, "own@example.com", full_name="Own Page")
    watched = await open_page("en-US")
    page = watched.page

    await page.goto(f"{server}/account")
    await page.fill("#email", "own@example.com")
    await page.fill("#password", "wrong password")
    await page.click("#signin-form button")
    await expect(page.locator("#signin-error")).to_have_text("The email or the password is wrong.")
    await page.fill("#password", "correct horse battery")
    await page.click("#signin-form button")
    await expect(page.locator("#hello")).to_have_text("Hello, Own Page!")
    await expect(page.locator("#my-code")).to_have_text("none yet")
    await page.click("#new-code")
    await expect(page.locator("#share")).to_be_visible()
    code = await page.locator("#my-code").text_content()
    assert code
    await expect(page.locator("#my-page")).to_have_attribute("href", f"/r/{code}")
    await expect(page.locator("#new-code")).to_be_hidden()
    await expect(page.locator("#link-telegram")).to_be_visible()
    await watched.screenshot("account")
    assert await page.evaluate("localStorage.length") == 0
    # Console lines for the wrong password's 401 and the 404 of "no code yet", nothing else.
    assert [e for e in watched.errors if "401" not in e and "404" not in e] == []
    assert await watched.violations() == []


async def _console(server: str, open_page, email: str, **context) -> Any:
    root = await sign_up(server, email)
    await make_superuser(root["id"])
    watched = await open_page("en-US", **context)
    page = watched.page
    await page.goto(f"{server}/console")
    await page.fill("#username", email)
    await page.fill("#password", "correct horse battery")
    await page.click("#sign-in-form button")
    await expect(page.locator("#console")).to_be_visible()
    return watched


async def test_the_console_runs_webhooks_users_and_jobs(server, open_page) -> None:
    _, _, code = await _referrer(server, "dora@example.com", "Dora")
    friend = await sign_up(server, "friend@example.com", full_name="Friend", referral_code=code)
    watched = await _console(server, open_page, "ops@example.com")
    page = watched.page

    # Webhook endpoints: add, edit, test, rotate, switch off and on.
    await page.fill("#endpoint-url", "https://hooks.example.com/a")
    await page.fill("#endpoint-events", "user.created, referral.created")
    await page.click("#endpoint-save")
    await expect(page.locator("#endpoint-secret")).to_contain_text("whsec_")
    row = page.locator("#endpoints tbody tr").filter(has_text="hooks.example.com/a")
    await expect(row).to_contain_text("referral.created, user.created")
    await row.get_by_role("button", name="Edit").click()
    await page.fill("#endpoint-url", "https://hooks.example.com/b")
    await page.click("#endpoint-save")
    row = page.locator("#endpoints tbody tr").filter(has_text="hooks.example.com/b")
    await expect(row).to_have_count(1)
    await row.get_by_role("button", name="Test").click()
    await expect(page.locator("#notice")).to_contain_text("A ping is queued")
    await expect(page.locator("#deliveries")).to_contain_text("hooks.example.com/b")  # not an id
    await row.get_by_role("button", name="Rotate secret").click()
    await expect(page.locator("#endpoint-secret")).to_contain_text("the old one signs too until")
    await row.get_by_role("button", name="Disable").click()
    await expect(row).to_contain_text("off")
    await row.get_by_role("button", name="Enable").click()
    await expect(row).to_contain_text("on")

    # Users: find, open, adjust, block (an operator has no block button).
    await page.fill("#user-query", "friend@")
    await page.click("#user-search button")
    found = page.locator("#user-list tbody tr")
    await expect(found).to_have_count(1)
    await found.get_by_role("button", name="Open").click()
    await expect(page.locator("#user-title")).to_have_text(f"Friend (#{friend['id']})")
    await expect(page.locator("#user-referrer")).to_have_text("Dora")
    await page.fill("#adjust-points", "25")
    await page.fill("#adjust-note", "welcome gift")
    await page.click("#adjust-form button")
    await expect(page.locator("#user-balance")).to_have_text("25")
    await expect(page.locator("#user-rewards")).to_contain_text("welcome gift")
    await page.click("#user-block")
    await expect(page.locator("#user-block")).to_have_text("Unblock")
    await expect(found).to_contain_text("blocked")
    await page.click("#user-block")
    await expect(page.locator("#user-block")).to_have_text("Block")
    await page.fill("#user-query", "dora")
    await page.click("#user-search button")
    await found.get_by_role("button", name="Open").click()
    await expect(page.locator("#user-referrals")).to_contain_text("friend@example.com")

    await expect(page.locator("#audit")).to_contain_text("ops@example.com")  # names, not ids
    await expect(page.locator("#audit")).to_contain_text("user.unblocked")
    await watched.screenshot("console-operations")
    assert watched.errors == []
    assert await watched.violations() == []


async def test_the_console_fits_a_phone(server, open_page) -> None:
    watched = await _console(
        server, open_page, "phone@example.com", viewport={"width": 390, "height": 844}
    )
    page = watched.page
    await expect(page.locator("#totals")).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at 390"
    await watched.screenshot("console-390")
    assert await watched.violations() == []


async def test_the_console_runs_a_campaign_from_start_to_refund(server, open_page) -> None:
    """The README's walk-through: a "double rewards in December" campaign with a 14-day hold
    and a cap of 10 a month, its funnel, a refund, and its rewards gone from the hold."""
    watched = await _console(server, open_page, "boss@example.com")
    page = watched.page

    await page.click("#campaign-new")
    await page.fill("#campaign-key", "double-december")
    await page.fill("#campaign-name", "Double rewards in December")
    await page.fill("#rule-referrer-points", "200")
    await page.fill("#rule-friend-points", "100")
    await page.fill("#rule-milestones", "0:500")  # a rule that cannot hold: named
    await page.click("#campaign-save")
    await expect(page.locator("#campaign-error")).to_contain_text("rules.milestones.0.qualified")
    await page.fill("#rule-milestones", "")
    await page.fill("#rule-hold", "14")
    await page.fill("#rule-cap-rewards", "10")
    await page.fill("#rule-cap-days", "30")
    await page.click("#campaign-save")
    await expect(page.locator("#campaign-title")).to_have_text(
        "Double rewards in December — active"
    )
    row = page.locator("#campaign-list tr[data-campaign='double-december']")
    await expect(row).to_contain_text("14-day hold")
    await expect(row).to_contain_text("cap 10/30 d")

    # The business's side: a referrer's code in the campaign, a friend, a purchase.
    user, token, _ = await _referrer(server, "erin@example.com", "Erin")
    operator = {"Authorization": f"Bearer {await token_of(server, 'boss@example.com')}"}
    async with httpx.AsyncClient(base_url=server) as http:
        made = await http.post(
            f"{API}/referral-codes",
            json={"expires_at": ahead(days=14), "campaign": "double-december"},
            headers={"Authorization": f"Bearer {token}"},
        )
        friend = await sign_up(server, "buyer@example.com", referral_code=made.json()["code"])
        bought = await http.post(
            f"{API}/conversions",
            json={"user_id": friend["id"], "event": "purchase", "external_id": "order-1042"},
            headers=operator,
        )
    assert bought.json()["referral_qualified"] is True
    # The campaign's landing page names it (under the same CSP).
    landing = await open_page("en-US")
    await landing.page.goto(f"{server}/r/{made.json()['code']}")
    await expect(landing.page.locator("#campaign")).to_have_text("Double rewards in December")
    assert landing.errors == []
    assert await landing.violations() == []

    await row.get_by_role("button", name="Open").click()
    await expect(page.locator("#funnel-signups")).to_have_text("1")
    await expect(page.locator("#funnel-points_granted")).to_have_text("300")
    await expect(page.locator("#funnel-chart svg")).to_be_visible()
    await page.fill("#user-query", "erin@")
    await page.click("#user-search button")
    found = page.locator("#user-list tbody tr")
    await expect(found).to_have_count(1)
    await found.get_by_role("button", name="Open").click()
    await expect(page.locator("#user-pending")).to_have_text("200")
    await expect(page.locator("#user-rewards")).to_contain_text("in hold until")

    await page.fill("#refund-id", "order-1042")
    await page.fill("#refund-reason", "returned")
    await page.click("#refund-form button")
    await expect(page.locator("#refund-result")).to_contain_text(
        "2 rewards in hold revoked (300 points)"
    )
    await expect(page.locator("#funnel-points_revoked")).to_have_text("300")
    await expect(page.locator("#user-pending")).to_have_text("0")
    await expect(page.locator("#user-rewards")).to_contain_text("revoked")
    await watched.screenshot("console-campaign")
    assert user["id"]
    assert [e for e in watched.errors if "422" not in e] == []  # the refused rule
    assert await watched.violations() == []


async def test_the_console_starts_a_telegram_campaign_and_shows_its_chat(server, open_page) -> None:
    """ "Invite 3 friends who stay a week, get a reward": the chat, the wait and the milestone
    from the form; the chat's readiness beside the campaign (no bot runs here: unchecked)."""
    watched = await _console(server, open_page, "chief@example.com")
    page = watched.page
    await page.click("#campaign-new")
    await page.fill("#campaign-key", "club-week")
    await page.fill("#campaign-name", "Invite 3 friends who stay a week")
    await page.fill("#rule-referrer-points", "0")
    await page.fill("#rule-friend-points", "0")
    await page.fill("#rule-milestones", "3:500")
    await page.fill("#rule-chat", "0")  # no chat has this id: named
    await page.fill("#rule-stay", "7")
    await page.click("#campaign-save")
    await expect(page.locator("#campaign-error")).to_contain_text("rules.telegram.chat_id")
    await page.fill("#rule-chat", "-1001234567890")
    await page.click("#campaign-save")
    await expect(page.locator("#campaign-title")).to_have_text(
        "Invite 3 friends who stay a week — active"
    )
    row = page.locator("#campaign-list tr[data-campaign='club-week']")
    await expect(row).to_contain_text("chat -1001234567890, stay 7 d")
    await expect(row).to_contain_text("milestones 3:500")
    await expect(row).to_contain_text("chat not ready")
    await expect(page.locator("#campaign-chat")).to_contain_text("not checked yet")
    assert [e for e in watched.errors if "422" not in e] == []
    assert await watched.violations() == []
