# The two commands of the README:
#   make book   set up .venv (pinned requirements + normlib) and build the website into _build/html
#   make test   the same set-up, then every test: pytest (normlib + doctests), nbval (strict) over
#               every notebook under two rounding paths, the workflow files through actionlint, the
#               book build with warnings as errors, every page of the built site in headless
#               Chromium, and the book's rules (every claim has its cell; figures)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book

NBVAL := --nbval --nbval-current-env --nbval-sanitize-with book/sanitize.cfg --nbval-cell-timeout 300
# A stored output must hold on every machine, so nbval re-executes every notebook twice against the
# same stored outputs, on two rounding paths: PyTorch's native vectorized kernels with two threads
# (what a reader's own Jupyter runs), and its scalar reference kernels, MKL's reproducible mode and
# one thread. The two passes run side by side, each notebook in a worker of its own (pytest-xdist).
# OMP_WAIT_POLICY=PASSIVE changes no result, only scheduling: OpenMP threads that wait sleep instead
# of spinning, which with more threads than cores would otherwise slow a cell down a hundredfold.
NATIVE_PATH := env -u ATEN_CPU_CAPABILITY -u MKL_CBWR OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
REFERENCE_PATH := env ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
NOTEBOOKS = $(or $(NB),book)

.PHONY: book test setup browser-deps test-lib test-notebooks nbval-native nbval-reference test-workflows test-build test-browser test-content outputs lab claims bench experiments requirements clean

book: setup
	$(JB) build . --builder html

test: setup browser-deps test-lib test-notebooks test-workflows test-build test-browser test-content

# Debian's Chromium and ChromeDriver for the browser test (never a browser downloaded by a test
# tool): installed when missing, with apt-get as root or through sudo. $CHROMIUM and $CHROMEDRIVER
# name another browser and driver (GitHub's runners bring Chrome and its driver).
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
browser-deps:
	@if [ ! -x "$(CHROMIUM)" ] || [ ! -x "$(CHROMEDRIVER)" ]; then \
	    SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo"; \
	    $$SUDO apt-get update -qq && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

test-lib: setup
	$(PY) -m pytest -n 2 --doctest-modules tests normlib --ignore=tests/browser --ignore=tests/book

# nbval over every notebook of book/, or only NB="book/x.ipynb ...", on both rounding paths at once.
test-notebooks: setup
	@$(MAKE) --no-print-directory -j2 --output-sync=target nbval-native nbval-reference

nbval-native: setup
	$(NATIVE_PATH) $(PY) -m pytest $(NBVAL) -n 2 --dist loadfile $(NOTEBOOKS)

nbval-reference: setup
	$(REFERENCE_PATH) $(PY) -m pytest $(NBVAL) -n 2 --dist loadfile $(NOTEBOOKS)

# The GitHub Actions workflows (.github/workflows/), checked offline.
test-workflows: setup
	$(VENV)/bin/actionlint -no-color .github/workflows/*.yml

test-build: setup
	$(JB) build . --builder html --all -n -W --keep-going

# The built site (_build/html) as a reader meets it: every page in headless Chromium, offline.
# Needs Debian's chromium and chromium-driver (.ci/run installs them); fails, saying so, without them.
test-browser: setup
	$(PY) -m pytest tests/browser

# The book's own rules: every claim of the ledger has a cell that asserts it and prints its verdict
# (tools/claims_appendix.py --check says the same); figures fit the page and keep setup()'s style.
test-content: setup
	$(PY) -m pytest tests/book

# Re-execute notebooks in place (all of book/, or NB="book/x.ipynb ...") to refresh stored outputs.
outputs: setup
	$(PY) tools/execute_notebooks.py $(NB)

# Jupyter Lab in the project's environment (no special settings: outputs hold on every machine).
# As root (common in containers) Jupyter refuses to start without --allow-root; LAB_FLAGS adds others.
lab: setup
	$(VENV)/bin/jupyter lab book $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_FLAGS)

# Which claims of the ledger lack their checking cell (the claims appendix's own check).
claims: setup
	$(PY) tools/claims_appendix.py --check

# requirements.txt, every package pinned, compiled from the direct requirements in requirements.in.
requirements: setup
	$(VENV)/bin/pip-compile --quiet --strip-extras --no-emit-find-links --no-emit-index-url requirements.in -o requirements.txt
	sed -i 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/' requirements.txt

# The book's long experiments (experiments/): every run not yet stored in book/results/, two at a
# time, with a progress bar; resumable (a finished run is written at once). NAME=... runs one.
experiments: setup
	$(PY) -m experiments run $(NAME) --jobs 2

# Time normlib against PyTorch's kernels (benchmarks/bench.py; QUICK=1 for a run under a minute).
# Not part of `make test`. Runs with PyTorch's native vectorized kernels.
bench: setup
	$(PY) benchmarks/bench.py $(if $(QUICK),--quick)

clean:
	rm -rf _build
