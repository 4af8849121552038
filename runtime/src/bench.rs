//! The report every `rlrt bench <what>` prints: a readable table, or with `--json` exactly
//! one JSON object: `{"bench": .., "metrics": {name: {unit, p50, p99, max}}, "peers":
//! {peer: {name: {..}}}, ..}`. Peers are the references a user would pick instead, measured
//! in the same run.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::stats::{Percentiles, Summary};

/// One measured quantity.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metric {
    pub unit: String,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl Metric {
    /// Median, 99th percentile (nearest rank) and maximum of raw samples, already in
    /// `unit`. No samples give NaN figures and a count of 0.
    pub fn from_samples(unit: &str, mut samples: Vec<f64>) -> Self {
        let Percentiles { p50, p99, max } = Percentiles::of(&mut samples).unwrap_or(Percentiles {
            p50: f64::NAN,
            p99: f64::NAN,
            max: f64::NAN,
        });
        Self {
            unit: unit.to_owned(),
            p50,
            p99,
            max,
            count: Some(samples.len() as u64),
        }
    }

    /// A nanosecond summary in microseconds.
    pub fn from_ns_summary(summary: &Summary) -> Self {
        let (p50, p99, max) = summary.to_us();
        Self {
            unit: "us".to_owned(),
            p50,
            p99,
            max,
            count: Some(summary.count),
        }
    }
}

pub type Metrics = BTreeMap<String, Metric>;

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub bench: String,
    pub metrics: Metrics,
    pub peers: BTreeMap<String, Metrics>,
    /// Anything else worth reporting (counts, ratios, machine facts).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl BenchReport {
    pub fn new(bench: &str) -> Self {
        Self {
            bench: bench.to_owned(),
            metrics: Metrics::new(),
            peers: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "bench {}", self.bench)?;
        let mut table = |who: &str, metrics: &Metrics| -> std::fmt::Result {
            writeln!(f, "  {who}")?;
            writeln!(
                f,
                "    {:<26} {:>6} {:>10} {:>10} {:>10}",
                "metric", "unit", "p50", "p99", "max"
            )?;
            for (name, m) in metrics {
                writeln!(
                    f,
                    "    {name:<26} {:>6} {:>10.2} {:>10.2} {:>10.2}",
                    m.unit, m.p50, m.p99, m.max
                )?;
            }
            Ok(())
        };
        table("rlrt", &self.metrics)?;
        for (peer, metrics) in &self.peers {
            table(&format!("peer: {peer}"), metrics)?;
        }
        for (key, value) in &self.extra {
            writeln!(f, "  {key}: {value}")?;
        }
        Ok(())
    }
}
