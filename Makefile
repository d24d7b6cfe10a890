# The book's two commands (see README.md):
#   make book   create .venv, install, build the HTML book executing every notebook
#   make test   create .venv, install, lint, run the unit tests, build the book, check it in a
#               browser, run one chapter on its own as in Colab
# Both work on a fresh clone; the profile comes from CAMWALLS_PROFILE (default: quick).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

# Other CPUs (TESTING.md): the oldest instruction set PyTorch supports with one thread, and AVX2,
# the instruction set of most readers' laptops (no AVX-512).
RESTRICTED_CPU := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 OMP_NUM_THREADS=1
AVX2_CPU       := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
TIMED          := $(PY) tools/timed.py

.PHONY: book test unit unit-restricted install clean check-book lint format

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

book: $(STAMP)
	$(PY) -m tools.build

test: $(STAMP) browser
	$(TIMED) "lint and format (ruff)" -- sh -c '$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .'
	$(TIMED) "unit tests, native CPU" -- $(PY) -m pytest --durations=15 -n 2 --dist loadfile
	$(TIMED) "unit tests, restricted instruction set, 1 thread" -- env $(RESTRICTED_CPU) $(PY) -m pytest -q -p no:cacheprovider -m "not isa_independent" -n 2 --dist loadfile
	$(TIMED) "training the two quick models (at once, native CPU)" -- env CAMWALLS_PRETRAINED=0 $(PY) -m helpers.train --profile quick --no-progress
	$(TIMED) "book build, instruction set capped at AVX2" -- env $(AVX2_CPU) $(PY) -m tools.build
	$(TIMED) "browser check" -- $(PY) -m tools.browsercheck
	$(TIMED) "one chapter on its own, as in Colab (the chapter of the day)" -- $(PY) -m tools.standalone

unit: $(STAMP)
	$(PY) -m pytest --durations=15

unit-restricted: $(STAMP)
	env $(RESTRICTED_CPU) $(PY) -m pytest -q -p no:cacheprovider -m "not isa_independent" -n 2 --dist loadfile

check-book: $(STAMP) browser
	$(PY) -m tools.browsercheck

# The browser check's Chromium and chromedriver (Debian packages, driven by selenium): installed
# with apt-get when missing and we are root; otherwise the command to run is printed.
CHROMEDRIVER ?= $(or $(CAMWALLS_CHROMEDRIVER),/usr/bin/chromedriver)
.PHONY: browser
browser:
	@test -x $(CHROMEDRIVER) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "$(CHROMEDRIVER) is missing: apt-get install -y chromium chromium-driver"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver && \
	    test -x $(CHROMEDRIVER); \
	  else \
	    echo "The browser check needs Chromium and chromedriver ($(CHROMEDRIVER) is missing): run" >&2; \
	    echo "  sudo apt-get update && sudo apt-get install -y chromium chromium-driver" >&2; \
	    exit 1; \
	  fi; }

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet -e ".[book,test]"
	touch $(STAMP)

clean:
	rm -rf _build
