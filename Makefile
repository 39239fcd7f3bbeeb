# The two commands of the README:
#   make book   set up .venv (pinned requirements + normlib) and build the website into _build/html
#   make test   the same set-up, then every test: pytest (normlib + doctests), nbval (strict) over
#               every notebook, the book build with warnings as errors, every page of the built site
#               in headless Chromium, and the book's rules (every claim has its cell; figures)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book

# Same last bits on every machine of this kind (see normlib/notebook.py: DETERMINISTIC_ENV).
export ATEN_CPU_CAPABILITY := default
export MKL_CBWR := COMPATIBLE
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export PYTHONHASHSEED := 0

NBVAL := --nbval --nbval-current-env --nbval-sanitize-with book/sanitize.cfg --nbval-cell-timeout 120

.PHONY: book test setup browser-deps test-lib test-notebooks test-build test-browser test-content outputs lab bench clean

book: setup
	$(JB) build . --builder html

test: setup browser-deps test-lib test-notebooks test-build test-browser test-content

# Debian's Chromium and ChromeDriver for the browser test (never a browser downloaded by a test
# tool): installed when missing, with apt-get as root or through sudo.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
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
	$(PY) -m pytest --doctest-modules tests normlib --ignore=tests/browser --ignore=tests/book

# nbval over every notebook of book/, or only NB="book/x.ipynb ...".
test-notebooks: setup
	$(PY) -m pytest $(NBVAL) $(or $(NB),book)

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

# Jupyter Lab in the project's environment, with the same deterministic settings as CI.
lab: setup
	$(VENV)/bin/jupyter lab book

# Time normlib against PyTorch's kernels (benchmarks/bench.py; QUICK=1 for a run under a minute).
# Not part of `make test`. Runs WITHOUT the deterministic ATEN_CPU_CAPABILITY/MKL_CBWR above,
# which switch off the vectorized kernels PyTorch's native layers rely on.
bench: setup
	env -u ATEN_CPU_CAPABILITY -u MKL_CBWR $(PY) benchmarks/bench.py $(if $(QUICK),--quick)

clean:
	rm -rf _build
