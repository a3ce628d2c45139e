"""Runs: the run directory layout, episode traces, suites, scheduling and results."""
