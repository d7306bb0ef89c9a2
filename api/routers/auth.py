from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from api.clients import ClientAddress
from api.deps import CoreDep
from api.errors import problem_responses
from api.ratelimit import LoginLimit
from api.routing import ServiceRoute, per_address
from api.schemas import (
    EmailVerification,
    LogoutRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    Token,
    UserCreate,
    UserRead,
)
from core.auth.service import TokenPair
from core.users.models import Account

router = APIRouter(prefix="/auth", tags=["auth"], route_class=ServiceRoute)


# RFC 6749 §5.1: a response carrying tokens must not be stored by any cache.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _token(pair: TokenPair, response: Response) -> Token:
    response.headers.update(_NO_STORE)
    return Token(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=problem_responses(400, 409, 422, 429),
)
@per_address(lambda limits: limits.registration)
async def register(body: UserCreate, core: CoreDep, address: ClientAddress) -> UserRead:
    """Create an account, optionally with a referral code."""
    user = await core.accounts.sign_up(
        email=body.email,
        password=body.password,
        full_name=body.full_name,
        referral_code=body.referral_code,
        client_address=address,
    )
    return UserRead.of(Account.of(user))


@router.post("/token", response_model=Token, responses=problem_responses(401, 403, 422, 429))
@per_address(lambda limits: limits.login)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    core: CoreDep,
    attempt: LoginLimit,
    address: ClientAddress,
    response: Response,
) -> Token:
    """OAuth2 password grant: trade email (`username`) and password for tokens."""
    tokens = await core.accounts.log_in(
        email=form.username, password=form.password, client_address=address
    )
    await attempt.succeeded()
    return _token(tokens, response)


@router.post("/refresh", response_model=Token, responses=problem_responses(401, 403, 422))
async def refresh(body: RefreshRequest, core: CoreDep, response: Response) -> Token:
    """Trade a refresh token for a new pair; the old refresh token stops working."""
    return _token(await core.auth.refresh(refresh_token=body.refresh_token), response)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(422))
async def logout(body: LogoutRequest, core: CoreDep) -> Response:
    """End this refresh token's family (an unknown token is answered the same)."""
    await core.auth.logout(refresh_token=body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(422, 429),
)
@per_address(lambda limits: limits.password_reset)
async def password_reset(body: PasswordResetRequest, core: CoreDep) -> Response:
    """Mail a one-time reset link (30 minutes); the same answer whether the email is known."""
    await core.auth.request_password_reset(email=body.email)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 422, 429),
)
@per_address(lambda limits: limits.password_reset)
async def password_reset_confirm(body: PasswordResetConfirm, core: CoreDep) -> Response:
    """Set a new password with the mailed token; every token of the account ends."""
    await core.auth.confirm_password_reset(token=body.token, new_password=body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/verify-email", response_model=UserRead, responses=problem_responses(400, 422))
async def verify_email(body: EmailVerification, core: CoreDep) -> UserRead:
    """Confirm the email address with the token mailed at sign-up."""
    return UserRead.of(await core.auth.verify_email(token=body.token))
