"""storylake serving: audience rules, the published snapshot and its query API (no Spark)."""
