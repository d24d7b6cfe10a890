# The book's two commands (see README.md):
#   make book   create .venv, install, build the HTML book executing every notebook
#   make test   create .venv, install, run the unit tests, build the book, check it in a browser
# Both work on a fresh clone; the profile comes from CAMWALLS_PROFILE (default: quick).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: book test unit install clean check-book

book: $(STAMP)
	$(PY) -m helpers.build

test: $(STAMP)
	$(PY) -m pytest --durations=15
	$(PY) -m helpers.build
	$(PY) -m helpers.browsercheck

unit: $(STAMP)
	$(PY) -m pytest --durations=15

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
