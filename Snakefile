# lindyn: gradient-descent dynamics of deep linear networks over a grid of runs.
# The rules live in workflow/rules/; this file only sets things up.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/beyond.smk"
include: "workflow/rules/report.smk"


# Under a cluster executor these rules run on the submitting host, not as cluster jobs
# (README, "Running on Slurm"): the figures and the report only read the aggregated stores,
# and `aggregate` with `aggregate.cluster: slurm` only orchestrates its Dask workers' Slurm
# jobs. config `cluster.localrules` adds more. `all` runs nothing and is always local.
workflow.localrules(
    "report",
    *FIGURE_RULES.values(),
    *(["aggregate"] if config["aggregate"]["cluster"] == "slurm" else []),
    *config["cluster"]["localrules"],
)


rule all:
    default_target: True
    input:
        all_targets(),
