"""Campaigns: the programs an operator runs, their rules and their funnel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from api.charts import funnel_svg
from api.deps import CoreDep, CurrentOperator
from api.errors import problem_responses
from api.schemas import CampaignCreate, CampaignList, CampaignRead, CampaignUpdate, Funnel, json_of
from core.campaigns.errors import CampaignNotFound
from core.campaigns.service import KEY_RE
from core.container import Core
from core.infra.errors import InvalidInput

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

Days = Annotated[int, Query(ge=1, le=365, description="UTC days, today included.")]


async def _funnel(core: Core, key: str, days: int) -> dict[str, Any]:
    """The funnel of the campaign of this key (one read, the campaign's lookup included)."""
    funnel = await core.stats.funnel(key=key, days=days) if KEY_RE.fullmatch(key) else None
    if funnel is None:
        raise CampaignNotFound()
    return funnel


async def _shown(core: Core, campaigns: list[Any]) -> list[dict[str, Any]]:
    """Campaigns as the API shows them: a campaign that names a chat with that chat's
    readiness, as the bot last checked it (read here: nothing on this path asks Telegram)."""
    chats = await core.invites.chat_statuses(
        [c.rules.telegram.chat_id for c in campaigns if c.rules.telegram]
    )
    shown = []
    for campaign in campaigns:
        body = campaign.as_json()
        telegram = campaign.rules.telegram
        body["telegram_chat"] = chats[telegram.chat_id].as_json() if telegram else None
        shown.append(body)
    return shown


async def _answer(core: Core, campaign: Any, status_code: int = status.HTTP_200_OK) -> Response:
    response = json_of((await _shown(core, [campaign]))[0])
    response.status_code = status_code
    return response


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignRead,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_campaign(
    body: CampaignCreate, operator: CurrentOperator, core: CoreDep
) -> Response:
    """Start a campaign: a referral program with its own rules and codes."""
    campaign = await core.campaigns.create(
        operator=operator,
        key=body.key,
        name=body.name,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        rules=body.rules,
    )
    return await _answer(core, campaign, status.HTTP_201_CREATED)


@router.get("", response_model=CampaignList, responses=problem_responses(401, 403))
async def list_campaigns(operator: CurrentOperator, core: CoreDep) -> Response:
    """Every campaign, the default one first."""
    return json_of({"items": await _shown(core, await core.campaigns.all())})


@router.get("/{key}", response_model=CampaignRead, responses=problem_responses(401, 403, 404))
async def get_campaign(key: str, operator: CurrentOperator, core: CoreDep) -> Response:
    return await _answer(core, await core.campaigns.by_key(key))


@router.patch(
    "/{key}", response_model=CampaignRead, responses=problem_responses(401, 403, 404, 409, 422)
)
async def update_campaign(
    key: str, body: CampaignUpdate, operator: CurrentOperator, core: CoreDep
) -> Response:
    """Change what is given (`rules`: the whole set). Rules apply to what happens after the
    change; rewards granted before stay as they are."""
    given = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("name", "status", "rules"):
        if name in given and given[name] is None:  # only the dates are cleared by null
            raise InvalidInput(f"{name} may not be null.", field=name)
    campaign = await core.campaigns.update(operator=operator, key=key, **given)
    return await _answer(core, campaign)


@router.get("/{key}/funnel", response_model=Funnel, responses=problem_responses(401, 403, 404, 422))
async def campaign_funnel(
    key: str, operator: CurrentOperator, core: CoreDep, days: Days = 30
) -> Response:
    """Link opens, sign-ups, qualified and rewarded referrals, points granted and revoked,
    the k-factor and the median hours to qualify, over the last `days` UTC days."""
    return json_of(await _funnel(core, key, days))


@router.get(
    "/{key}/funnel.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, **problem_responses(401, 403, 404, 422)},
)
async def campaign_funnel_chart(
    key: str, operator: CurrentOperator, core: CoreDep, days: Days = 30
) -> Response:
    """The funnel as an SVG bar chart (the console shows it)."""
    funnel = await _funnel(core, key, days)
    return Response(
        funnel_svg(funnel), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )
