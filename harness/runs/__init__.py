"""Runs: the run directory layout, typed records and their reader, episode traces, suites,
scheduling and results. Read a run with `read_run(path)`."""

from harness.runs.read import RecordError, Run, SchemaVersionError, read_run

__all__ = ["RecordError", "Run", "SchemaVersionError", "read_run"]
