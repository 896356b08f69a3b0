//! The probe's outputs: a text table, a JSON document and an SVG chart.

use std::fmt::Write as _;

use serde_json::json;

use crate::config::Phase;
use crate::stats::EndpointReport;

pub fn table(reports: &[EndpointReport]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "{:<16} {:<12} {:>4} {:>4}  {:>22}  {:>22}  {:>22}  {:>22}  budgets",
        "region",
        "endpoint",
        "ok",
        "fail",
        "dns p50/p95/p99 ms",
        "connect p50/p95/p99",
        "ttfb p50/p95/p99",
        "total p50/p95/p99",
    )
    .unwrap();
    for r in reports {
        let cell = |phase: Phase| {
            r.phase(phase).map_or("-".to_string(), |p| {
                format!("{:.1}/{:.1}/{:.1}", p.p50_ms, p.p95_ms, p.p99_ms)
            })
        };
        let budgets: Vec<String> = r
            .budgets
            .iter()
            .map(|b| {
                format!(
                    "{} p{} {} <= {} {}",
                    b.budget.phase.name(),
                    b.budget.percentile,
                    b.measured_ms.map_or("-".into(), |m| format!("{m:.1}")),
                    b.budget.max_ms,
                    if b.ok { "ok" } else { "EXCEEDED" }
                )
            })
            .collect();
        writeln!(
            out,
            "{:<16} {:<12} {:>4} {:>4}  {:>22}  {:>22}  {:>22}  {:>22}  {}",
            r.region,
            r.endpoint,
            r.ok,
            r.failed,
            cell(Phase::Dns),
            cell(Phase::Connect),
            cell(Phase::Ttfb),
            cell(Phase::Total),
            budgets.join("; ")
        )
        .unwrap();
        if let Some(e) = &r.first_error {
            writeln!(out, "    first error: {e}").unwrap();
        }
    }
    out
}

pub fn json(from: &str, requests: usize, warmup: usize, reports: &[EndpointReport]) -> serde_json::Value {
    json!({
        "from": from,
        "requests": requests,
        "warmup": warmup,
        "passed": reports.iter().all(EndpointReport::passed),
        "results": reports,
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars of total-time p50, p95 and p99 for each region and endpoint, with each endpoint's
/// tightest total budget drawn as a red tick.
pub fn svg(from: &str, reports: &[EndpointReport]) -> String {
    const LABEL_W: f64 = 260.0;
    const PLOT_W: f64 = 600.0;
    const ROW_H: f64 = 30.0;
    const TOP: f64 = 50.0;
    let colours = [("p50", "#4c78a8"), ("p95", "#f58518"), ("p99", "#b279a2")];
    let budget_of = |r: &EndpointReport| {
        r.budgets
            .iter()
            .filter(|b| b.budget.phase == Phase::Total)
            .map(|b| b.budget.max_ms)
            .fold(None, |acc: Option<f64>, m| Some(acc.map_or(m, |a| a.min(m))))
    };
    let scale_max = reports
        .iter()
        .flat_map(|r| {
            r.phase(Phase::Total)
                .map(|p| p.p99_ms)
                .into_iter()
                .chain(budget_of(r))
        })
        .fold(1.0_f64, f64::max)
        * 1.1;
    let x = |ms: f64| LABEL_W + ms / scale_max * PLOT_W;
    let height = TOP + ROW_H * reports.len() as f64 + 40.0;
    let mut s = String::new();
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">"#,
        w = LABEL_W + PLOT_W + 40.0
    )
    .unwrap();
    writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#).unwrap();
    writeln!(
        s,
        r#"<text x="10" y="20" font-size="14">Total time per request, ms, from {}</text>"#,
        escape(from)
    )
    .unwrap();
    for (i, (name, colour)) in colours.iter().enumerate() {
        let lx = LABEL_W + i as f64 * 70.0;
        writeln!(s, r#"<rect x="{lx}" y="30" width="10" height="10" fill="{colour}"/><text x="{}" y="39">{name}</text>"#, lx + 14.0).unwrap();
    }
    writeln!(s, r#"<line x1="{lx}" y1="35" x2="{lx}" y2="45" stroke="red" stroke-width="2"/><text x="{tx}" y="39">budget</text>"#, lx = LABEL_W + 215.0, tx = LABEL_W + 220.0).unwrap();
    for (row, r) in reports.iter().enumerate() {
        let y = TOP + row as f64 * ROW_H;
        writeln!(
            s,
            r#"<text x="10" y="{}">{} / {}</text>"#,
            y + 18.0,
            escape(&r.region),
            escape(&r.endpoint)
        )
        .unwrap();
        if let Some(p) = r.phase(Phase::Total) {
            for (i, (v, (_, colour))) in [p.p50_ms, p.p95_ms, p.p99_ms].iter().zip(colours).enumerate() {
                writeln!(
                    s,
                    r#"<rect x="{LABEL_W}" y="{}" width="{:.1}" height="7" fill="{colour}"><title>{:.2} ms</title></rect>"#,
                    y + 4.0 + i as f64 * 8.0,
                    x(*v) - LABEL_W,
                    v
                )
                .unwrap();
            }
            writeln!(
                s,
                r#"<text x="{:.1}" y="{}">{:.1}</text>"#,
                x(p.p99_ms) + 4.0,
                y + 26.0,
                p.p99_ms
            )
            .unwrap();
        } else {
            writeln!(
                s,
                r#"<text x="{LABEL_W}" y="{}" fill="red">no successful request</text>"#,
                y + 18.0
            )
            .unwrap();
        }
        if let Some(b) = budget_of(r) {
            writeln!(
                s,
                r#"<line x1="{bx:.1}" y1="{}" x2="{bx:.1}" y2="{}" stroke="red" stroke-width="2"/>"#,
                y + 2.0,
                y + 28.0,
                bx = x(b)
            )
            .unwrap();
        }
    }
    let axis_y = TOP + ROW_H * reports.len() as f64 + 5.0;
    writeln!(
        s,
        r##"<line x1="{LABEL_W}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#333"/>"##,
        LABEL_W + PLOT_W
    )
    .unwrap();
    for i in 0..=5 {
        let ms = scale_max * f64::from(i) / 5.0;
        writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{ms:.0}</text>"#,
            x(ms),
            axis_y + 15.0
        )
        .unwrap();
    }
    s.push_str("</svg>\n");
    s
}
