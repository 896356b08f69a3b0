//! The `model-server` CLI: `serve`, `publish`, `alias set`, `openapi`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
        /// Close a connection that has not sent a complete request head within this many seconds
        /// (idle keep-alive connections included).
        #[arg(long, default_value_t = 10)]
        header_read_timeout_secs: u64,
        /// Fail a request (408) whose body stalls for this many seconds between chunks.
        #[arg(long, default_value_t = 30)]
        body_read_timeout_secs: u64,
        /// Most connections open at once; further clients wait in the listen backlog.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
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
            header_read_timeout_secs,
            body_read_timeout_secs,
            max_connections,
        } => {
            akidb_http::init_tracing(json_logs);
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
            let serve = akidb_http::ServeOptions {
                header_read_timeout: Duration::from_secs(header_read_timeout_secs),
                body_read_timeout: Duration::from_secs(body_read_timeout_secs),
                max_connections,
                ..akidb_http::ServeOptions::default()
            };
            let config = Config {
                read_only,
                token,
                static_dir,
                max_blob_bytes,
                serve: serve.clone(),
                ..Config::default()
            };
            let app = router(AppState::new(registry, Arc::new(store), config));
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                tracing::info!(addr = %listener.local_addr()?, read_only, "serving");
                akidb_http::serve(listener, app, serve, akidb_http::shutdown_signal()).await?;
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
