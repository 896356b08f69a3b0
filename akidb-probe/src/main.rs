//! `akidb-probe`: measures, from where it runs, each region's endpoints (DNS, connect, time to first byte,
//! total) over N requests after a warm-up, prints P50/P95/P99 per region and endpoint, and exits 2 when a
//! budget is exceeded or a request failed.

mod config;
mod measure;
mod report;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use config::Config;
use measure::Target;
use stats::EndpointReport;

#[derive(Parser)]
#[command(name = "akidb-probe", version, about)]
struct Args {
    /// Config file (JSON): regions, endpoints, budgets.
    #[arg(long)]
    config: PathBuf,
    /// Override the config's measured requests per endpoint.
    #[arg(long)]
    requests: Option<usize>,
    /// Override the config's warm-up requests per endpoint.
    #[arg(long)]
    warmup: Option<usize>,
    /// Only these regions (repeatable).
    #[arg(long = "region")]
    regions: Vec<String>,
    /// Where the probe runs, recorded in the report (such as the AWS region it runs in).
    #[arg(long, default_value = "unknown")]
    from: String,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Write an SVG chart of total-time percentiles here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Only validate the config (every URL, method and budget) and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("akidb-probe: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<bool> {
    let mut config = Config::load(&args.config)?;
    if let Some(n) = args.requests {
        config.requests = n;
    }
    if let Some(n) = args.warmup {
        config.warmup = n;
    }
    config.validate()?;
    if args.check {
        let endpoints: usize = config.regions.iter().map(|r| r.endpoints.len()).sum();
        println!(
            "{}: {} regions, {endpoints} endpoints: valid",
            args.config.display(),
            config.regions.len()
        );
        return Ok(true);
    }
    if !args.regions.is_empty() {
        for wanted in &args.regions {
            anyhow::ensure!(
                config.regions.iter().any(|r| &r.name == wanted),
                "region {wanted} is not in the config"
            );
        }
        config.regions.retain(|r| args.regions.contains(&r.name));
    }
    // One thread: requests go one at a time, so a second thread would only add scheduling noise.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reports = runtime.block_on(probe_all(&config));
    let doc = report::json(&args.from, config.requests, config.warmup, &reports);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", report::table(&reports));
    }
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, report::svg(&args.from, &reports))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let passed = reports.iter().all(EndpointReport::passed);
    if !passed {
        eprintln!("akidb-probe: a budget was exceeded or a request failed");
    }
    Ok(passed)
}

async fn probe_all(config: &Config) -> Vec<EndpointReport> {
    let timeout = Duration::from_millis(config.timeout_ms);
    let mut reports = Vec::new();
    for region in &config.regions {
        for endpoint in &region.endpoints {
            let target = Target::parse(endpoint).expect("validated with the config");
            for _ in 0..config.warmup {
                // Warm-up failures show up again in the measured requests; they are not counted twice.
                let _ = measure::request_once(&target, timeout).await;
            }
            let mut samples = Vec::with_capacity(config.requests);
            let mut errors = Vec::new();
            for _ in 0..config.requests {
                match measure::request_once(&target, timeout).await {
                    Ok(s) => samples.push(s),
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
            let budgets: Vec<_> = config.budgets.iter().chain(&endpoint.budgets).cloned().collect();
            reports.push(EndpointReport::new(
                &region.name,
                &endpoint.name,
                &endpoint.url,
                &samples,
                &errors,
                &budgets,
            ));
        }
    }
    reports
}
