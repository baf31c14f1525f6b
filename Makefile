# The two set-up commands of the README. Both create .venv on first use.
#   make book   install everything, execute every chapter, build the HTML book
#   make test   install everything, run the whole test suite (chapters included)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test clean

$(STAMP): pyproject.toml requirements-book.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and alone: 2.13.0 is the local CPU wheel on these machines
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -r requirements-book.txt -e .
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/python tools/setup_cell.py --check
	# one thread: these small models gain little from two, and lose much on a busy machine
	OMP_NUM_THREADS=1 $(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	# one thread per worker: two workers on two cores, no oversubscription
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 tests chapters --nbmake --nbmake-timeout=900

clean:
	rm -rf _build
