//! The `model-server` CLI: `serve`, `publish`, `alias set`, `snapshot push`, `replica`, `openapi`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use model_server::publish::publish_dir_signed;
use model_server::{open_data_dir, router, AppState, Config, Recorded};
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
        /// Where blobs live: `s3://BUCKET/PREFIX` (endpoint, region and credentials from the AWS_*
        /// variables or the --s3-* flags), or a directory; default: DATA/blobs.
        #[arg(long, value_name = "S3_URL|DIR")]
        store: Option<String>,
        #[command(flatten)]
        s3: S3Args,
        /// Push a registry snapshot to this s3://bucket/prefix at start and after every publish or alias
        /// move (checked every 100 ms), then announce it at `GET /v1/registry/events`.
        #[arg(long, value_name = "S3_URL")]
        snapshot_to: Option<String>,
        /// Trusted public keys (akidb-core's trust list: `{"keys":[{"key_id","public_key"}, …]}`): every
        /// HTTP publish must then carry a signature by one of them (`Akidb-Signature` header).
        #[arg(long, value_name = "FILE")]
        trusted_keys: Option<PathBuf>,
    },
    /// Registry snapshots in S3.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Serve a read-only replica of the registry snapshots at --from (writes get 403).
    Replica {
        /// Where the primary pushes snapshots: s3://bucket/prefix.
        #[arg(long, value_name = "S3_URL")]
        from: String,
        /// The replica's data directory (the swapped-in registry.sqlite, replica.json).
        #[arg(long)]
        data: PathBuf,
        /// The blob store to serve, which blob replication fills: a directory, or `s3://BUCKET/PREFIX`
        /// (the region's bucket; endpoint, region and credentials as for `serve --store`); default
        /// DATA/blobs. A version is listed only once every blob it names is here.
        #[arg(long, value_name = "DIR|S3_URL")]
        store: Option<String>,
        #[command(flatten)]
        s3: S3Args,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// How often to poll latest.json (e.g. 30s, 5m).
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        every: Duration,
        /// /readyz answers 503 once the snapshot has not been confirmed current for this long.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        max_staleness: Duration,
        /// The primary's URL: follow its `/v1/registry/events` and pull at once on each announcement.
        #[arg(long)]
        primary: Option<String>,
        /// File holding the primary's bearer token (else $MODEL_SERVER_TOKEN).
        #[arg(long)]
        primary_token_file: Option<PathBuf>,
        /// Trusted public keys: a snapshot holding a version whose signature is missing or does not verify
        /// under them is not swapped in.
        #[arg(long, value_name = "FILE")]
        trusted_keys: Option<PathBuf>,
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
        /// Trusted public keys: the bundle's manifest.json.sig must then verify under one of them.
        #[arg(long, value_name = "FILE")]
        trusted_keys: Option<PathBuf>,
        /// Where blobs live: `s3://BUCKET/PREFIX` (endpoint, region and credentials from the AWS_*
        /// variables or the --s3-* flags), or a directory; default: DATA/blobs.
        #[arg(long, value_name = "S3_URL|DIR")]
        store: Option<String>,
        #[command(flatten)]
        s3: S3Args,
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
enum SnapshotCommand {
    /// Snapshot the registry (consistent while it serves), upload it and move latest.json.
    Push {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// s3://bucket/prefix.
        #[arg(long, value_name = "S3_URL")]
        to: String,
        /// Push again at this interval (e.g. 5m) until stopped; a failed push is reported and retried.
        #[arg(long, value_parser = parse_duration)]
        every: Option<Duration>,
    },
}

/// `500ms`, `30s`, `5m`, `1h`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 30s, 5m, 1h)"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("`{s}`: unit must be ms, s, m or h")),
    })
}

/// The keys of `--trusted-keys FILE` (an empty list refused), logged by id; none without the flag.
fn read_trusted_keys(file: Option<&std::path::Path>) -> anyhow::Result<akidb_core::signing::TrustedKeys> {
    let Some(file) = file else {
        return Ok(akidb_core::signing::TrustedKeys::none());
    };
    let keys = model_server::publish::read_trusted_keys(file)?;
    tracing::info!(keys = ?keys.key_ids(), "manifest signatures are checked");
    Ok(keys)
}

fn read_token(file: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    Ok(match file {
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
    .filter(|t| !t.is_empty()))
}

/// How to reach the bucket of `--store s3://...`. Credentials come from the environment only
/// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), never from flags, which `ps` shows.
#[derive(clap::Args)]
struct S3Args {
    /// An S3-compatible endpoint, e.g. http://127.0.0.1:9000 (else $AWS_ENDPOINT_URL, else AWS's own).
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// The bucket's region (else $AWS_REGION or $AWS_DEFAULT_REGION).
    #[arg(long)]
    s3_region: Option<String>,
    /// Allow a plain http:// endpoint, e.g. a loopback emulator (else $AWS_ALLOW_HTTP).
    #[arg(long)]
    s3_allow_http: bool,
}

/// The blob store `spec` names: `s3://BUCKET/PREFIX` (reached as `s3` says), a directory, or
/// `default_dir` without one.
fn open_blob_store(
    spec: Option<&str>,
    default_dir: PathBuf,
    s3: &S3Args,
) -> anyhow::Result<Arc<dyn model_server::BlobStore>> {
    match spec {
        Some(url) if url.starts_with("s3://") => {
            let options = model_server::S3Options {
                endpoint: s3.s3_endpoint.clone(),
                region: s3.s3_region.clone(),
                allow_http: s3.s3_allow_http.then_some(true),
                ..model_server::S3Options::default()
            };
            let store = model_server::S3BlobStore::open(url, &options)
                .with_context(|| format!("opening the blob store {url}"))?;
            Ok(Arc::new(store))
        }
        // A typo such as `S3://` or `s3:/` must not quietly become a local directory of that name.
        Some(url) if url.contains(":/") => {
            anyhow::bail!("unsupported blob store `{url}`: give a directory or s3://BUCKET/PREFIX")
        }
        _ => {
            let dir = spec.map(PathBuf::from).unwrap_or(default_dir);
            let store = model_server::LocalBlobStore::open(&dir)
                .with_context(|| format!("opening the blob store {}", dir.display()))?;
            Ok(Arc::new(store))
        }
    }
}

/// The registry in `data` (created if absent) and the blob store `store` names (see
/// [`open_blob_store`]), `data/blobs` by default.
fn open_stores(
    data: &std::path::Path,
    store: Option<&str>,
    s3: &S3Args,
) -> anyhow::Result<(model_server::Registry, Arc<dyn model_server::BlobStore>)> {
    // The store first: a store that is refused (a typo, a missing bucket) leaves no data directory behind.
    let store = open_blob_store(store, data.join("blobs"), s3)?;
    let open = || -> anyhow::Result<model_server::Registry> {
        std::fs::create_dir_all(data)?;
        Ok(model_server::Registry::open(&data.join("registry.sqlite"))?)
    };
    let registry = open().with_context(|| format!("opening the registry in {}", data.display()))?;
    Ok((registry, store))
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
            store,
            s3,
            snapshot_to,
            trusted_keys,
        } => {
            akidb_http::init_tracing(json_logs);
            let token = read_token(token_file)?;
            let trusted_keys = read_trusted_keys(trusted_keys.as_deref())?;
            let snapshot_to = snapshot_to
                .map(|u| model_server::snapshot::Location::parse(&u))
                .transpose()?;
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
            let (registry, store) = open_stores(&data, store.as_deref(), &s3)?;
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
                trusted_keys,
                ..Config::default()
            };
            let state = AppState::new(registry, store, config);
            let app = router(state.clone());
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                if let Some(to) = snapshot_to {
                    tokio::spawn(model_server::snapshot::push_on_change(state, to, data.clone()));
                }
                tracing::info!(addr = %listener.local_addr()?, read_only, "serving");
                akidb_http::serve(listener, app, serve, akidb_http::shutdown_signal()).await?;
                anyhow::Ok(())
            })
        }
        Command::Publish {
            data,
            bundle,
            aliases,
            store,
            s3,
            trusted_keys,
        } => {
            let trusted = read_trusted_keys(trusted_keys.as_deref())?;
            let (registry, store) = open_stores(&data, store.as_deref(), &s3)?;
            let (m, recorded, key_id) =
                publish_dir_signed(&registry, store.as_ref(), &bundle, &aliases, &trusted)
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
            match (key_id, trusted.is_empty()) {
                (Some(id), false) => println!("signed by key {id} (verified)"),
                (Some(id), true) => println!("signed by key {id} (recorded as given: no --trusted-keys)"),
                (None, _) => println!("unsigned"),
            }
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
        Command::Snapshot {
            command: SnapshotCommand::Push { data, to, every },
        } => {
            use model_server::snapshot::{self, Pushed};
            akidb_http::init_tracing(false);
            let to = snapshot::Location::parse(&to)?;
            let (registry, _store) = open_data_dir(&data)?;
            let registry = Arc::new(registry);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                loop {
                    let started = std::time::Instant::now();
                    let (reg, dir) = (registry.clone(), data.clone());
                    let result = snapshot::push(&to, move || snapshot::prepare(&reg, &dir)).await;
                    let ms = started.elapsed().as_millis();
                    match (&result, every) {
                        (Ok(Pushed::Moved(p)), _) => println!(
                            "pushed generation {} as {} ({} bytes, {} bytes uncompressed) in {ms} ms",
                            p.generation,
                            to.url_of(&p.snapshot_key()),
                            p.size,
                            p.db_size
                        ),
                        (Ok(Pushed::Unchanged(p)), _) => println!(
                            "unchanged: {} already names generation {} ({})",
                            to.url_of(snapshot::POINTER),
                            p.generation,
                            p.snapshot
                        ),
                        (Err(e), Some(_)) => {
                            eprintln!("snapshot push failed (retrying at the next interval): {e}")
                        }
                        (Err(_), None) => {}
                    }
                    match every {
                        Some(every) => tokio::time::sleep(every).await,
                        None => return result.map(|_| ()).map_err(anyhow::Error::from),
                    }
                }
            })
        }
        Command::Replica {
            from,
            data,
            store,
            s3,
            addr,
            every,
            max_staleness,
            primary,
            primary_token_file,
            json_logs,
            trusted_keys,
        } => {
            use model_server::replica::{follow_primary, Replica, ReplicaDir, ReplicaStatus};
            akidb_http::init_tracing(json_logs);
            let location = model_server::snapshot::Location::parse(&from)?;
            let token = read_token(primary_token_file)?;
            let trusted_keys = read_trusted_keys(trusted_keys.as_deref())?;
            let dir = ReplicaDir::open(&data)?;
            let (registry, state) = dir.load()?;
            let blobs = open_blob_store(store.as_deref(), data.join("blobs"), &s3)?;
            let status = Arc::new(ReplicaStatus::new(location.url_of(""), max_staleness, state));
            let serve = akidb_http::ServeOptions::default();
            let config = Config {
                read_only: true,
                replica: Some(status.clone()),
                serve: serve.clone(),
                ..Config::default()
            };
            let state = AppState::new(registry, blobs, config);
            let app = router(state.clone());
            let replica =
                Arc::new(Replica::new(location, dir, state, status).with_trusted_keys(trusted_keys));
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                if let Some(primary) = primary {
                    tokio::spawn(follow_primary(primary, token, replica.wake.clone()));
                }
                tokio::spawn(replica.run(every));
                tracing::info!(addr = %listener.local_addr()?, %from, "serving a replica");
                akidb_http::serve(listener, app, serve, akidb_http::shutdown_signal()).await?;
                anyhow::Ok(())
            })
        }
        Command::Openapi => {
            println!("{}", model_server::ApiDoc::openapi().to_pretty_json()?);
            Ok(())
        }
    }
}
