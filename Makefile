# The doors: `make lab` for students, `make test` for CI, release/grade/feedback for instructors.
# Everything installs into .venv from PyPI; the set-up runs again only when the pins change.

# The Python for .venv: the first of python3.11, python3.12 and python3 that the pins install on
# (3.11.5 or newer, older than 3.13); `make PYTHON=/path/to/python3.12 ...` to choose one yourself.
PYTHON_OK := -c 'import sys; sys.exit(not (3, 11, 5) <= sys.version_info[:3] < (3, 13))'
ifndef PYTHON
PYTHON := $(firstword $(foreach p,python3.11 python3.12 python3,$(shell $(p) $(PYTHON_OK) 2>/dev/null && echo $(p))))
endif
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.scalelab-installed
SUBMISSIONS ?=
SCHEDULER ?=
DEADLINE ?=
FORCE ?=
UNSANDBOXED ?=
PYTEST_ARGS ?=
# make lab's folder, and options for jupyter lab (make lab, make formgrader), e.g. "--no-browser --port 8890"
LAB_DIR ?= labs
JUPYTER_ARGS ?=
# Jupyter listens on 127.0.0.1 only (whatever a jupyter config file says); another address goes in
# JUPYTER_ARGS (--ip=0.0.0.0 or --ServerApp.ip=...), and then this default steps aside: Jupyter refuses it twice
JUPYTER_IP := $(if $(filter --ip --ip=% --ServerApp.ip --ServerApp.ip=%,$(JUPYTER_ARGS)),,--ServerApp.ip=127.0.0.1)
# two pytest workers for the 2 cores (three were slower: 37.5 min against 31.3 for two, items about
# 1.5 times as long); loadscope keeps each notebook (its cells share a kernel) and each test
# module or class on one worker, so fixtures are made once, while the class batch's assignments spread
# over the workers. --no-loadscope-reorder hands out work in the order conftest.py sorts it (the long
# grading batches, the notebooks, then the shorter test modules) instead of most-items-first, which
# left the batches for the end.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder
# Jupyter refuses to start as root (containers, CI) unless told to
JUPYTER_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help setup lab test test-fast test-notebooks release grade feedback formgrader doctor bench bench-report cases scan lint lock clean

help:
	@echo "make lab          set up (first time) and open JupyterLab on labs/"
	@echo "           [LAB_DIR=solutions] [JUPYTER_ARGS=\"--no-browser --port 8890\"]   ... on another folder, with options"
	@echo "make test         set up (first time) and run the whole test suite"
	@echo "make test-fast    the tests that start no notebook or cluster"
	@echo "make test-notebooks  run every solution notebook top to bottom (nbval); NOTEBOOK=path for one"
	@echo "make doctor       what this machine has (Java, Spark, MPI, OpenCL, Dask), with fixes"
	@echo "make scan NOTEBOOK=<path>   before handing in: cells the grader would not run, and why (a folder:"
	@echo "                            every notebook in it; default solutions/)"
	@echo "make release      regenerate labs/ from solutions/ with nbgrader"
	@echo "make grade SUBMISSIONS=<folder or .zip>   grade a class into autograder/reports/"
	@echo "           [SCHEDULER=tcp://host:8786]     ... on the workers of a Dask cluster"
	@echo "           [DEADLINE=\"2026-12-01 23:59\"]   ... with lateness from nbgrader's timestamp.txt"
	@echo "           [FORCE=1]                      ... grading again what an earlier run graded unchanged"
	@echo "           [UNSANDBOXED=1]                ... where no sandbox (bubblewrap) can start: student code"
	@echo "                                            then runs with your rights (autograder/README.md)"
	@echo "make feedback     zip each student's feedback pages for returning them, with the formgrader's marks"
	@echo "make formgrader   JupyterLab with nbgrader's formgrader on the course"
	@echo "make cases        run the grading cases (autograder/cases/)"
	@echo "make bench        run the benchmarks in bench/ and record their results"
	@echo "make bench-report plots of bench/RESULTS.md's figures in bench/report/index.html"

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" && $(PYTHON) $(PYTHON_OK) 2>/dev/null || { echo "scalelab needs Python 3.11.5 or newer, below 3.13 \
	($(if $(PYTHON),$(PYTHON): $(shell $(PYTHON) -V 2>/dev/null || echo not found),none of python3.11, python3.12, python3 is)): \
	install one (e.g. pyenv install 3.12) and run make PYTHON=/path/to/python3.12 $(MAKECMDGOALS)"; exit 2; }
	@echo "setting up .venv with $(PYTHON) ($$($(PYTHON) -V 2>&1), $$(command -v $(PYTHON)))"
	$(PYTHON) -m venv $(VENV)
	@# uv installs the lock from PyPI as pip would, about twice as fast here (58 s against 124 s); pip only
	@# installs uv itself. --compile-bytecode: a grading sandbox sees the venv read-only, so a sandboxed
	@# kernel (and each MPI rank in it) would compile every module it imports, each time it starts
	$(BIN)/python -m pip install --quiet -c constraints.txt uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name scalelab --display-name "Python 3 (scalelab)"
	@# Spark drivers start a few seconds faster from a class-data archive (scalelab/spark.py); the set-up
	@# goes on without one (no Java, a failure: one line says so)
	-$(BIN)/python -m scalelab.spark archive
	@touch $(STAMP)
	@echo "set-up done: $(VENV) with kernel 'scalelab'. Next: make doctor, make lab"

setup: $(STAMP)

lab: setup
	$(BIN)/jupyter lab $(JUPYTER_ROOT_FLAG) $(JUPYTER_IP) --notebook-dir=$(LAB_DIR) $(JUPYTER_ARGS)

test: setup
	$(PYTEST) $(PYTEST_ARGS)

test-fast: setup
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

NOTEBOOK ?= solutions
test-notebooks: setup
	$(PYTEST) $(NOTEBOOK) $(PYTEST_ARGS)

doctor: setup
	$(BIN)/python -m scalelab doctor

release: setup
	$(BIN)/python -m scalelab release

cases: setup
	$(BIN)/python -m scalelab cases

scan: setup
	$(BIN)/python -m scalelab scan $(NOTEBOOK)

grade: setup
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=<folder or .zip of notebooks>"; exit 2; }
	$(BIN)/python -m scalelab grade "$(SUBMISSIONS)" $(if $(SCHEDULER),--scheduler $(SCHEDULER)) \
		$(if $(DEADLINE),--deadline "$(DEADLINE)") $(if $(FORCE),--force) $(if $(UNSANDBOXED),--unsandboxed)

feedback: setup
	$(BIN)/python -m scalelab feedback

formgrader: setup
	cd autograder && $(abspath $(BIN))/jupyter lab $(JUPYTER_ROOT_FLAG) $(JUPYTER_IP) --ServerApp.root_dir=.. $(JUPYTER_ARGS)

bench: setup
	$(BIN)/python -m bench

bench-report: setup
	$(BIN)/python -m bench.report

lint: setup
	$(BIN)/ruff check src tests bench solutions tools autograder

lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | sed '1i # Full lock of the environment that `make setup` installs (uv pip install -c constraints.txt).\n# Regenerate with `make lock` after changing a pin in pyproject.toml.' > constraints.txt

clean:
	rm -rf autograder/course autograder/reports .pytest_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
