"""The pages behind the mailed links and the account page, in English and Russian.

- `/verify-email?token=`: opening it confirms the address, by a POST the page sends (never a
  GET side effect); a used or expired link gets a friendly page.
- `/reset-password?token=`: the new password twice; a used or expired link gets a friendly
  page before any form.
- `/account`: sign in with email and password, see your code and your link, make a code,
  connect Telegram with a one-time link.

Served like the landing page: the strict CSP, no inline script, never cached.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse

from api.pages import pick_language, render
from api.routing import ServiceRoute, per_address
from core.auth.errors import InvalidResetToken, InvalidVerificationToken
from core.container import Core
from core.infra.errors import InvalidInput
from core.infra.ratelimit import Limit, Limits
from core.users.passwords import MAX_PASSWORD_LENGTH, check_password

MAX_TOKEN_LENGTH = 512

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "verify_title": "Confirm your email",
        "verify_heading": "Confirming your email…",
        "verify_text": "One moment: this page confirms your address.",
        "verify_button": "Confirm my email",
        "verified_heading": "Your email is confirmed",
        "verified_text": "Thank you: the address {email} is confirmed.",
        "reset_title": "Choose a new password",
        "reset_heading": "Choose a new password",
        "reset_text": "Type it twice. Every device signed in to the account is signed out.",
        "new_password": "New password (8 to 128 characters)",
        "repeat_password": "The same password again",
        "reset_button": "Set the password",
        "mismatch": "The two passwords differ.",
        "too_short": "The password needs 8 to 128 characters.",
        "reset_done_heading": "Your password is changed",
        "reset_done_text": "Sign in with the new password.",
        "bad_link_title": "This link does not work",
        "bad_verify_text": (
            "The confirmation link is unknown, expired or already used. If your address is not "
            "confirmed yet, sign in and ask for a new one."
        ),
        "bad_reset_text": (
            "The password link is unknown, expired or already used: links work once, for 30 "
            "minutes. Ask for a new one on the account page."
        ),
        "to_account": "Go to my account",
        "account_title": "Your account",
        "account_heading": "Your account",
        "account_text": "Sign in with the email and password you signed up with.",
        "email": "Email",
        "password": "Password",
        "signin_button": "Sign in",
        "signin_failed": "The email or the password is wrong.",
        "signin_blocked": "This account is blocked.",
        "signin_busy": "Too many attempts. Try again in a while.",
        "forgot": "Forgot the password? Type your email above, then press here.",
        "reset_sent": "If the address has an account, a link for a new password is on its way.",
        "hello": "Hello, {name}!",
        "code": "Your code",
        "valid_until": "Valid until",
        "referrals": "People who joined",
        "my_page": "Your invitation page",
        "no_code": "none yet",
        "new_code": "Make my code (30 days)",
        "link_telegram": "Connect Telegram",
        "signout": "Sign out",
    },
    "ru": {
        "verify_title": "Подтверждение почты",
        "verify_heading": "Подтверждаем адрес…",
        "verify_text": "Минуту: эта страница подтверждает ваш адрес.",
        "verify_button": "Подтвердить почту",
        "verified_heading": "Почта подтверждена",
        "verified_text": "Спасибо: адрес {email} подтверждён.",
        "reset_title": "Новый пароль",
        "reset_heading": "Придумайте новый пароль",
        "reset_text": "Введите его дважды. Все устройства, где вы вошли, выйдут из аккаунта.",
        "new_password": "Новый пароль (от 8 до 128 символов)",
        "repeat_password": "Тот же пароль ещё раз",
        "reset_button": "Сохранить пароль",
        "mismatch": "Пароли не совпадают.",
        "too_short": "Пароль должен быть от 8 до 128 символов.",
        "reset_done_heading": "Пароль изменён",
        "reset_done_text": "Войдите с новым паролем.",
        "bad_link_title": "Ссылка не работает",
        "bad_verify_text": (
            "Ссылка для подтверждения неизвестна, истекла или уже использована. Если адрес ещё "
            "не подтверждён, войдите и запросите новую."
        ),
        "bad_reset_text": (
            "Ссылка для смены пароля неизвестна, истекла или уже использована: она работает "
            "один раз, 30 минут. Запросите новую на странице аккаунта."
        ),
        "to_account": "Перейти в аккаунт",
        "account_title": "Ваш аккаунт",
        "account_heading": "Ваш аккаунт",
        "account_text": "Войдите с почтой и паролем, указанными при регистрации.",
        "email": "Электронная почта",
        "password": "Пароль",
        "signin_button": "Войти",
        "signin_failed": "Неверная почта или пароль.",
        "signin_blocked": "Аккаунт заблокирован.",
        "signin_busy": "Слишком много попыток. Попробуйте позже.",
        "forgot": "Забыли пароль? Введите почту выше и нажмите здесь.",
        "reset_sent": "Если для адреса есть аккаунт, ссылка для нового пароля уже в пути.",
        "hello": "Здравствуйте, {name}!",
        "code": "Ваш код",
        "valid_until": "Действует до",
        "referrals": "Присоединились",
        "my_page": "Ваша страница приглашения",
        "no_code": "пока нет",
        "new_code": "Создать код (30 дней)",
        "link_telegram": "Привязать Telegram",
        "signout": "Выйти",
    },
}

router = APIRouter(include_in_schema=False, route_class=ServiceRoute)
Token = Annotated[str, Form(max_length=MAX_TOKEN_LENGTH)]


def _reset_limit(limits: Limits) -> Limit:
    return limits.password_reset


def _texts(request: Request) -> tuple[str, dict[str, str]]:
    lang = pick_language(request.headers.get("accept-language"))
    return lang, TEXTS[lang]


def _message(
    request: Request, status: int, *, title: str, heading: str, message: str
) -> HTMLResponse:
    lang, t = _texts(request)
    return render(
        "message.html",
        status,
        lang=lang,
        title=title,
        heading=heading,
        message=message,
        link="/account",
        link_text=t["to_account"],
    )


def _bad_link(request: Request, text: str) -> HTMLResponse:
    """The friendly page of a mailed link that is unknown, used or expired."""
    _, t = _texts(request)
    title = t["bad_link_title"]
    return _message(request, 400, title=title, heading=title, message=t[text])


@router.get("/verify-email")
async def verify_page(request: Request, token: str = "") -> HTMLResponse:
    lang, t = _texts(request)
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return _bad_link(request, "bad_verify_text")
    return render("verify.html", 200, lang=lang, title=t["verify_title"], t=t, token=token)


@router.post("/verify-email")
async def verify(request: Request, token: Token = "") -> HTMLResponse:
    _, t = _texts(request)
    core: Core = request.app.state.core
    try:
        account = await core.auth.verify_email(token=token)
    except InvalidVerificationToken:
        return _bad_link(request, "bad_verify_text")
    return _message(
        request,
        200,
        title=t["verified_heading"],
        heading=t["verified_heading"],
        message=t["verified_text"].format(email=account.email or ""),
    )


@router.get("/reset-password")
async def reset_page(request: Request, token: str = "") -> HTMLResponse:
    lang, t = _texts(request)
    core: Core = request.app.state.core
    if not token or len(token) > MAX_TOKEN_LENGTH or not await core.auth.reset_token_is_live(token):
        return _bad_link(request, "bad_reset_text")
    return render("reset.html", 200, lang=lang, title=t["reset_title"], t=t, token=token)


@router.post("/reset-password")
@per_address(_reset_limit)
async def reset(
    request: Request,
    token: Token = "",
    new_password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)] = "",
    repeat_password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)] = "",
) -> HTMLResponse:
    lang, t = _texts(request)
    core: Core = request.app.state.core
    error = None
    if new_password != repeat_password:
        error = t["mismatch"]
    else:
        try:
            check_password(new_password)
        except InvalidInput:
            error = t["too_short"]
    if error is None:
        try:
            await core.auth.confirm_password_reset(token=token, new_password=new_password)
        except InvalidResetToken:
            return _bad_link(request, "bad_reset_text")
        return _message(
            request,
            200,
            title=t["reset_done_heading"],
            heading=t["reset_done_heading"],
            message=t["reset_done_text"],
        )
    return render(
        "reset.html", 422, lang=lang, title=t["reset_title"], t=t, token=token, error=error
    )


@router.get("/account")
async def account(request: Request) -> HTMLResponse:
    lang, t = _texts(request)
    core: Core = request.app.state.core
    return render(
        "account.html",
        200,
        lang=lang,
        title=t["account_title"],
        t=t,
        telegram=core.settings.telegram.bot_username is not None,
    )


def install(app: FastAPI) -> None:
    app.include_router(router)
