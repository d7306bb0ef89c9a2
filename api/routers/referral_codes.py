from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from api.deps import CoreDep, CurrentUser
from api.errors import problem_responses
from api.ratelimit import LookupCore
from api.routing import ServiceRoute, cached_read, seen_by_cache
from api.schemas import ReferralCodeCreate, ReferralCodeRead
from core.campaigns.service import Campaign
from core.container import Core
from core.referrals.errors import NoActiveCode
from core.referrals.models import ReferralCode
from core.referrals.schemas import PublicCode, PublicCodeWithReferrer

router = APIRouter(prefix="/referral-codes", tags=["referral codes"], route_class=ServiceRoute)


CampaignParam = Annotated[
    str | None, Query(max_length=40, description="The campaign's key; the default one if omitted.")
]


def _read(code: ReferralCode, campaign: Campaign, core: Core) -> ReferralCodeRead:
    return ReferralCodeRead(
        code=code.code,
        created_at=code.created_at,
        expires_at=code.expires_at,
        max_uses=code.max_uses,
        uses=code.uses,
        telegram_link=core.telegram.deep_link(code.code),
        campaign=campaign.key,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ReferralCodeRead,
    responses=problem_responses(401, 404, 409, 422),
)
async def create_code(
    body: ReferralCodeCreate, user: CurrentUser, core: CoreDep
) -> ReferralCodeRead:
    """Create your referral code in a campaign (one active code per campaign at a time)."""
    campaign = await core.campaigns.by_key(body.campaign)
    code = await core.referrals.create_code(
        owner=user,
        campaign=campaign,
        expires_at=body.expires_at,
        code=body.code,
        max_uses=body.max_uses,
    )
    return _read(code, campaign, core)


@router.get("/me", response_model=ReferralCodeRead, responses=problem_responses(401, 404, 422))
async def my_code(
    user: CurrentUser, core: CoreDep, campaign: CampaignParam = None
) -> ReferralCodeRead:
    """Your active referral code in the campaign."""
    found = await core.campaigns.by_key(campaign)
    code = await core.referrals.active_code(owner_id=user.id, campaign=found)
    if code is None:
        raise NoActiveCode()
    return _read(code, found, core)


@router.delete(
    "/me", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 404, 422)
)
async def delete_my_code(
    user: CurrentUser, core: CoreDep, campaign: CampaignParam = None
) -> Response:
    """Delete your active code in the campaign; it stops working at once."""
    found = await core.campaigns.by_key(campaign)
    await core.referrals.delete_active_code(owner=user, campaign=found)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("", response_model=PublicCode, responses=problem_responses(404, 422, 429))
@cached_read(
    lambda core, request: core.views.email_cache_key(request.query_params.get("email", "")),
    limit=lambda limits: limits.lookup,
)
async def code_by_email(
    email: Annotated[str, Query(min_length=1, max_length=320, description="The referrer's email.")],
    core: LookupCore,
    request: Request,
) -> Response:
    """The active code of the user with this email."""
    # Served as cached JSON bytes: a hit does no validation, serialisation or SQL.
    body = await core.views.by_email(email, seen=seen_by_cache(request))
    return Response(body, media_type="application/json")


@router.get("/{code}", response_model=PublicCodeWithReferrer, responses=problem_responses(404, 429))
@cached_read(
    lambda core, request: core.views.code_cache_key(request.path_params["code"]),
    limit=lambda limits: limits.lookup,
)
async def code_details(code: str, core: LookupCore, request: Request) -> Response:
    """An active code and who it belongs to."""
    body = await core.views.by_code(code, seen=seen_by_cache(request))
    return Response(body, media_type="application/json")
