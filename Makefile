# One task runner for people and CI. `make lab` and `make test` set up .venv on first use (Python 3.10+),
# then reuse it: the setup reruns only when requirements.txt or pyproject.toml change.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
READY := $(VENV)/.ready
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# Extra arguments for JupyterLab, e.g. make lab LAB_ARGS="--no-browser --port 8899"
LAB_ARGS ?=
# JupyterLab refuses to run as root unless told (containers and CI machines often are root).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
# Extra arguments for pytest, e.g. make test PYTEST_ARGS="-k linear"
PYTEST_ARGS ?=
NOTEBOOKS ?=
# make grade ASSIGNMENT=01_linear GRADE_ARGS="--jobs 4 --collect"   (or GRADE_ARGS="--scheduler tcp://HOST:8786")
ASSIGNMENT ?=
GRADE_ARGS ?=
# make report ASSIGNMENT=01_linear REPORT_ARGS="--similarity-threshold 0.8"
REPORT_ARGS ?=
# make export ASSIGNMENT=01_linear EXPORT_ARGS="--canvas ~/Downloads/gradebook.csv --match login --csv points.csv"
EXPORT_ARGS ?=
# make grade-worker SCHEDULER=tcp://HOST:8786 [WORKERS=4] [WORKER_ARGS="--memory-limit 8GB"]
SCHEDULER ?=
WORKERS ?= $(JOBS)
WORKER_ARGS ?=

export PATH := $(BIN):$(PATH)

.PHONY: help setup lab test browser-deps release stamp images bench bench-grading grade grade-worker report export lint format clean-env

help:
	@echo "make lab       set up .venv if needed, then open JupyterLab on notebooks/"
	@echo "make test      set up .venv if needed, then run the whole test suite"
	@echo "make browser-deps  install Chromium for the browser tests (Debian/Ubuntu packages, needs root or sudo)"
	@echo "make release   regenerate notebooks/ from solutions/ (nbgrader generate_assignment)"
	@echo "make stamp     write the Colab badge and setup cell into every solutions notebook"
	@echo "make images    redraw images/ from the solutions notebooks and embed the previews"
	@echo "make bench     print each notebook's execution time (median of 3 runs)"
	@echo "make grade ASSIGNMENT=NN_topic   grade every submission in parallel, write feedback and the report"
	@echo "make grade-worker SCHEDULER=tcp://HOST:8786   a grading worker (WORKERS processes) for a Dask cluster"
	@echo "make report ASSIGNMENT=NN_topic  rewrite the class report from the grading records"
	@echo "make export ASSIGNMENT=NN_topic EXPORT_ARGS=\"--canvas GRADEBOOK.csv\"  grades into a Canvas import (or --csv PATH)"
	@echo "make bench-grading  nbgrader autograde vs make grade vs make grade on Dask, a simulated class of 24"
	@echo "make lint      ruff on code and notebooks"

$(READY): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v >= (3, 10) else \
		"Python 3.10 or newer is needed, found %d.%d: run make PYTHON=python3.11 ..." % v)'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing pip 26.3, torch==2.13.0, then requirements.txt and course_lib (editable) into $(VENV)"
	$(PIP) pip==26.3
	$(PIP) torch==2.13.0
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -e .
	@touch $@

setup: $(READY)

lab: $(READY)
	JUPYTER_CONFIG_PATH="$(CURDIR)/autograder" $(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" \
		--LabApp.default_url=/lab/tree/notebooks $(ROOT_FLAG) $(LAB_ARGS)

# The suite runs $(JOBS) workers side by side, each starting kernels: one math thread each keeps them from
# fighting over the cores (small tensors gain nothing from more).
test: $(READY)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) --dist worksteal --durations=25 $(PYTEST_ARGS)

# The browser tests (tests/test_browser.py) drive the system's Chromium with Playwright (pinned in
# requirements.txt); Playwright's own browser download is not used. Without Chromium those tests skip and say so.
CHROMIUM ?= $(or $(COURSE_CHROMIUM),/usr/bin/chromium)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
browser-deps: $(READY)
	@if [ -x "$(CHROMIUM)" ]; then echo "Chromium: $$($(CHROMIUM) --version 2>/dev/null)"; \
	elif command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium and chromium-driver"; \
		$(SUDO) apt-get install -y chromium chromium-driver \
			|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver; } \
			|| { echo "could not install Chromium: run as root or with sudo:" \
				"sudo apt-get install chromium chromium-driver" >&2; exit 1; }; \
	else echo "no apt-get here: install Chromium yourself and run the tests with" \
		"COURSE_CHROMIUM=/path/to/chromium make test" >&2; exit 1; fi
	@$(BIN)/python -c 'import playwright.sync_api' && echo "Playwright: $$($(BIN)/python -m pip show playwright | sed -n s/^Version:.//p)"

release: $(READY)
	$(BIN)/python -m autograder release $(NOTEBOOKS)

stamp: $(READY)
	$(BIN)/python -m autograder stamp $(NOTEBOOKS)

images: $(READY)
	$(BIN)/python -m autograder images $(NOTEBOOKS)

bench: $(READY)
	$(BIN)/python -m autograder bench $(NOTEBOOKS)

bench-grading: $(READY)
	$(BIN)/python -m autograder bench-grading $(NOTEBOOKS)

grade: $(READY)
	@test -n "$(ASSIGNMENT)" || { echo "name the assignment: make grade ASSIGNMENT=01_linear"; exit 2; }
	$(BIN)/python -m autograder grade $(ASSIGNMENT) $(GRADE_ARGS)

# One Dask worker process per core, one submission at a time each, loading this checkout's grader (see the README,
# "Grading on a cluster"); the machine needs the same environment and checkout as the one that runs make grade.
grade-worker: $(READY)
	@test -n "$(SCHEDULER)" || { echo "name the scheduler: make grade-worker SCHEDULER=tcp://HOST:8786"; exit 2; }
	PYTHONPATH="$(CURDIR)" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/dask worker $(SCHEDULER) \
		--nthreads 1 --nworkers $(WORKERS) --preload autograder.engine.dask_worker $(WORKER_ARGS)

report: $(READY)
	@test -n "$(ASSIGNMENT)" || { echo "name the assignment: make report ASSIGNMENT=01_linear"; exit 2; }
	$(BIN)/python -m autograder report $(ASSIGNMENT) $(REPORT_ARGS)

export: $(READY)
	@test -n "$(ASSIGNMENT)" || { echo "name the assignment: make export ASSIGNMENT=01_linear EXPORT_ARGS=..."; exit 2; }
	$(BIN)/python -m autograder export $(ASSIGNMENT) $(EXPORT_ARGS)

lint: $(READY)
	$(BIN)/ruff check .

clean-env:
	rm -rf $(VENV)
