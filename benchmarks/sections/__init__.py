"""The benchmark sections, one module each, in the order of the report.

Every module has ``NAME`` (its ``--only`` name) and ``run(cfg, summary)``,
which measures, prints its table(s) and appends its targets to ``summary``.
"""
