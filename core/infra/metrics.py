"""Prometheus metrics of every front and of the core's moving parts, in one registry.

Served by the API at `/metrics`. Labels are bounded sets (route templates, not paths; limit
names; outcome words), so the number of series never grows with traffic.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import (
    gc_collector as _gc,
)
from prometheus_client import (
    platform_collector as _platform,
)
from prometheus_client import (
    process_collector as _process,
)
from prometheus_client.core import GaugeMetricFamily

# Several worker processes (uvicorn --workers / WEB_CONCURRENCY) share their counts through
# files in this directory (prometheus_client's multiprocess mode, chosen when the variable is
# set before this module is imported); /metrics then sums every worker's. It must be an empty
# directory when the workers start (the container's entrypoint empties it).
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
if MULTIPROCESS_DIR is not None:
    # The API's entrypoint empties it; a worker or bot container of the same image that
    # serves no /metrics still needs it to exist.
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)

registry = CollectorRegistry(auto_describe=True)
if MULTIPROCESS_DIR is None:
    # Per-process facts; in multiprocess mode they would describe only the scraped worker.
    _process.ProcessCollector(registry=registry)
    _platform.PlatformCollector(registry=registry)
    _gc.GCCollector(registry=registry)

http_requests = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
    registry=registry,
)
http_latency = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ("method", "route"),
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=registry,
)
cache_reads = Counter(
    "cache_reads_total",
    "Reads of the referral-code cache: hit, miss, or skipped (Redis down or not trusted).",
    ("result",),
    registry=registry,
)
rate_limit_refusals = Counter(
    "rate_limit_refusals_total",
    "Requests refused by a rate limit, by limit.",
    ("limit",),
    registry=registry,
)
outside_failures = Counter(
    "outside_service_failures_total",
    "Failed calls to outside services (Redis, Hunter, Clearbit, Telegram, SMTP), by kind.",
    ("service", "kind"),
    registry=registry,
)
jobs = Counter(
    "jobs_total",
    "Job attempts by kind and outcome (succeeded, retried, failed, released at a stop).",
    ("kind", "outcome"),
    registry=registry,
)
bot_updates = Counter(
    "bot_updates_total",
    "Telegram updates the bot handled, by outcome (handled, throttled, failed).",
    ("outcome",),
    registry=registry,
)


class _Snapshot:
    """Values read at the scrape itself (from the database), not kept by any process."""

    def __init__(self, oldest_due_job: float | None) -> None:
        self.oldest_due_job = oldest_due_job

    def collect(self) -> list[GaugeMetricFamily]:
        if self.oldest_due_job is None:
            return []
        return [
            GaugeMetricFamily(
                "jobs_oldest_due_seconds",
                "How long the earliest due job has waited (0: none); grows without a worker.",
                value=self.oldest_due_job,
            )
        ]


def exposition(*, oldest_due_job: float | None = None) -> tuple[bytes, str]:
    """Every metric in Prometheus's text format (all workers' in multiprocess mode), with
    the scrape's own readings, and its content type."""
    combined = CollectorRegistry()
    if MULTIPROCESS_DIR is None:
        combined.register(registry)  # type: ignore[arg-type]  # a registry collects too
    else:
        multiprocess.MultiProcessCollector(combined, path=MULTIPROCESS_DIR)
    combined.register(_Snapshot(oldest_due_job))  # type: ignore[arg-type]
    return generate_latest(combined), CONTENT_TYPE_LATEST
