# Figures and the claims report, drawn from the aggregated stores (lindyn.plots, lindyn.report).
# Each figure is one rule writing a PNG and a PDF, both tagged for `snakemake --report`.
from lindyn.report.figures import FIGURES, figure_inputs, report_targets


rule figure_flow:
    """The paper's Figure 1: closed-form gradient flow on the datasets' spectra."""
    input:
        figure_inputs("fig1_flow", config["datasets"], aggregates=False),
    output:
        png=report(
            "results/figures/fig1_flow.png",
            caption="../report/fig1_flow.rst",
            category="Paper",
            labels={"figure": "Figure 1: closed-form gradient flow", "format": "PNG"},
        ),
        pdf=report(
            "results/figures/fig1_flow.pdf",
            caption="../report/fig1_flow.rst",
            category="Paper",
            labels={"figure": "Figure 1: closed-form gradient flow", "format": "PDF"},
        ),
    log:
        "results/logs/figures/fig1_flow.log",
    conda:
        "../envs/lindyn.yaml"
    params:
        figure="fig1_flow",
        datasets=config["datasets"],
    script:
        "../scripts/figures.py"


rule figure_autoencoder:
    """The paper's Figure 2: gradient descent on the autoencoder, L = 1 against L = 2."""
    input:
        figure_inputs("fig2_autoencoder", config["datasets"], aggregates=True),
    output:
        png=report(
            "results/figures/fig2_autoencoder.png",
            caption="../report/fig2_autoencoder.rst",
            category="Paper",
            labels={"figure": "Figure 2: GD on the autoencoder", "format": "PNG"},
        ),
        pdf=report(
            "results/figures/fig2_autoencoder.pdf",
            caption="../report/fig2_autoencoder.rst",
            category="Paper",
            labels={"figure": "Figure 2: GD on the autoencoder", "format": "PDF"},
        ),
    log:
        "results/logs/figures/fig2_autoencoder.log",
    conda:
        "../envs/lindyn.yaml"
    params:
        figure="fig2_autoencoder",
        datasets=config["datasets"],
    script:
        "../scripts/figures.py"


rule figure_eps:
    """The paper's Table 1 as a bar chart: ε_A1 against ε_iso, raw and centred."""
    input:
        figure_inputs("fig3_eps", config["datasets"], aggregates=False),
    output:
        png=report(
            "results/figures/fig3_eps.png",
            caption="../report/fig3_eps.rst",
            category="Paper",
            labels={"figure": "Table 1: ε_A1 against ε_iso", "format": "PNG"},
        ),
        pdf=report(
            "results/figures/fig3_eps.pdf",
            caption="../report/fig3_eps.rst",
            category="Paper",
            labels={"figure": "Table 1: ε_A1 against ε_iso", "format": "PDF"},
        ),
    log:
        "results/logs/figures/fig3_eps.log",
    conda:
        "../envs/lindyn.yaml"
    params:
        figure="fig3_eps",
        datasets=config["datasets"],
    script:
        "../scripts/figures.py"


rule figure_transitions:
    """Measured transition steps against the flow and asymptotic predictions."""
    input:
        figure_inputs("fig4_transitions", config["datasets"], aggregates=True),
    output:
        png=report(
            "results/figures/fig4_transitions.png",
            caption="../report/fig4_transitions.rst",
            category="Theory",
            labels={
                "figure": "Measured against predicted transitions",
                "format": "PNG",
            },
        ),
        pdf=report(
            "results/figures/fig4_transitions.pdf",
            caption="../report/fig4_transitions.rst",
            category="Theory",
            labels={
                "figure": "Measured against predicted transitions",
                "format": "PDF",
            },
        ),
    log:
        "results/logs/figures/fig4_transitions.log",
    conda:
        "../envs/lindyn.yaml"
    params:
        figure="fig4_transitions",
        datasets=config["datasets"],
    script:
        "../scripts/figures.py"


rule figure_theorem3:
    """Theorem 3's envelopes and Corollary 3's bracket on the ε = 0 dataset."""
    input:
        figure_inputs("fig5_theorem3", config["datasets"], aggregates=True),
    output:
        png=report(
            "results/figures/fig5_theorem3.png",
            caption="../report/fig5_theorem3.rst",
            category="Theory",
            labels={
                "figure": "Theorem 3 envelopes, Corollary 3 bracket",
                "format": "PNG",
            },
        ),
        pdf=report(
            "results/figures/fig5_theorem3.pdf",
            caption="../report/fig5_theorem3.rst",
            category="Theory",
            labels={
                "figure": "Theorem 3 envelopes, Corollary 3 bracket",
                "format": "PDF",
            },
        ),
    log:
        "results/logs/figures/fig5_theorem3.log",
    conda:
        "../envs/lindyn.yaml"
    params:
        figure="fig5_theorem3",
        datasets=config["datasets"],
    script:
        "../scripts/figures.py"


rule figure_depth:
    """Depth ≥ 3: rescaled transitions tend to steps at T_i = 1/s_i."""
    input:
        figure_inputs("fig6_depth", config["datasets"], aggregates=True),
    output:
        png=report(
            "results/figures/fig6_depth.png",
            caption="../report/fig6_depth.rst",
            category="Beyond the paper",
            labels={"figure": "Depth ≥ 3: τ_L(δ) rescaling", "format": "PNG"},
        ),
        pdf=report(
            "results/figures/fig6_depth.pdf",
            caption="../report/fig6_depth.rst",
            category="Beyond the paper",
            labels={"figure": "Depth ≥ 3: τ_L(δ) rescaling", "format": "PDF"},
        ),
    log:
        "results/logs/figures/fig6_depth.log",
    conda:
        "../envs/lindyn.yaml"
    params:
        figure="fig6_depth",
        datasets=config["datasets"],
    script:
        "../scripts/figures.py"


rule figure_path:
    """Distances to the sequential and reduced-rank solutions along the path."""
    input:
        figure_inputs("fig7_path", config["datasets"], aggregates=True),
    output:
        png=report(
            "results/figures/fig7_path.png",
            caption="../report/fig7_path.rst",
            category="Theory",
            labels={
                "figure": "Path: distance to W_k^seq and W_k^RRR",
                "format": "PNG",
            },
        ),
        pdf=report(
            "results/figures/fig7_path.pdf",
            caption="../report/fig7_path.rst",
            category="Theory",
            labels={
                "figure": "Path: distance to W_k^seq and W_k^RRR",
                "format": "PDF",
            },
        ),
    log:
        "results/logs/figures/fig7_path.log",
    conda:
        "../envs/lindyn.yaml"
    params:
        figure="fig7_path",
        datasets=config["datasets"],
    script:
        "../scripts/figures.py"


rule figure_separation:
    """Separation of consecutive components: measured, Corollary 3, the eigen-gap condition."""
    input:
        figure_inputs("fig8_separation", config["datasets"], aggregates=True),
    output:
        png=report(
            "results/figures/fig8_separation.png",
            caption="../report/fig8_separation.rst",
            category="Theory",
            labels={
                "figure": "Separation: Corollary 3 and the eigen-gap condition",
                "format": "PNG",
            },
        ),
        pdf=report(
            "results/figures/fig8_separation.pdf",
            caption="../report/fig8_separation.rst",
            category="Theory",
            labels={
                "figure": "Separation: Corollary 3 and the eigen-gap condition",
                "format": "PDF",
            },
        ),
    log:
        "results/logs/figures/fig8_separation.log",
    conda:
        "../envs/lindyn.yaml"
    params:
        figure="fig8_separation",
        datasets=config["datasets"],
    script:
        "../scripts/figures.py"


rule report:
    """The claims report: verdicts computed from the aggregated stores."""
    input:
        stats=expand("results/datasets/{dataset}.zarr.zip", dataset=config["datasets"]),
        aggregates=[
            path
            for dataset in config["datasets"]
            for path in aggregate_outputs(dataset)
        ],
        figures=[f"results/figures/{figure}.png" for figure in FIGURES],
    output:
        report(
            "results/report.md",
            caption="../report/report.rst",
            category="Claims report",
        ),
    log:
        "results/logs/report.log",
    conda:
        "../envs/lindyn.yaml"
    params:
        datasets=list(config["datasets"]),
    script:
        "../scripts/report.py"
