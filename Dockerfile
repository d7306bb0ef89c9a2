# One image for the API, the bot and the migration step, installed by `make install` from the
# runtime lock file: the same path, and the same versions, a developer's machine uses.
FROM python:3.11-slim AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first: this layer is rebuilt only when a lock file or the Makefile changes.
COPY Makefile requirements.lock requirements-dev.lock ./
RUN make deps PYTHON=python3 LOCK=requirements.lock
COPY pyproject.toml README.md alembic.ini ./
COPY core ./core
COPY api ./api
COPY bot ./bot
COPY migrations ./migrations
RUN make install PYTHON=python3 LOCK=requirements.lock INSTALL_TARGET=.


FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/app/.venv/bin:$PATH" \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus

WORKDIR /app
RUN useradd --create-home --uid 10001 app && mkdir -p /app/data && chown app /app/data
COPY --from=build /app /app

USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health/live\", timeout=3)"]
# python -m api checks the settings, then uvicorn starts WEB_CONCURRENCY workers; their
# metrics meet in an emptied shared directory.
CMD ["sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec python -m api --host \"$HOST\" --port \"$PORT\""]
