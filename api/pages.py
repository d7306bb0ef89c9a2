"""Web pages: the referral landing page `/r/{code}` (server-rendered, English and Russian).

The page names the referrer (never their email), shows the code, its expiry, the Telegram
deep link when a bot is configured and a QR code of its own address, and signs people up
through the API with a small script of its own (no inline script or style: the strict CSP
below holds). Each view counts as a link open; answers are `no-store`, so no HTTP cache in
front hides a view.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import segno
from babel.dates import format_datetime
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.clients import client_address
from api.preview import preview_png
from api.routing import ServiceRoute, per_address
from core.campaigns.service import Campaign
from core.container import Core
from core.infra import clock
from core.infra.errors import DomainError
from core.infra.ratelimit import Limit, Limits

HERE = Path(__file__).parent
STATIC = "/static/pages"
API = "/api/v1"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": POLICY, "Cache-Control": "no-store"}

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "{name} invites you",
        "heading": "You are invited",
        "invited": "{name} invites you to join with their referral code.",
        "description": "Join with {name}'s referral code {code}.",
        "code": "Code",
        "valid_until": "Valid until",
        "open_telegram": "Open in Telegram",
        "join_chat": "Join the chat in Telegram",
        "qr_alt": "QR code of this page",
        "qr_caption": "Scan to open this page on another device.",
        "signup": "Sign up with this code",
        "name": "Your name (optional)",
        "email": "Email",
        "password": "Password (at least 8 characters)",
        "join": "Join",
        "welcome": "Welcome! Your account is ready.",
        "next_email": "Check your email: we sent you a link to confirm the address.",
        "next_telegram": "Link your Telegram chat to this account (the link works once):",
        "link_telegram": "Link Telegram",
        "next_signin": "Your own referral code and link are on your account page.",
        "account": "Open my account",
        "preview_heading": "An invitation",
        "campaign": "Campaign",
        "not_running": (
            "This campaign is not running right now: sign-ups with this code are closed."
        ),
        "a_friend": "A friend",
        "missing_title": "Invitation not found",
        "missing_heading": "This invitation does not work",
        "missing_text": (
            "The link is unknown, expired, deleted or used up. Ask the person who sent it for "
            "a new one."
        ),
    },
    "ru": {
        "title": "{name} приглашает вас",
        "heading": "Вас пригласили",
        "invited": "{name} приглашает вас присоединиться по реферальному коду.",
        "description": "Присоединяйтесь по коду {code} — приглашение от {name}.",
        "code": "Код",
        "valid_until": "Действует до",
        "open_telegram": "Открыть в Telegram",
        "join_chat": "Вступить в чат в Telegram",
        "qr_alt": "QR-код этой страницы",
        "qr_caption": "Отсканируйте, чтобы открыть страницу на другом устройстве.",
        "signup": "Зарегистрироваться по этому коду",
        "name": "Ваше имя (необязательно)",
        "email": "Электронная почта",
        "password": "Пароль (не короче 8 символов)",
        "join": "Присоединиться",
        "welcome": "Добро пожаловать! Аккаунт создан.",
        "next_email": "Проверьте почту: мы отправили ссылку для подтверждения адреса.",
        "next_telegram": "Привяжите чат Telegram к этому аккаунту (ссылка одноразовая):",
        "link_telegram": "Привязать Telegram",
        "next_signin": "Ваш собственный код и ссылка — на странице аккаунта.",
        "account": "Открыть мой аккаунт",
        "preview_heading": "Приглашение",
        "campaign": "Кампания",
        "not_running": "Эта кампания сейчас не проводится: регистрация по этому коду закрыта.",
        "a_friend": "Друг",
        "missing_title": "Приглашение не найдено",
        "missing_heading": "Это приглашение не работает",
        "missing_text": (
            "Ссылка неизвестна, истекла, удалена или исчерпана. Попросите отправителя "
            "прислать новую."
        ),
    },
}

# Every error code a sign-up can answer, as a sentence (`unknown`: anything else).
ERRORS: dict[str, dict[str, str]] = {
    "en": {
        "email_taken": "This email is already registered. Sign in instead.",
        "email_undeliverable": "Mail to this address cannot be delivered. Check it.",
        "referral_code_invalid": "This referral code does not exist.",
        "referral_code_expired": "This referral code has expired.",
        "referral_code_deleted": "This referral code was deleted.",
        "referral_code_exhausted": "This referral code has been used up.",
        "rate_limited": "Too many sign-ups from here. Try again in a while.",
        "invalid_email": "Enter a valid email address.",
        "invalid_password": "The password needs 8 to 128 characters.",
        "invalid_full_name": "The name may have up to 100 letters, without control characters.",
        "invalid_input": "Something in the form is not valid.",
        "payload_too_large": "The form is too large.",
        "service_unavailable": "The service is busy. Try again in a moment.",
        "unknown": "Something went wrong. Try again.",
    },
    "ru": {
        "email_taken": "Этот адрес уже зарегистрирован. Войдите.",
        "email_undeliverable": "Письма на этот адрес не доходят. Проверьте его.",
        "referral_code_invalid": "Такого реферального кода нет.",
        "referral_code_expired": "Срок действия кода истёк.",
        "referral_code_deleted": "Этот код удалён.",
        "referral_code_exhausted": "Код использован максимальное число раз.",
        "rate_limited": "Слишком много регистраций отсюда. Попробуйте позже.",
        "invalid_email": "Введите правильный адрес почты.",
        "invalid_password": "Пароль должен быть от 8 до 128 символов.",
        "invalid_full_name": "Имя — до 100 символов, без управляющих символов.",
        "invalid_input": "В форме что-то заполнено неверно.",
        "payload_too_large": "Слишком большая форма.",
        "service_unavailable": "Сервис занят. Попробуйте через минуту.",
        "unknown": "Что-то пошло не так. Попробуйте ещё раз.",
    },
}

_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)


def pick_language(header: str | None) -> str:
    """English or Russian by Accept-Language (its weights honoured), English otherwise."""
    best, weight = "en", 0.0
    for part in (header or "")[:500].split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        language = tag.strip().lower().split("-")[0]
        if language in TEXTS and quality > weight:
            best, weight = language, quality
    return best


def render(name: str, status: int, **context: Any) -> HTMLResponse:
    """A page of `api/templates/`, under the strict CSP and never cached."""
    page = _templates.get_template(name).render(static=STATIC, api=API, **context)
    return HTMLResponse(page, status_code=status, headers=HEADERS)


router = APIRouter(include_in_schema=False, route_class=ServiceRoute)


async def _campaign_of(core: Core, key: str) -> Campaign | None:
    """The campaign a page's code belongs to (None: it is gone, which the view outlived)."""
    try:
        return await core.campaigns.by_key(key)
    except DomainError:
        return None


def _lookup(limits: Limits) -> Limit:
    return limits.lookup


@router.get("/r/{code}")
@per_address(_lookup)  # a page that says whether a code exists is a lookup, limited as one
async def landing(code: str, request: Request) -> HTMLResponse:
    core: Core = request.app.state.core
    lang = pick_language(request.headers.get("accept-language"))
    texts = TEXTS[lang]
    try:
        view = await core.views.code_view(code)
    except DomainError:
        return render("missing.html", 404, lang=lang, title=texts["missing_title"], t=texts)
    # Counted in memory, written in batches; once per visitor and code in a window.
    await core.link_opens.record(
        view.referrer.id, campaign=view.campaign, visitor=client_address(request), code=view.code
    )
    name = view.referrer.full_name or texts["a_friend"]
    campaign = await _campaign_of(core, view.campaign)
    # The page's own resources by relative URL (it works on any host and port); absolute
    # ones only where another site reads them: OpenGraph (the preview image too).
    base = core.settings.mail.public_base_url
    expires = view.expires_at
    t = {key: value.format(name=name, code=view.code) for key, value in texts.items()}
    # A campaign grown inside Telegram: the owner's own invite link to its chat, when the bot
    # made one for this code (read, never made here: nothing on this path asks Telegram).
    chat = (
        await core.invites.chat_link(owner_id=view.referrer.id, campaign=campaign, code=view.code)
        if campaign is not None and campaign.rules.telegram and campaign.running(clock.utcnow())
        else None
    )
    return render(
        "landing.html",
        200,
        lang=lang,
        t=t,
        title=t["title"],
        description=t["description"],
        code=view.code,
        campaign_name=campaign.name if campaign and not campaign.is_default else None,
        running=campaign is None or campaign.running(clock.utcnow()),
        expires=format_datetime(expires, "d MMMM y, HH:mm 'UTC'", tzinfo=dt.UTC, locale=lang),
        expires_iso=expires.isoformat(),
        page_url=f"{base}/r/{view.code}",
        preview_url=f"{base}/r/{view.code}/preview.png",
        qr_url=f"/r/{view.code}/qr.svg",
        telegram_link=core.telegram.deep_link(view.code),
        chat_link=chat[0] if chat else None,
        chat_title=chat[1] if chat else None,
        verification=core.auth.mailer is not None,
        errors={key.replace("_", "-"): value for key, value in ERRORS[lang].items()},
    )


@router.get("/r/{code}/qr.svg")
@per_address(_lookup)
async def qr(code: str, request: Request) -> Response:
    """The QR code of the page's own address (no open counted: the page already was)."""
    core: Core = request.app.state.core
    try:
        view = await core.views.code_view(code)
    except DomainError:
        return Response(status_code=404, headers={"Cache-Control": "no-store"})
    buffer = io.BytesIO()
    url = f"{core.settings.mail.public_base_url}/r/{view.code}"
    segno.make(url, error="m").save(buffer, kind="svg", scale=6, border=2, xmldecl=False)
    return Response(
        buffer.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )


@router.get("/r/{code}/preview.png")
@per_address(_lookup)
async def preview(code: str, request: Request) -> Response:
    """The link preview messengers show: the referrer's name and the code, as a PNG."""
    core: Core = request.app.state.core
    texts = TEXTS[pick_language(request.headers.get("accept-language"))]
    try:
        view = await core.views.code_view(code)
    except DomainError:
        return Response(status_code=404, headers={"Cache-Control": "no-store"})
    name = view.referrer.full_name or texts["a_friend"]
    campaign = await _campaign_of(core, view.campaign)
    image = await preview_png(
        heading=campaign.name if campaign and not campaign.is_default else texts["preview_heading"],
        name=name,
        invitation=texts["invited"].format(name=name, code=view.code),
        code=view.code,
    )
    # Messengers fetch it once and keep it; a short private life keeps a renamed referrer fresh.
    return Response(image, media_type="image/png", headers={"Cache-Control": "max-age=300"})


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(STATIC, StaticFiles(directory=HERE / "static" / "pages"), name="pages-static")
