//! Request metrics, rendered in the Prometheus text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A fixed-bucket histogram updated with atomics.
#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(value.as_nanos() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let trimmed = labels.trim_end_matches(',');
        let braced = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{{{trimmed}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {sum}");
        let _ = writeln!(out, "{name}_count{braced} {count}");
    }
}

/// All host metrics. Label sets are small (component ids, status codes),
/// so counters live in mutex-guarded maps.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    durations: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    instantiation: Histogram,
    failures: Mutex<BTreeMap<(String, &'static str), u64>>,
    outbound: Mutex<BTreeMap<(String, &'static str), u64>>,
    active_instances: AtomicI64,
    compile_cache: Mutex<BTreeMap<&'static str, u64>>,
    /// Writers of metrics that live outside the runtime, such as the data
    /// plane's services, called at the end of every render.
    sources: Mutex<Vec<MetricsSource>>,
}

/// Appends metrics in the Prometheus text format to the output.
pub type MetricsSource = Box<dyn Fn(&mut String) + Send + Sync>;

impl Metrics {
    pub fn request(&self, component: &str, status: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry((component.to_string(), status))
            .or_default() += 1;
        let histogram = self
            .durations
            .lock()
            .unwrap()
            .entry(component.to_string())
            .or_default()
            .clone();
        histogram.observe(elapsed);
    }

    pub fn instantiated(&self, elapsed: Duration) {
        self.instantiation.observe(elapsed);
    }

    /// Counts a request that ended in a trap, timeout or memory-limit failure.
    pub fn failure(&self, component: &str, kind: &'static str) {
        *self
            .failures
            .lock()
            .unwrap()
            .entry((component.to_string(), kind))
            .or_default() += 1;
    }

    pub fn outbound(&self, component: &str, outcome: &'static str) {
        *self
            .outbound
            .lock()
            .unwrap()
            .entry((component.to_string(), outcome))
            .or_default() += 1;
    }

    pub fn compile_cache(&self, outcome: &'static str) {
        *self
            .compile_cache
            .lock()
            .unwrap()
            .entry(outcome)
            .or_default() += 1;
    }

    pub fn instance_started(&self) {
        self.active_instances.fetch_add(1, Ordering::Relaxed);
    }

    pub fn instance_finished(&self) {
        self.active_instances.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds `source` to every render, after the runtime's own metrics.
    pub fn add_source(&self, source: MetricsSource) {
        self.sources.lock().unwrap().push(source);
    }

    pub fn active_instances(&self) -> i64 {
        self.active_instances.load(Ordering::Relaxed)
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP copycar_http_requests_total HTTP requests handled, by component and status code.\n");
        out.push_str("# TYPE copycar_http_requests_total counter\n");
        for ((component, status), n) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "copycar_http_requests_total{{component=\"{component}\",code=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP copycar_http_request_duration_seconds Time from request arrival to response head.\n");
        out.push_str("# TYPE copycar_http_request_duration_seconds histogram\n");
        for (component, histogram) in self.durations.lock().unwrap().iter() {
            histogram.render(
                &mut out,
                "copycar_http_request_duration_seconds",
                &format!("component=\"{component}\","),
            );
        }
        out.push_str(
            "# HELP copycar_instantiation_duration_seconds Time to create a component instance.\n",
        );
        out.push_str("# TYPE copycar_instantiation_duration_seconds histogram\n");
        self.instantiation
            .render(&mut out, "copycar_instantiation_duration_seconds", "");
        out.push_str("# HELP copycar_instance_failures_total Requests ended by a trap, timeout or memory limit.\n");
        out.push_str("# TYPE copycar_instance_failures_total counter\n");
        for ((component, kind), n) in self.failures.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "copycar_instance_failures_total{{component=\"{component}\",kind=\"{kind}\"}} {n}"
            );
        }
        out.push_str("# HELP copycar_outbound_requests_total Outbound HTTP requests from components, by outcome.\n");
        out.push_str("# TYPE copycar_outbound_requests_total counter\n");
        for ((component, outcome), n) in self.outbound.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "copycar_outbound_requests_total{{component=\"{component}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP copycar_active_instances Component instances currently running.\n");
        out.push_str("# TYPE copycar_active_instances gauge\n");
        let _ = writeln!(out, "copycar_active_instances {}", self.active_instances());
        out.push_str("# HELP copycar_component_compilations_total Component loads, by compile-cache outcome.\n");
        out.push_str("# TYPE copycar_component_compilations_total counter\n");
        for (outcome, n) in self.compile_cache.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "copycar_component_compilations_total{{cache=\"{outcome}\"}} {n}"
            );
        }
        for source in self.sources.lock().unwrap().iter() {
            source(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.request("health", 200, Duration::from_micros(50));
        metrics.request("health", 200, Duration::from_millis(3));
        metrics.request("health", 500, Duration::from_secs(10));
        let text = metrics.render();
        assert!(
            text.contains("copycar_http_requests_total{component=\"health\",code=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("copycar_http_requests_total{component=\"health\",code=\"500\"} 1"));
        assert!(text.contains(
            "copycar_http_request_duration_seconds_bucket{component=\"health\",le=\"0.0001\"} 1"
        ));
        assert!(text.contains(
            "copycar_http_request_duration_seconds_bucket{component=\"health\",le=\"0.005\"} 2"
        ));
        assert!(text.contains(
            "copycar_http_request_duration_seconds_bucket{component=\"health\",le=\"+Inf\"} 3"
        ));
        assert!(
            text.contains("copycar_http_request_duration_seconds_count{component=\"health\"} 3")
        );
    }
}
