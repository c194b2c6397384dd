# zhuisu — the two set-up commands of the README, and a few conveniences.
# Everything installs itself into ./.venv from pyproject.toml.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test demo bench screens clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

## install, then serve the API on the embedded SQLite store with the small demo county loaded
run: $(STAMP)
	$(BIN)/zhuisu serve

## install, then run the whole test suite (PostgreSQL too when ZHUISU_TEST_POSTGRES_URL is set)
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	$(BIN)/zhuisu demo --size county

## render every console screen of the demo to docs/screens/*.png (Debian's chromium)
screens: $(STAMP)
	$(BIN)/python docs/make_screens.py

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var *.egg-info
