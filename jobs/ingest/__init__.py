"""Incremental ingestion of landing files into bronze Delta tables (see jobs.ingest.run)."""

from jobs.ingest.run import IngestReport, ingest

__all__ = ["IngestReport", "ingest"]
