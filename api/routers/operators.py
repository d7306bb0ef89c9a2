"""Operators: API keys, the audit log, and webhook deliveries across endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from api.deps import CoreDep, CurrentOperator, Cursor
from api.errors import problem_responses
from api.schemas import (
    AdminDeliveryPage,
    AdminUser,
    AdminUserPage,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRead,
    AuditPage,
    JobPage,
    RewardPage,
    UserRead,
    json_of,
)

router = APIRouter(tags=["operators"])

DeliveryStatus = Literal["pending", "succeeded", "failed"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=problem_responses(401, 403, 422),
)
async def create_api_key(
    body: ApiKeyCreate, operator: CurrentOperator, core: CoreDep
) -> ApiKeyCreated:
    """Create an API key (superuser token only); the key is shown in this answer alone."""
    view, key = await core.operators.create_key(operator=operator, name=body.name)
    return ApiKeyCreated(id=view.id, name=view.name, key=key, created_at=view.created_at)


@router.get("/api-keys", response_model=ApiKeyList, responses=problem_responses(401, 403))
async def list_api_keys(operator: CurrentOperator, core: CoreDep) -> ApiKeyList:
    """The API keys (never the keys themselves)."""
    keys = await core.operators.keys(operator=operator)
    return ApiKeyList(items=[ApiKeyRead.model_validate(key, from_attributes=True) for key in keys])


@router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_api_key(key_id: int, operator: CurrentOperator, core: CoreDep) -> Response:
    """Delete an API key; it stops working at once."""
    await core.operators.delete_key(operator=operator, key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/admin/audit", response_model=AuditPage, responses=problem_responses(401, 403, 422))
async def audit_log(operator: CurrentOperator, page: Cursor, core: CoreDep) -> Response:
    """Every operator action, newest first."""
    found = await core.operators.audit(limit=page.limit, cursor=page.cursor)
    return json_of({"items": found.items, "next_cursor": found.next_cursor})


@router.get(
    "/admin/deliveries",
    response_model=AdminDeliveryPage,
    responses=problem_responses(401, 403, 422),
)
async def all_deliveries(
    operator: CurrentOperator,
    page: Cursor,
    core: CoreDep,
    status: Annotated[DeliveryStatus | None, Query(description="Only these.")] = None,
) -> Response:
    """Webhook deliveries of every endpoint, newest first (`status=failed` for the failures)."""
    found = await core.webhooks.deliveries(limit=page.limit, cursor=page.cursor, status=status)
    return json_of({"items": found.items, "next_cursor": found.next_cursor})


@router.get("/admin/jobs", response_model=JobPage, responses=problem_responses(401, 403, 422))
async def jobs(
    operator: CurrentOperator,
    page: Cursor,
    core: CoreDep,
    status: Annotated[JobStatus | None, Query(description="Only these.")] = None,
) -> Response:
    """Background jobs, newest first (`status=failed`: what gave up, with its last error)."""
    found = await core.jobs.listing(limit=page.limit, cursor=page.cursor, status=status)
    return json_of({"items": found.items, "next_cursor": found.next_cursor})


@router.post(
    "/admin/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def retry_delivery(delivery_id: int, operator: CurrentOperator, core: CoreDep) -> Response:
    """Try a failed delivery again, with the same `webhook-id`."""
    await core.webhooks.retry(operator=operator, delivery_id=delivery_id)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/admin/jobs/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def retry_job(job_id: int, operator: CurrentOperator, core: CoreDep) -> Response:
    """Queue a failed job again, its attempts from zero (webhook deliveries: retry the
    delivery instead, `409 job_not_retryable`)."""
    await core.retry_job(operator=operator, job_id=job_id)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.get(
    "/admin/users", response_model=AdminUserPage, responses=problem_responses(401, 403, 422)
)
async def users(
    operator: CurrentOperator,
    page: Cursor,
    core: CoreDep,
    query: Annotated[
        str | None, Query(max_length=320, description="An id, or the start of an email.")
    ] = None,
    id: Annotated[list[int] | None, Query(max_length=100, description="These ids.")] = None,
) -> AdminUserPage:
    """Accounts, newest first: by id or the start of the email (`query`), or these `id`s."""
    found, next_cursor = await core.users.search(
        query=query, ids=id or (), limit=page.limit, cursor=page.cursor
    )
    return AdminUserPage(
        items=[AdminUser(**UserRead.of(account).model_dump()) for account in found],
        next_cursor=next_cursor,
    )


@router.get(
    "/admin/users/{user_id}/rewards",
    response_model=RewardPage,
    responses=problem_responses(401, 403, 422),
)
async def user_rewards(
    user_id: int, operator: CurrentOperator, page: Cursor, core: CoreDep
) -> Response:
    """A user's balance and rewards, newest first."""
    found = await core.rewards.page(user_id=user_id, limit=page.limit, cursor=page.cursor)
    return json_of(
        {
            "balance": found.balance,
            "pending": found.pending,
            "items": found.items,
            "next_cursor": found.next_cursor,
        }
    )
