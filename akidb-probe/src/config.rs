//! The probe's configuration: regions, their endpoints, and latency budgets.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// A whole probe run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Measured requests per endpoint (after warm-up).
    #[serde(default = "default_requests")]
    pub requests: usize,
    /// Requests per endpoint sent first and not measured (caches, JIT, the server's first batch).
    #[serde(default = "default_warmup")]
    pub warmup: usize,
    /// A request slower than this counts as failed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Budgets every endpoint must meet (an endpoint may add its own).
    #[serde(default)]
    pub budgets: Vec<Budget>,
    pub regions: Vec<Region>,
}

fn default_requests() -> usize {
    50
}
fn default_warmup() -> usize {
    5
}
fn default_timeout_ms() -> u64 {
    5000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Short name, such as `embed`, `manifest`, `blob-range`.
    pub name: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// `http://host[:port]/path` (https is refused: this build does not time TLS).
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as given (set `Content-Type` in `headers`).
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub budgets: Vec<Budget>,
}

fn default_method() -> String {
    "GET".into()
}

/// The request phases the probe times, each from the start of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Dns,
    Connect,
    Ttfb,
    Total,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::Dns, Phase::Connect, Phase::Ttfb, Phase::Total];
    pub fn name(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Ttfb => "ttfb",
            Phase::Total => "total",
        }
    }
}

/// "The `percentile`th percentile of `phase` must be at most `max_ms`."
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub phase: Phase,
    pub percentile: u8,
    pub max_ms: f64,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: Config =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        if self.regions.is_empty() {
            bail!("the config lists no regions");
        }
        if self.requests == 0 {
            bail!("requests must be at least 1");
        }
        for budget in self.budgets.iter() {
            budget.validate()?;
        }
        for region in &self.regions {
            if region.endpoints.is_empty() {
                bail!("region {} lists no endpoints", region.name);
            }
            for endpoint in &region.endpoints {
                crate::measure::Target::parse(endpoint)
                    .with_context(|| format!("region {}, endpoint {}", region.name, endpoint.name))?;
                for budget in &endpoint.budgets {
                    budget.validate()?;
                }
            }
        }
        Ok(())
    }
}

impl Budget {
    fn validate(&self) -> Result<()> {
        if !(1..=100).contains(&self.percentile) {
            bail!("budget percentile {} is not in 1..=100", self.percentile);
        }
        if self.max_ms.is_nan() || self.max_ms <= 0.0 {
            bail!("budget max_ms must be positive, got {}", self.max_ms);
        }
        Ok(())
    }
}
