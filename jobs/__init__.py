"""storylake jobs: ingestion (landing -> bronze), the Spark jobs (silver, gold, export), the quality gates and
table maintenance. Shared rules, settings and contracts live in the kernel, storylake/."""
