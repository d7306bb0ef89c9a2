# Everything runs from .venv, created on first use; see README.md.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

# What `make install` installs: the versions in a lock file (the ones the tests ran with),
# then the service itself. The Dockerfile passes the runtime lock and ".".
LOCK           ?= requirements-dev.lock
INSTALL_TARGET ?= .[dev]

TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/referral_test
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/15
TEST_MARIADB_URL  ?= mysql://root@127.0.0.1:3306/referral_test
TEST_MARIADB_REDIS_URL ?= redis://127.0.0.1:6379/12

.PHONY: install deps lock run bot worker migrate superuser test test-services test-mariadb test-e2e test-browser lint format bench docs clean

install: $(STAMP)

# The locked dependencies alone (the Dockerfile caches this layer before copying the code).
deps:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)

$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	$(MAKE) deps LOCK=$(LOCK)
	$(BIN)/pip install --quiet --no-deps $(if $(filter .,$(INSTALL_TARGET)),,-e) "$(INSTALL_TARGET)"
	$(BIN)/python -m bot.i18n_compile
	touch $(STAMP)

# Re-resolve pyproject.toml's ranges in fresh environments and pin what they installed.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet . && .lock-venv/bin/pip freeze --exclude-editable \
	  | grep -v '^referral-service' > requirements.lock
	.lock-venv/bin/pip install --quiet -c requirements.lock ".[dev]" && .lock-venv/bin/pip freeze \
	  --exclude-editable | grep -v '^referral-service' > requirements-dev.lock
	rm -rf .lock-venv

migrate: install
	$(BIN)/alembic upgrade head

run: migrate
	$(BIN)/python -m api --host $(HOST) --port $(PORT)

bot: migrate
	$(BIN)/python -m bot

# A dedicated job worker (webhooks, mail, enrichment): run as many as you like.
worker: migrate
	$(BIN)/python -m core.jobs

superuser: migrate
	@test -n "$(EMAIL)" || (echo "usage: make superuser EMAIL=someone@example.com [PASSWORD=...]" && exit 2)
	$(BIN)/python -m core.cli superuser "$(EMAIL)"

test: install
	env -u DATABASE_URL -u REDIS_URL TEST_BACKEND=sqlite $(BIN)/pytest -q -m "not browser"

# Only the tests that start real servers in subprocesses (also part of `make test`).
test-e2e: install
	env -u DATABASE_URL -u REDIS_URL TEST_BACKEND=sqlite $(BIN)/pytest -q -m "e2e and not browser"

# The landing page and the console in headless Chromium (Debian's package, driven by
# Playwright from the lock file; no browser download). Fails, never skips, without Chromium.
CHROMIUM ?= /usr/bin/chromium
test-browser: install
	@test -x "$(CHROMIUM)" || (command -v apt-get >/dev/null && apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || (echo "test-browser: Chromium is missing and could not be installed (apt-get install chromium)" && exit 1)
	env -u DATABASE_URL -u REDIS_URL TEST_BACKEND=sqlite CHROMIUM="$(CHROMIUM)" $(BIN)/pytest -q -m browser tests/browser

test-services: install
	env -u DATABASE_URL -u REDIS_URL TEST_BACKEND=services \
	  TEST_DATABASE_URL="$(TEST_DATABASE_URL)" TEST_REDIS_URL="$(TEST_REDIS_URL)" $(BIN)/pytest -q -m "not browser"

# The same suite on MariaDB or MySQL (the database dropped and re-created) and Redis.
test-mariadb: install
	env -u DATABASE_URL -u REDIS_URL TEST_BACKEND=mariadb \
	  TEST_MARIADB_URL="$(TEST_MARIADB_URL)" TEST_REDIS_URL="$(TEST_MARIADB_REDIS_URL)" $(BIN)/pytest -q -m "not browser"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir "$$(mktemp -d)"

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The documentation site (docs/, mkdocs-material) into site/: offline, and --strict, so a
# broken link or anchor fails (CI runs it with `make lint`).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.jobs
	$(BIN)/python -m bench.joins

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
