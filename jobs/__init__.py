"""storylake jobs: settings, engine, contracts, ingestion and the Spark (Sail) pipeline."""
