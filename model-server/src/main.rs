//! The `model-server` CLI: `serve`, `publish`, `alias set`, `openapi`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use model_server::{open_data_dir, publish_dir, router, AppState, Config, Recorded};
use utoipa::OpenApi;

#[derive(Parser)]
#[command(
    name = "model-server",
    version,
    about = "Serves versioned, content-addressed model bundles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry over HTTP until SIGINT/SIGTERM (then finish in-flight requests).
    Serve {
        /// The data directory (registry.sqlite and blobs/).
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Refuse every write (replicas).
        #[arg(long)]
        read_only: bool,
        /// File holding the bearer token for writes (else $MODEL_SERVER_TOKEN; with neither, writes get 401).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// A directory served at `/` (index.html, .wasm as application/wasm, ...).
        #[arg(long = "static")]
        static_dir: Option<PathBuf>,
        /// Largest blob upload, in bytes.
        #[arg(long, default_value_t = 4 << 30)]
        max_blob_bytes: u64,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        json_logs: bool,
    },
    /// Verify a bundle directory, store its files, and record its version (atomically).
    Publish {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// The bundle directory (manifest.json and its files).
        bundle: PathBuf,
        /// Aliases to point at the version once it is recorded (repeatable), e.g. `--alias latest`.
        #[arg(long = "alias")]
        aliases: Vec<String>,
    },
    /// Manage aliases.
    Alias {
        #[command(subcommand)]
        command: AliasCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum AliasCommand {
    /// Point ALIAS of model NAME at VERSION.
    Set {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// Model name.
        name: String,
        /// Alias, e.g. `latest`.
        alias: String,
        /// Version.
        version: String,
    },
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            data,
            addr,
            read_only,
            token_file,
            static_dir,
            max_blob_bytes,
            json_logs,
        } => {
            init_logs(json_logs);
            let token = match token_file {
                Some(f) => Some(
                    std::fs::read_to_string(&f)
                        .with_context(|| format!("reading {}", f.display()))?
                        .trim()
                        .to_owned(),
                ),
                None => std::env::var("MODEL_SERVER_TOKEN")
                    .ok()
                    .map(|t| t.trim().to_owned()),
            }
            .filter(|t| !t.is_empty());
            if !read_only && token.is_none() {
                tracing::warn!(
                    "no token configured (--token-file or MODEL_SERVER_TOKEN): HTTP writes get 401"
                );
            }
            if let Some(d) = &static_dir {
                if !d.is_dir() {
                    bail!("--static {} is not a directory", d.display());
                }
            }
            let (registry, store) = open_data_dir(&data)?;
            let config = Config {
                read_only,
                token,
                static_dir,
                max_blob_bytes,
                ..Config::default()
            };
            let app = router(AppState::new(registry, Arc::new(store), config));
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                tracing::info!(addr = %listener.local_addr()?, read_only, "serving");
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown_signal())
                    .await?;
                anyhow::Ok(())
            })
        }
        Command::Publish {
            data,
            bundle,
            aliases,
        } => {
            let (registry, store) = open_data_dir(&data)?;
            let (m, recorded) = publish_dir(&registry, &store, &bundle, &aliases)
                .with_context(|| format!("publishing {}", bundle.display()))?;
            let what = match recorded {
                Recorded::Created => "published",
                Recorded::Unchanged => "already published (unchanged)",
            };
            println!(
                "{what} {}@{} ({} files, {} bytes)",
                m.name,
                m.version,
                m.files.len(),
                m.total_size()
            );
            for a in &aliases {
                println!("alias {a} -> {}", m.version);
            }
            Ok(())
        }
        Command::Alias {
            command:
                AliasCommand::Set {
                    data,
                    name,
                    alias,
                    version,
                },
        } => {
            let (registry, _store) = open_data_dir(&data)?;
            registry.set_alias(&name, &alias, &version)?;
            println!("{name}: {alias} -> {version}");
            Ok(())
        }
        Command::Openapi => {
            println!("{}", model_server::ApiDoc::openapi().to_pretty_json()?);
            Ok(())
        }
    }
}
