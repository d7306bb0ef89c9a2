from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.deps import CoreDep, CurrentUser, Pagination, Viewer
from api.errors import problem_responses
from api.schemas import (
    REFERRAL_PAGE_JSON,
    AccountErasure,
    PasswordChange,
    ProfileUpdate,
    ReferralPage,
    TelegramLink,
    UserRead,
    json_answer,
    json_of,
)
from core.auth.errors import NotAllowed
from core.operators.service import Operator, may_read_referrals

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserRead, responses=problem_responses(401))
async def me(user: CurrentUser) -> Response:
    """The signed-in user."""
    return json_answer(UserRead.of(user))


@router.patch("/me", response_model=UserRead, responses=problem_responses(401, 422))
async def update_me(body: ProfileUpdate, user: CurrentUser, core: CoreDep) -> UserRead:
    """Change your name; the public views of your code show it at once."""
    return UserRead.of(await core.accounts.rename(user=user, full_name=body.full_name))


@router.delete(
    "/me", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403, 422)
)
async def erase_me(body: AccountErasure, user: CurrentUser, core: CoreDep) -> Response:
    """Erase your account (your password confirms it); referrals stay, anonymous."""
    await core.auth.check_password(user=user, password=body.password)
    await core.accounts.erase(user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 422),
)
async def change_password(body: PasswordChange, user: CurrentUser, core: CoreDep) -> Response:
    """Change your password; every token of yours, access and refresh, stops working."""
    await core.auth.change_password(
        user=user, current_password=body.current_password, new_password=body.new_password
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{user_id}/referrals",
    response_model=ReferralPage,
    responses=problem_responses(401, 403, 404, 422),
)
async def referrals(user_id: int, viewer: Viewer, page: Pagination, core: CoreDep) -> Response:
    """People who joined with this user's codes, newest first (the user or an operator)."""
    if not may_read_referrals(viewer, user_id):
        raise NotAllowed()
    if isinstance(viewer, Operator) or viewer.id != user_id:
        await core.users.get(user_id)
    found = await core.referrals.referrals(
        referrer_id=user_id, limit=page.limit, offset=page.offset, cursor=page.cursor
    )
    return json_of(
        {
            "items": found.items,  # core's rows: the fields of ReferralItem, already typed
            "total": found.total,
            "limit": page.limit,
            "offset": page.offset,
            "next_cursor": found.next_cursor,
        },
        REFERRAL_PAGE_JSON,
    )


@router.post(
    "/me/telegram-link",
    status_code=status.HTTP_201_CREATED,
    response_model=TelegramLink,
    responses=problem_responses(401, 409, 503),
)
async def telegram_link(user: CurrentUser, core: CoreDep) -> TelegramLink:
    """A one-time Telegram link (15 minutes) that attaches the chat opening it to you."""
    invite = await core.telegram.create_link(user=user)
    return TelegramLink(url=invite.url, expires_at=invite.expires_at)
