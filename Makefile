# The two commands of the README: `make run` (the default pipeline) and `make test`.
# Both create the virtual environment .venv if it is missing.
PYTHON ?= python3
VENV := .venv
CORES ?= 2
STAMP := $(VENV)/.installed

.PHONY: run test report lint clean-results

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[workflow,test,fast]'
	touch $(STAMP)

# `lindyn run`: snakemake --rerun-incomplete, then the report. It refuses while another run
# is live in this directory, and removes Snakemake's lock only when it is provably stale
# (left by a run killed outright); see README, "Reliability".
run: $(STAMP)
	$(VENV)/bin/lindyn run --cores $(CORES)

test: $(STAMP)
	$(VENV)/bin/python -m pytest

# The last line is `snakemake --lint`, less the one lint the workflow keeps: its rules
# declare no conda environment (README, "The two commands").
lint: $(STAMP)
	$(VENV)/bin/ruff check lindyn tests benchmarks workflow/scripts
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/python -m pytest -q tests/test_workflow.py -k lint

clean-results:
	rm -rf results/* .snakemake && touch results/.gitkeep
