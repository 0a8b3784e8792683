"""Time one windowed aggregation over 10M events on DataFusion and on DuckDB.

Both engines read the same Parquet file and run the same SQL text, once.
DataFusion runs through its Python package (a release build of the same
DataFusion major version as the engine crate). Usage:

    python window_vs_duckdb.py [PARQUET_PATH] [ROWS]

The Parquet file is generated with DuckDB when it does not exist.
"""

import os
import sys
import time

import datafusion
import duckdb

PATH = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/copycar/sql-bench/events.parquet"
ROWS = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000

# Hourly tumbling windows per tenant and campaign, written as integer
# arithmetic so both engines run the identical text.
QUERY = """
SELECT tenant, campaign,
       occurred_at_ms - occurred_at_ms % 3600000 AS window_start,
       count(*) AS events,
       count(*) FILTER (WHERE type = 'open') AS opens,
       count(*) FILTER (WHERE type = 'bounce') AS bounces,
       sum(bytes) AS bytes,
       max(bytes) AS largest
FROM events
GROUP BY 1, 2, 3
"""


def generate(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    duckdb.sql(f"""
        COPY (
            SELECT 'tenant-' || (i % 4) AS tenant,
                   (['sent', 'delivered', 'open', 'click', 'reply', 'bounce'])[1 + CAST(hash(i) % 6 AS INTEGER)] AS type,
                   'campaign-' || CAST(hash(i * 7) % 200 AS BIGINT) AS campaign,
                   CAST(1735689600000 + i * 30 + hash(i * 13) % 5000 AS BIGINT) AS occurred_at_ms,
                   CAST(hash(i * 17) % 100000 AS BIGINT) AS bytes
            FROM range({rows}) t(i)
        ) TO '{path}' (FORMAT parquet)
    """)


def main():
    if not os.path.exists(PATH):
        generate(PATH, ROWS)

    ctx = datafusion.SessionContext()
    ctx.register_parquet("events", PATH)
    start = time.perf_counter()
    df_rows = ctx.sql(QUERY).collect()
    df_seconds = time.perf_counter() - start
    df_count = sum(batch.num_rows for batch in df_rows)
    df_events = sum(sum(v.as_py() for v in batch.column(3)) for batch in df_rows)

    con = duckdb.connect()
    con.sql(f"CREATE VIEW events AS SELECT * FROM read_parquet('{PATH}')")
    start = time.perf_counter()
    duck = con.sql(QUERY).fetchall()
    duck_seconds = time.perf_counter() - start
    duck_events = sum(row[3] for row in duck)

    rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
    print(f"rows in file: {rows}")
    print(f"datafusion {datafusion.__version__}: {df_seconds:.3f} s, {df_count} groups, {df_events} events")
    print(f"duckdb {duckdb.__version__}: {duck_seconds:.3f} s, {len(duck)} groups, {duck_events} events")
    print(f"datafusion / duckdb time: {df_seconds / duck_seconds:.2f}")
    assert df_count == len(duck) and df_events == duck_events == rows


if __name__ == "__main__":
    main()
