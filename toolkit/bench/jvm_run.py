"""Subprocess entry of the pipeline benchmark: silver+gold on classic JVM Spark, Parquet storage."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime

from jobs.engine import spark_session
from jobs.gold import build_gold
from jobs.silver import build_silver
from storylake.settings import Settings


def main() -> None:
    as_of = datetime.fromisoformat(sys.argv[1])
    settings = Settings.from_env()
    assert settings.storage == "parquet", "jvm_run writes Parquet (no Delta jars on JVM Spark here)"
    with spark_session(settings) as spark:
        t0 = time.perf_counter()
        rows = {**build_silver(spark, settings, as_of), **build_gold(spark, settings, as_of)}
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "rows": rows}))


if __name__ == "__main__":
    main()
