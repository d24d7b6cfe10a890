# The book's two commands (see README.md):
#   make book   create .venv, install, build the HTML book executing every notebook
#   make test   create .venv, install, run the unit tests, build the book, check it in a browser
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

.PHONY: book test unit unit-restricted install clean check-book

book: $(STAMP)
	$(PY) -m helpers.build

test: $(STAMP)
	$(TIMED) "unit tests, native CPU" -- $(PY) -m pytest --durations=15
	$(TIMED) "unit tests, restricted instruction set, 1 thread" -- env $(RESTRICTED_CPU) $(PY) -m pytest -q -p no:cacheprovider
	$(TIMED) "book build, instruction set capped at AVX2" -- env $(AVX2_CPU) $(PY) -m helpers.build
	$(TIMED) "browser check" -- $(PY) -m helpers.browsercheck

unit: $(STAMP)
	$(PY) -m pytest --durations=15

unit-restricted: $(STAMP)
	env $(RESTRICTED_CPU) $(PY) -m pytest -q -p no:cacheprovider

check-book: $(STAMP)
	$(PY) -m helpers.browsercheck

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet -e ".[book,test]"
	touch $(STAMP)

clean:
	rm -rf _build
