//! Percentiles and budget checks over a set of samples.

use serde::Serialize;

use crate::config::{Budget, Phase};
use crate::measure::Sample;

/// Nearest-rank percentile (the smallest sample with at least `p`% of samples at or below it).
pub fn percentile(sorted: &[f64], p: u8) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = ((f64::from(p) / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseStats {
    pub phase: Phase,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BudgetResult {
    #[serde(flatten)]
    pub budget: Budget,
    pub measured_ms: Option<f64>,
    pub ok: bool,
}

/// Results of one endpoint of one region.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    pub region: String,
    pub endpoint: String,
    pub url: String,
    pub ok: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub phases: Vec<PhaseStats>,
    pub budgets: Vec<BudgetResult>,
}

impl EndpointReport {
    pub fn new(
        region: &str,
        endpoint: &str,
        url: &str,
        samples: &[Sample],
        errors: &[String],
        budgets: &[Budget],
    ) -> EndpointReport {
        let sorted = |phase: Phase| {
            let mut v: Vec<f64> = samples.iter().map(|s| s.get(phase)).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let phases: Vec<PhaseStats> = if samples.is_empty() {
            Vec::new()
        } else {
            Phase::ALL
                .iter()
                .map(|&phase| {
                    let v = sorted(phase);
                    PhaseStats {
                        phase,
                        p50_ms: percentile(&v, 50),
                        p95_ms: percentile(&v, 95),
                        p99_ms: percentile(&v, 99),
                        max_ms: *v.last().expect("not empty"),
                    }
                })
                .collect()
        };
        let budgets = budgets
            .iter()
            .map(|b| {
                // With no successful sample there is nothing under budget: the budget fails.
                let measured = (!samples.is_empty()).then(|| percentile(&sorted(b.phase), b.percentile));
                BudgetResult {
                    budget: b.clone(),
                    measured_ms: measured,
                    ok: measured.is_some_and(|m| m <= b.max_ms),
                }
            })
            .collect();
        EndpointReport {
            region: region.into(),
            endpoint: endpoint.into(),
            url: url.into(),
            ok: samples.len(),
            failed: errors.len(),
            first_error: errors.first().cloned(),
            phases,
            budgets,
        }
    }

    pub fn phase(&self, phase: Phase) -> Option<&PhaseStats> {
        self.phases.iter().find(|p| p.phase == phase)
    }

    /// Within every budget and no request failed.
    pub fn passed(&self) -> bool {
        self.failed == 0 && self.budgets.iter().all(|b| b.ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50), 50.0);
        assert_eq!(percentile(&v, 95), 95.0);
        assert_eq!(percentile(&v, 99), 99.0);
        assert_eq!(percentile(&v, 100), 100.0);
        assert_eq!(percentile(&[7.0], 50), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50), 2.0);
    }

    fn sample(total: f64) -> Sample {
        Sample {
            dns: 0.1,
            connect: 0.2,
            ttfb: total - 1.0,
            total,
        }
    }

    #[test]
    fn budgets_pass_and_fail_on_the_named_percentile() {
        let samples: Vec<Sample> = (1..=20).map(|i| sample(f64::from(i))).collect();
        let within = Budget {
            phase: Phase::Total,
            percentile: 95,
            max_ms: 19.0,
        };
        let over = Budget {
            phase: Phase::Total,
            percentile: 95,
            max_ms: 18.9,
        };
        let r = EndpointReport::new("r", "e", "u", &samples, &[], &[within]);
        assert!(r.passed(), "{r:?}");
        let r = EndpointReport::new("r", "e", "u", &samples, &[], &[over]);
        assert!(!r.passed());
        assert_eq!(r.budgets[0].measured_ms, Some(19.0));
    }

    #[test]
    fn failures_fail_the_endpoint_even_within_budget() {
        let samples = vec![sample(2.0)];
        let r = EndpointReport::new("r", "e", "u", &samples, &["HTTP 500".into()], &[]);
        assert!(!r.passed());
        let none = EndpointReport::new(
            "r",
            "e",
            "u",
            &[],
            &["refused".into()],
            &[Budget {
                phase: Phase::Total,
                percentile: 50,
                max_ms: 1e9,
            }],
        );
        assert!(!none.budgets[0].ok);
    }
}
