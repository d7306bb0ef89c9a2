"""The referral program: conversions, rewards, review, blocks, stats and the leaderboard."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from api.charts import daily_svg
from api.deps import CoreDep, CurrentOperator, CurrentUser, Cursor
from api.errors import problem_responses
from api.schemas import (
    AdminReferral,
    AdminReferralPage,
    ConversionCreate,
    ConversionRead,
    Leaderboard,
    ProgramOverview,
    ReferralStats,
    RefundCreate,
    RefundRead,
    RewardAdjustment,
    RewardPage,
    RewardRead,
    UserRead,
    json_of,
)

router = APIRouter(tags=["program"])

ReviewStatus = Literal["approved", "pending_review", "rejected"]
Days = Annotated[int, Query(ge=1, le=365, description="UTC days, today included.")]


@router.post(
    "/conversions",
    status_code=status.HTTP_201_CREATED,
    response_model=ConversionRead,
    responses={
        200: {"description": "Sent before: the first one's body", "model": ConversionRead},
        **problem_responses(401, 403, 404, 409, 422),
    },
)
async def report_conversion(
    body: ConversionCreate, operator: CurrentOperator, core: CoreDep
) -> Response:
    """Report what a user did; the first conversion of a referred user qualifies the referral.
    The same `external_id` again (even at the same moment) answers the first, and nothing
    happens twice; with another user, event, amount or currency it is `409
    external_id_conflict`."""
    conversion, created = await core.conversions.convert(
        user_id=body.user_id,
        email=body.email,
        event=body.event,
        external_id=body.external_id,
        amount=body.amount,
        currency=body.currency,
    )
    return Response(
        ConversionRead.model_validate(conversion, from_attributes=True).model_dump_json(),
        media_type="application/json",
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


@router.post(
    "/conversions/{external_id}/refund",
    response_model=RefundRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def refund_conversion(
    external_id: str, operator: CurrentOperator, core: CoreDep, body: RefundCreate | None = None
) -> Response:
    """A purchase refunded: the rewards it paid that are still in hold are revoked; those
    already available are kept (the hold is the refund window). When nothing of the
    qualification is left the referral may qualify again. Refunding again answers the same."""
    refund = await core.conversions.refund(
        external_id=external_id, reason=body.reason if body else None
    )
    return Response(
        RefundRead.model_validate(refund, from_attributes=True).model_dump_json(),
        media_type="application/json",
    )


@router.get("/users/me/rewards", response_model=RewardPage, responses=problem_responses(401, 422))
async def my_rewards(user: CurrentUser, page: Cursor, core: CoreDep) -> Response:
    """Your available balance (what may be spent), the points in hold, and your rewards,
    newest first."""
    found = await core.rewards.page(user_id=user.id, limit=page.limit, cursor=page.cursor)
    return json_of(
        {
            "balance": found.balance,
            "pending": found.pending,
            "items": found.items,
            "next_cursor": found.next_cursor,
        }
    )


@router.get(
    "/users/me/referral-stats", response_model=ReferralStats, responses=problem_responses(401)
)
async def my_stats(user: CurrentUser, core: CoreDep) -> Response:
    """Your referrals by status, qualified ones, balance, link opens and the last 30 days."""
    return json_of(await core.stats.referrer_stats(user_id=user.id))


@router.get("/leaderboard", response_model=Leaderboard, responses=problem_responses(422))
async def leaderboard(
    core: CoreDep,
    days: Days = 30,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Response:
    """The referrers with the most approved referrals in the window (names only)."""
    items = await core.stats.leaderboard(days=days, limit=limit)
    return json_of({"days": days, "items": items})


@router.post(
    "/admin/users/{user_id}/rewards",
    status_code=status.HTTP_201_CREATED,
    response_model=RewardRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def adjust_rewards(
    user_id: int, body: RewardAdjustment, operator: CurrentOperator, core: CoreDep
) -> Response:
    """A redemption, refund or correction (the balance never goes below zero)."""
    reward = await core.rewards.adjust(
        operator=operator, user_id=user_id, points=body.points, note=body.note
    )
    response = json_of(reward)
    response.status_code = status.HTTP_201_CREATED
    return response


@router.get(
    "/admin/referrals",
    response_model=AdminReferralPage,
    responses=problem_responses(401, 403, 404, 422),
)
async def admin_referrals(
    operator: CurrentOperator,
    page: Cursor,
    core: CoreDep,
    status: Annotated[ReviewStatus | None, Query(description="Only these.")] = None,
    campaign: Annotated[
        str | None, Query(max_length=40, description="Only this campaign's (its key).")
    ] = None,
) -> Response:
    """Referrals, newest first (`status=pending_review`: the review queue, with reasons)."""
    found = await core.review.referral_list(
        status=status,
        limit=page.limit,
        cursor=page.cursor,
        campaign=await core.campaigns.by_key(campaign) if campaign is not None else None,
    )
    return json_of({"items": found.items, "next_cursor": found.next_cursor})


@router.post(
    "/admin/referrals/{referral_id}/approve",
    response_model=AdminReferral,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def approve(referral_id: int, operator: CurrentOperator, core: CoreDep) -> Response:
    """Approve a held referral; its held rewards are granted."""
    return json_of(
        await core.review.decide(operator=operator, referral_id=referral_id, approve=True)
    )


@router.post(
    "/admin/referrals/{referral_id}/reject",
    response_model=AdminReferral,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def reject(referral_id: int, operator: CurrentOperator, core: CoreDep) -> Response:
    """Reject a held referral; it never earns rewards."""
    return json_of(
        await core.review.decide(operator=operator, referral_id=referral_id, approve=False)
    )


@router.post(
    "/admin/users/{user_id}/block",
    response_model=UserRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def block(user_id: int, operator: CurrentOperator, core: CoreDep) -> UserRead:
    """Block a user: tokens, sign-in and their code stop working at once. An operator cannot
    be blocked (`409 cannot_block_operator`): demoting is a command-line act."""
    account = await core.review.set_blocked(operator=operator, user_id=user_id, blocked=True)
    return UserRead.of(account)


@router.post(
    "/admin/users/{user_id}/unblock",
    response_model=UserRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def unblock(user_id: int, operator: CurrentOperator, core: CoreDep) -> UserRead:
    """Unblock a user: everything works again."""
    account = await core.review.set_blocked(operator=operator, user_id=user_id, blocked=False)
    return UserRead.of(account)


@router.get(
    "/admin/stats/chart.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, **problem_responses(401, 403, 422)},
)
async def overview_chart(operator: CurrentOperator, core: CoreDep, days: Days = 30) -> Response:
    """The overview's days as an SVG bar chart (sign-ups, referred, qualified)."""
    overview = await core.stats.overview(days=days)
    return Response(
        daily_svg(overview["days"]),
        media_type="image/svg+xml",
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/admin/stats", response_model=ProgramOverview, responses=problem_responses(401, 403, 422)
)
async def overview(operator: CurrentOperator, core: CoreDep, days: Days = 30) -> Response:
    """Sign-ups, referred and qualified per day (oldest first, today last), and the totals."""
    return json_of(await core.stats.overview(days=days))
