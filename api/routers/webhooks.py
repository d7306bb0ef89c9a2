"""Webhook endpoints (Standard Webhooks): operators register where events go."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Response, status

from api.deps import CoreDep, CurrentOperator, Cursor
from api.errors import problem_responses
from api.schemas import (
    DeliveryPage,
    DeliveryRead,
    RetriedDeliveries,
    WebhookCreate,
    WebhookList,
    WebhookRead,
    WebhookUpdate,
    json_of,
)
from core.webhooks.service import Endpoint

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _read(endpoint: Endpoint) -> WebhookRead:
    return WebhookRead.model_validate(endpoint, from_attributes=True)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookRead,
    responses=problem_responses(401, 403, 422),
)
async def create_webhook(
    body: WebhookCreate, operator: CurrentOperator, core: CoreDep
) -> WebhookRead:
    """Register an endpoint for these events (`["*"]`: all); its signing secret is in the answer."""
    endpoint = await core.webhooks.create(
        operator=operator, url=body.url, events=body.events, description=body.description
    )
    return _read(endpoint)


@router.get("", response_model=WebhookList, responses=problem_responses(401, 403))
async def list_webhooks(operator: CurrentOperator, core: CoreDep) -> WebhookList:
    """Every endpoint, with its secret."""
    return WebhookList(items=[_read(endpoint) for endpoint in await core.webhooks.endpoints()])


@router.get(
    "/{webhook_id}", response_model=WebhookRead, responses=problem_responses(401, 403, 404, 422)
)
async def get_webhook(webhook_id: int, operator: CurrentOperator, core: CoreDep) -> WebhookRead:
    """One endpoint, with its secret."""
    return _read(await core.webhooks.endpoint(webhook_id))


@router.patch(
    "/{webhook_id}", response_model=WebhookRead, responses=problem_responses(401, 403, 404, 422)
)
async def update_webhook(
    webhook_id: int, body: WebhookUpdate, operator: CurrentOperator, core: CoreDep
) -> WebhookRead:
    """Change the URL, the events, the description, or switch the endpoint off and on."""
    changes = body.model_dump(exclude_unset=True)
    for field in ("url", "events", "enabled"):
        if field in changes and changes[field] is None:
            del changes[field]  # only the description can be removed
    endpoint = await core.webhooks.update(
        operator=operator, endpoint_id=webhook_id, changes=changes
    )
    return _read(endpoint)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_webhook(webhook_id: int, operator: CurrentOperator, core: CoreDep) -> Response:
    """Remove an endpoint and its deliveries."""
    await core.webhooks.delete(operator=operator, endpoint_id=webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def rotate_secret(webhook_id: int, operator: CurrentOperator, core: CoreDep) -> WebhookRead:
    """A new secret; the old one keeps signing for 24 hours (a second `v1,` signature)."""
    return _read(await core.webhooks.rotate_secret(operator=operator, endpoint_id=webhook_id))


@router.post(
    "/{webhook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def test_webhook(webhook_id: int, operator: CurrentOperator, core: CoreDep) -> DeliveryRead:
    """Queue a `ping` event to this endpoint; the answer is its delivery, to follow."""
    delivery = await core.webhooks.test(operator=operator, endpoint_id=webhook_id)
    return DeliveryRead.model_validate(delivery, from_attributes=True)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    responses=problem_responses(401, 403, 404, 422),
)
async def deliveries(
    webhook_id: int, operator: CurrentOperator, page: Cursor, core: CoreDep
) -> Response:
    """This endpoint's deliveries, newest first, with their attempts, status and last error."""
    found = await core.webhooks.deliveries(
        limit=page.limit, cursor=page.cursor, endpoint_id=webhook_id
    )
    items = [
        {key: value for key, value in asdict(item).items() if key != "endpoint_id"}
        for item in found.items
    ]
    return json_of({"items": items, "next_cursor": found.next_cursor})


@router.post(
    "/{webhook_id}/deliveries/retry-failed",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetriedDeliveries,
    responses=problem_responses(401, 403, 404, 422),
)
async def retry_failed_deliveries(
    webhook_id: int, operator: CurrentOperator, core: CoreDep
) -> RetriedDeliveries:
    """Try every failed delivery of this endpoint again (after fixing or re-enabling it)."""
    retried = await core.webhooks.retry_failed(operator=operator, endpoint_id=webhook_id)
    return RetriedDeliveries(retried=retried)
