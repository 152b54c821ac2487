# Beyond the paper: the ε > 0 departure law (lindyn.departure), on the `commuting` loader
# with its `perturbation` option swept; config `departure` (empty perturbation or
# enabled: false turns it off, and the report says so).


rule departure:
    """Aligned-init runs at each perturbation and seed against the exact ε = 0 recursion."""
    output:
        store=str(departure_path(RESULTS)),
        fit=str(departure_fit_path(RESULTS)),
    log:
        "results/logs/beyond/departure.log",
    params:
        settings=config["departure"],
    script:
        "../scripts/departure.py"
