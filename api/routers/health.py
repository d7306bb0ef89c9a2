from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from api.deps import CoreDep
from api.schemas import JobBacklog, Liveness, Readiness
from core.infra import metrics

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Liveness)
async def live() -> Liveness:
    """The process is up."""
    return Liveness()


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(core: CoreDep) -> JSONResponse:
    """The database answers (else 503); a cache outage only degrades. `jobs` says how long
    the earliest due job has waited: it grows when no worker runs (`make worker`)."""
    oldest = await core.oldest_due_job()
    database_ok = oldest is not None
    body = Readiness(
        status="ok" if database_ok else "unavailable",
        database="ok" if database_ok else "unavailable",
        cache="ok" if await core.cache.status() == "ok" else "degraded",
        jobs=JobBacklog(oldest_due_seconds=round(oldest, 1)) if oldest is not None else None,
    )
    return JSONResponse(body.model_dump(), status_code=200 if database_ok else 503)


metrics_router = APIRouter(tags=["health"])


@metrics_router.get("/metrics", response_class=Response, include_in_schema=False)
async def prometheus(core: CoreDep) -> Response:
    """Prometheus metrics of this process (of every worker, with several), and the age of
    the earliest due job, read from the database at each scrape."""
    body, content_type = metrics.exposition(oldest_due_job=await core.oldest_due_job())
    return Response(body, media_type=content_type)
