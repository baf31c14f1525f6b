# The two set-up commands of the README. Both create .venv on first use.
#   make book   install everything, execute every chapter, build the HTML book
#   make test   install everything, run the whole test suite (chapters included)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The result cache of every chapter's sweeps lives in the tree: `make test` (which runs the
# chapters through nbmake) fills it, `make book` then reads it, `make clean` removes it.
export VQLIB_CACHE := $(CURDIR)/_build/vqlib-cache

.PHONY: book test student clean

$(STAMP): pyproject.toml requirements-book.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and alone: 2.13.0 is the local CPU wheel on these machines
	$(BIN)/python -m pip install -q torch==2.13.0
	# the [book] extra (matplotlib, ipywidgets) draws the chapters; [distributed] (Dask) runs sweeps
	# on several processes or machines; both tested here
	$(BIN)/python -m pip install -q -r requirements-book.txt -e ".[book,distributed]"
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/python tools/setup_cell.py --check
	# one thread: these small models gain little from two, and lose much on a busy machine
	# the status page reads this build's facts (timings, versions): always re-execute it
	touch status.ipynb
	OMP_NUM_THREADS=1 $(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	# one thread per worker: two workers on two cores, no oversubscription
	# --durations lists every test and chapter that took 5 s or more (the chapters' timings)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 tests chapters --nbmake --nbmake-timeout=900 \
		--ignore=chapters/09_all_bounds.ipynb \
		--durations=0 --durations-min=5 --junitxml=_build/test-report.xml
	# chapter 9 reads the other chapters' cached sweeps: run it once they are all computed
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest chapters/09_all_bounds.ipynb --nbmake --nbmake-timeout=900 \
		--durations=0 --junitxml=_build/test-report-09.xml

student: $(STAMP)
	# student copies of every chapter, solutions removed, in _build/student (see teaching.md)
	$(BIN)/python tools/student_copy.py

clean:
	# _build holds the HTML, the Jupyter execution cache and the sweep cache (_build/vqlib-cache)
	rm -rf _build
