# jobhooks: `make run` serves it locally, `make test` runs the whole suite. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000

# Development credentials for `make run` only; production sets its own (see README).
DEV_BASIC_AUTH ?= mx:dev-password
DEV_API_TOKEN ?= dev-token

.PHONY: install run test lint fuzz bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	@echo "jobhooks on http://127.0.0.1:$(PORT)"
	@echo "  webhook Basic auth: $(DEV_BASIC_AUTH)   API bearer token: $(DEV_API_TOKEN)"
	@echo "  try: curl -u $(DEV_BASIC_AUTH) -H 'Content-Type: application/json' \\"
	@echo "        -d '{\"job\":{\"guid\":\"JOB-1\",\"status\":2}}' http://127.0.0.1:$(PORT)/webhooks/mx/jobs"
	$(BIN)/jobhooks db upgrade
	WEBHOOK_BASIC_AUTH="$${WEBHOOK_BASIC_AUTH:-$(DEV_BASIC_AUTH)}" \
	API_TOKENS="$${API_TOKENS:-$(DEV_API_TOKEN)}" \
	JOBHOOKS_ALLOW_UNAUTHENTICATED=1 \
	PATH="$(CURDIR)/$(BIN):$$PATH" \
	$(BIN)/honcho start --procfile Procfile --port $(PORT) web worker

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check service tests bench migrations
	$(BIN)/ruff format --check service tests bench migrations
	$(BIN)/mypy service

# The fuzzers of `make test`, twenty times bigger: hypothesis on the webhook body and
# schemathesis on every operation of /openapi.json. Set TEST_DATABASE_URL for PostgreSQL too.
fuzz: install
	FUZZ_SCALE=$${FUZZ_SCALE:-20} $(BIN)/pytest -q tests/webhooks/test_fuzz_ingest.py tests/api/test_schemathesis.py

# Benchmarks print figures relative to baselines measured in the same run (see bench/RESULTS.md).
# They need wrk and webhook from Debian: apt-get install -y wrk webhook.
bench: install
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/ingest_latency.py
	$(BIN)/python bench/compare.py
	$(BIN)/python bench/own_core.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache .hypothesis
