# One image for the API, the bot and the migration step; installed by `make install`,
# the same path a developer uses.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md Makefile alembic.ini ./
COPY core ./core
COPY api ./api
COPY bot ./bot
COPY migrations ./migrations
RUN make install PYTHON=python3 INSTALL_TARGET=. \
    && useradd --create-home --uid 10001 app \
    && mkdir -p /app/data && chown app /app/data

USER app
ENV PATH="/app/.venv/bin:$PATH" \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000
CMD ["sh", "-c", "exec uvicorn api.main:app --host \"$HOST\" --port \"$PORT\" --no-access-log --no-proxy-headers"]
