"""Every record the harness writes, as JSON Schemas: the run records (runs.records) and the
track records (tracks.records). `harness schema` writes them to docs/schema/; a test checks
that the files there match the models."""

from __future__ import annotations

from harness.runs.launches import LaunchRecord
from harness.runs.records import SCHEMA_VERSION, json_schemas
from harness.tracks.records import TRACK_RECORD_MODELS

__all__ = ["SCHEMA_VERSION", "all_json_schemas"]


def all_json_schemas() -> dict[str, str]:
    """File name -> JSON Schema text, for every record."""
    return json_schemas() | json_schemas({"launch": LaunchRecord}) | json_schemas(TRACK_RECORD_MODELS)
