"""Reproducible experiments: rate and SLO sweeps, goodput search, ablation ladder, report."""
