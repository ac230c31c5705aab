"""storylake serving: the published snapshot and its query API (DuckDB/Polars, no Spark).

Modules:
  audience_table  the audience rules (storylake.rules.audience) as a truth table evaluated by DuckDB
  publish    silver + gold Delta -> one read-only DuckDB snapshot, swapped in atomically (CURRENT)
  snapshot   snapshot layout, CURRENT pointer, read-only handles (per-process cache)
  tray       tray(): ranked rings of a viewer at `now`, keyset pages
  seen_by    seen_by(): the author's viewer list, 48 h lifetime, keyset pages
  insights   insights(): creator insights and question inbox of an author
  cursor     opaque pagination cursors
  render     JSON shapes (ISO-8601 UTC times with Z)
  api        the public query API (re-exports)
  cli        plain functions behind the CLI commands
  expire     batch expiry cleanup through delta-rs deletes
"""
