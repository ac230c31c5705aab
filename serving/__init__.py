"""storylake serving: audience rules, the published snapshot and its query API (no Spark).

Modules:
  audience   the audience rules as SQL over flags (shared with the Spark jobs)
  rules      those rules as a truth table evaluated by DuckDB, for vectorised use
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
  testkit    hand-built silver/gold Delta lakes for tests and benchmarks
"""
