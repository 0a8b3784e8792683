//! Times one windowed aggregation over a Parquet file of events with the
//! DataFusion crate this engine links, for the comparison with DuckDB that
//! `benches/window_vs_duckdb.py` runs on the same file and SQL text.
//!
//! Usage: `window_parquet PARQUET_PATH`. Build it in release with the host
//! (`cargo run --release -p copycar -p copycar-pipelines --example
//! window_parquet -- PATH`) so DataFusion is not built a second time with
//! other features.

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use std::time::Instant;

/// Hourly tumbling windows per tenant and campaign, as integer arithmetic so
/// DuckDB runs the identical text.
const QUERY: &str = "
SELECT tenant, campaign,
       occurred_at_ms - occurred_at_ms % 3600000 AS window_start,
       count(*) AS events,
       count(*) FILTER (WHERE type = 'open') AS opens,
       count(*) FILTER (WHERE type = 'bounce') AS bounces,
       sum(bytes) AS bytes,
       max(bytes) AS largest
FROM events
GROUP BY 1, 2, 3
";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: window_parquet PARQUET_PATH")?;
    let ctx = SessionContext::new();
    ctx.register_parquet("events", &path, ParquetReadOptions::default())
        .await?;

    let started = Instant::now();
    let batches = ctx.sql(QUERY).await?.collect().await?;
    let seconds = started.elapsed().as_secs_f64();

    let groups: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut events = 0i64;
    for batch in &batches {
        let counts = batch
            .column(3)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or("the events column is not Int64")?;
        events += (0..counts.len()).map(|i| counts.value(i)).sum::<i64>();
    }
    println!("datafusion crate {seconds:.3} s, {groups} groups, {events} events");
    Ok(())
}
