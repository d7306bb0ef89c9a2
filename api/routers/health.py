from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from api.deps import CoreDep
from api.schemas import Liveness, Readiness
from core import metrics

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Liveness)
async def live() -> Liveness:
    """The process is up."""
    return Liveness()


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(core: CoreDep) -> JSONResponse:
    """The database answers (else 503); a cache outage only degrades."""
    database_ok = await core.database_ok()
    body = Readiness(
        status="ok" if database_ok else "unavailable",
        database="ok" if database_ok else "unavailable",
        cache="ok" if await core.cache.status() == "ok" else "degraded",
    )
    return JSONResponse(body.model_dump(), status_code=200 if database_ok else 503)


metrics_router = APIRouter(tags=["health"])


@metrics_router.get("/metrics", response_class=Response, include_in_schema=False)
async def prometheus() -> Response:
    """Prometheus metrics of this process."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
