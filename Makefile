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

# --unlock first: a run killed outright (SIGKILL, lost session) leaves Snakemake's lock
# behind; the stores themselves are never left half-written (see README, "Reliability").
run: $(STAMP)
	$(VENV)/bin/snakemake --unlock --quiet all > /dev/null
	$(VENV)/bin/snakemake --cores $(CORES) --rerun-incomplete
	$(VENV)/bin/snakemake --cores 1 --report results/report.html

test: $(STAMP)
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check lindyn tests benchmarks workflow/scripts
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint

clean-results:
	rm -rf results/* .snakemake && touch results/.gitkeep
