# make demo  : environment, example database, worker + server, one ETL run
# make test  : the whole suite (unit, integration on the embedded broker and, when
#              Redis answers, on Redis; browser tests when Chromium is installed)
# Override the interpreter with PYTHON=..., the Django line with DJANGO='Django>=5.2,<6'.

PYTHON ?= $(shell bin/find-python)
VENV ?= .venv
DJANGO ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit integration lint bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "No Python >= 3.11 found (set PYTHON=)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,example]" $(if $(DJANGO),"$(DJANGO)")
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python example/demo.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m tests.run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m bench.makespan
	$(BIN)/python -m bench.broker_bytes

clean:
	rm -rf $(VENV) example/var
