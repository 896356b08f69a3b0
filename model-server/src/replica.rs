//! Read-only replicas: pull the registry snapshot that `latest.json` names, verify it, and swap it in
//! only when every blob of every version it lists is in the replica's own blob store.
//!
//! Files in the replica's data directory:
//!
//! ```text
//! DIR/registry.sqlite   the snapshot being served (read-only, one file: no WAL)
//! DIR/replica.json      which pointer it came from, and when the replica last saw it was current
//! DIR/.pull.tmp         a pull in progress (removed at start: a killed pull leaves nothing else)
//! DIR/replica.lock      held (flock) by the one replica process serving DIR
//! ```
//!
//! A pull: read the pointer → download the snapshot → check its sha256 → decompress to `.pull.tmp`,
//! fsync → `integrity_check` and `foreign_key_check`, generation as the pointer says → every blob
//! present → rename over `registry.sqlite`, fsync the directory → reopen the connection. A failure at any
//! step before the rename changes nothing that is served.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::registry::Registry;
use crate::server::AppState;
use crate::snapshot::{self, Location, Pointer, SnapshotError, POINTER};
use crate::store::{test_pause, BlobHash, BlobStore};

const DB: &str = "registry.sqlite";
const STATE: &str = "replica.json";
const PULL_TMP: &str = ".pull.tmp";
const LOCK: &str = "replica.lock";

/// How long a replica with missing blobs waits before checking again (S3 replication usually lands in
/// seconds), when its poll interval is longer.
pub const MISSING_BLOB_RETRY: Duration = Duration::from_secs(2);

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What a replica serves and how fresh it is (shared with `/readyz` and `/metrics`).
#[derive(Debug)]
pub struct ReplicaStatus {
    source: String,
    max_staleness: Duration,
    state: Mutex<State>,
}

/// A copy of the replica's state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
// Fields added since the first release are absent from older replica.json files.
#[serde(default)]
pub struct State {
    /// The pointer of the snapshot being served; `None` until the first pull completes.
    pub served: Option<Pointer>,
    /// Unix seconds at which the replica last confirmed that the pointer named what it serves.
    pub confirmed_at: Option<i64>,
    /// A newer snapshot held back, and why: the blobs it lists that the store lacks.
    pub pending: Option<Pointer>,
    /// `name@version path (sha256 …)` of each blob the pending snapshot needs and the store lacks.
    pub missing: Vec<String>,
    /// The last pull's error, cleared by the next success.
    pub last_error: Option<String>,
}

impl State {
    /// Seconds since the replica last confirmed it serves the current snapshot; `None` before any.
    pub fn age_secs(&self) -> Option<i64> {
        self.confirmed_at.map(|t| (now_secs() - t).max(0))
    }
}

impl ReplicaStatus {
    /// A status for a replica of `source`, stale after `max_staleness`.
    pub fn new(source: String, max_staleness: Duration, state: State) -> ReplicaStatus {
        ReplicaStatus {
            source,
            max_staleness,
            state: Mutex::new(state),
        }
    }

    /// Where the replica pulls from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// A copy of the current state.
    pub fn state(&self) -> State {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// `Err(reason)` when the replica must not take traffic: it never loaded a snapshot, or the one it
    /// serves has not been confirmed current for longer than the bound.
    pub fn readiness(&self) -> Result<(), String> {
        let st = self.state();
        let detail = |st: &State| {
            let mut d = String::new();
            if let Some(e) = &st.last_error {
                d.push_str(&format!("; last error: {e}"));
            }
            if !st.missing.is_empty() {
                d.push_str(&format!(
                    "; {} blobs missing for generation {}: {}",
                    st.missing.len(),
                    st.pending.as_ref().map_or(0, |p| p.generation),
                    st.missing.join(", ")
                ));
            }
            d
        };
        match (&st.served, st.age_secs()) {
            (None, _) | (_, None) => Err(format!(
                "replica of {} has never loaded a snapshot{}",
                self.source,
                detail(&st)
            )),
            (Some(p), Some(age)) if age as u64 > self.max_staleness.as_secs() => Err(format!(
                "replica snapshot (generation {}) last confirmed current {age} s ago, more than \
                 --max-staleness {} s{}",
                p.generation,
                self.max_staleness.as_secs(),
                detail(&st)
            )),
            _ => Ok(()),
        }
    }
}

/// The replica's Prometheus series, refreshed from its [`ReplicaStatus`] at each scrape.
#[derive(Clone)]
pub struct ReplicaMetrics {
    generation: prometheus::IntGauge,
    age: prometheus::IntGauge,
    loaded: prometheus::IntGauge,
    missing: prometheus::IntGauge,
    last_error: prometheus::IntGaugeVec,
}

impl ReplicaMetrics {
    /// Registers the series in `reg`.
    pub fn register(reg: &prometheus::Registry) -> prometheus::Result<ReplicaMetrics> {
        use prometheus::{IntGauge, IntGaugeVec, Opts};
        let m = ReplicaMetrics {
            generation: IntGauge::new(
                "model_server_snapshot_generation",
                "Registry generation of the snapshot this replica serves (0 before the first).",
            )?,
            age: IntGauge::new(
                "model_server_snapshot_age_seconds",
                "Seconds since this replica last confirmed it serves the snapshot latest.json names \
                 (-1 before the first).",
            )?,
            loaded: IntGauge::new(
                "model_server_snapshot_loaded",
                "1 once this replica serves a pulled snapshot.",
            )?,
            missing: IntGauge::new(
                "model_server_snapshot_missing_blobs",
                "Blobs a newer snapshot lists that this replica's store lacks (the snapshot is held back).",
            )?,
            last_error: IntGaugeVec::new(
                Opts::new(
                    "model_server_snapshot_last_error",
                    "1 with the last pull's error as the label while it stands; no series after a success.",
                ),
                &["error"],
            )?,
        };
        reg.register(Box::new(m.generation.clone()))?;
        reg.register(Box::new(m.age.clone()))?;
        reg.register(Box::new(m.loaded.clone()))?;
        reg.register(Box::new(m.missing.clone()))?;
        reg.register(Box::new(m.last_error.clone()))?;
        Ok(m)
    }

    /// Sets the series from `status`.
    pub fn refresh(&self, status: &ReplicaStatus) {
        let st = status.state();
        self.generation
            .set(st.served.as_ref().map_or(0, |p| p.generation));
        self.age.set(st.age_secs().unwrap_or(-1));
        self.loaded.set(i64::from(st.served.is_some()));
        self.missing.set(st.missing.len() as i64);
        self.last_error.reset();
        if let Some(e) = &st.last_error {
            // Label values are bounded: the error's first 200 characters.
            let e: String = e.chars().take(200).collect();
            self.last_error.with_label_values(&[e.as_str()]).set(1);
        }
    }
}

/// What one pull did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pulled {
    /// The pointer names the snapshot already served.
    Current,
    /// The new snapshot is now served.
    Swapped(Pointer),
    /// The new snapshot is held back: blobs it lists are missing from the store (the count).
    MissingBlobs(usize),
}

/// A replica's data directory, locked for this process.
pub struct ReplicaDir {
    dir: PathBuf,
    _lock: File,
}

impl ReplicaDir {
    /// Creates/opens `dir`, takes its lock (a second replica on the same directory is refused), and
    /// removes a pull left half done by a killed process.
    pub fn open(dir: &Path) -> anyhow::Result<ReplicaDir> {
        use anyhow::Context;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock =
            File::create(dir.join(LOCK)).with_context(|| format!("creating {LOCK} in {}", dir.display()))?;
        if lock.try_lock().is_err() {
            anyhow::bail!("another replica is serving {}", dir.display());
        }
        match std::fs::remove_file(dir.join(PULL_TMP)) {
            Ok(()) => tracing::info!("removed the unfinished pull {PULL_TMP} of a previous run"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("removing a previous pull's temporary file"),
        }
        Ok(ReplicaDir {
            dir: dir.to_owned(),
            _lock: lock,
        })
    }

    /// The registry to serve: the last snapshot swapped in, or an empty in-memory one before the first;
    /// and the recorded state (who it came from, when last confirmed).
    pub fn load(&self) -> anyhow::Result<(Registry, State)> {
        let db = self.dir.join(DB);
        if !db.exists() {
            return Ok((Registry::open(Path::new(":memory:"))?, State::default()));
        }
        let registry = Registry::open_read_only(&db)?;
        let mut state: State = match std::fs::read(self.dir.join(STATE)) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(_) => State::default(),
        };
        // The database is the truth: a pull killed between its rename and this file's update swapped a
        // complete, verified snapshot whose record was not written; the next pull rewrites it.
        let generation = registry.generation()?;
        if state.served.as_ref().is_none_or(|p| p.generation != generation) {
            state.served = Some(Pointer {
                snapshot: String::new(),
                generation,
                created_at: 0,
                size: 0,
                db_size: 0,
            });
            state.confirmed_at = None;
        }
        state.pending = None;
        state.missing.clear();
        state.last_error = None;
        Ok((registry, state))
    }

    fn save_state(&self, state: &State) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{STATE}.tmp"));
        let mut f = File::create(&tmp)?;
        std::io::Write::write_all(
            &mut f,
            &serde_json::to_vec_pretty(state).expect("state serialises"),
        )?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(STATE))?;
        File::open(&self.dir)?.sync_all()
    }
}

/// A replica: its source, directory, and the serving state it swaps snapshots into.
pub struct Replica {
    from: Location,
    dir: ReplicaDir,
    app: AppState,
    status: Arc<ReplicaStatus>,
    /// Blobs seen present in the store (blobs are immutable: once there, always there).
    present: Mutex<HashSet<String>>,
    /// Woken by a push notification from the primary.
    pub wake: Arc<Notify>,
    /// With keys, every version of a snapshot must carry a signature that verifies (issue #19).
    trusted: akidb_core::signing::TrustedKeys,
}

impl Replica {
    /// A replica of `from` in `dir`, swapping into `app`'s registry and reporting in `status`.
    pub fn new(from: Location, dir: ReplicaDir, app: AppState, status: Arc<ReplicaStatus>) -> Replica {
        Replica {
            from,
            dir,
            app,
            status,
            present: Mutex::new(HashSet::new()),
            wake: Arc::new(Notify::new()),
            trusted: akidb_core::signing::TrustedKeys::none(),
        }
    }

    /// Checks signatures with `trusted`: a snapshot holding a version whose recorded signature is missing
    /// or does not verify under them is refused as a whole (never swapped in, the previous one stays
    /// served, the error names the version and the key id), like a corrupt one.
    pub fn with_trusted_keys(mut self, trusted: akidb_core::signing::TrustedKeys) -> Replica {
        self.trusted = trusted;
        self
    }

    /// Pulls once and records the outcome in the status; returns it.
    pub async fn pull(&self) -> Result<Pulled, SnapshotError> {
        let result = self.pull_inner().await;
        let confirm = |s: &mut State| {
            s.confirmed_at = Some(now_secs());
            s.pending = None;
            s.missing.clear();
            s.last_error = None;
        };
        if let Ok(Pulled::Swapped(_)) = &result {
            // On disk before /readyz can say so: a restart right after still knows what it serves.
            let mut st = self.status.state();
            confirm(&mut st);
            if let Err(e) = self.dir.save_state(&st) {
                tracing::warn!(error = %e, "could not record the replica state (the next pull rewrites it)");
            }
        }
        match &result {
            Ok(Pulled::Current) | Ok(Pulled::Swapped(_)) => self.status.update(confirm),
            Ok(Pulled::MissingBlobs(n)) => {
                tracing::warn!(
                    missing = n,
                    "newer snapshot held back: blobs missing from the store"
                );
                self.status.update(|s| s.last_error = None);
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot pull failed; still serving the previous snapshot");
                self.status.update(|s| s.last_error = Some(e.to_string()));
            }
        }
        result
    }

    async fn pull_inner(&self) -> Result<Pulled, SnapshotError> {
        let Some((pointer, _)) = self.from.read_pointer().await? else {
            return Err(SnapshotError::Missing(format!(
                "pointer {}",
                self.from.url_of(POINTER)
            )));
        };
        let served = self.status.state().served;
        if served.as_ref().is_some_and(|s| s.snapshot == pointer.snapshot) {
            return Ok(Pulled::Current);
        }
        let bytes = self.from.fetch_snapshot(&pointer).await?;
        pause("pull-fetched").await;
        let tmp = self.dir.dir.join(PULL_TMP);
        let what = self.from.url_of(&pointer.snapshot_key());
        let store = self.app.store().clone();
        let pointer2 = pointer.clone();
        let present: HashSet<String> = self.present.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let trusted = self.trusted.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let result = unpack_and_check(&bytes, &tmp, &what, &pointer2, store.as_ref(), present, &trusted);
            if !matches!(result, Ok((ref missing, _)) if missing.is_empty()) {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        })
        .await
        .map_err(|e| SnapshotError::Local(format!("pull task: {e}")))??;
        let (missing, now_present) = checked;
        self.present
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(now_present);
        if !missing.is_empty() {
            let n = missing.len();
            self.status.update(|s| {
                s.pending = Some(pointer.clone());
                s.missing = missing;
            });
            return Ok(Pulled::MissingBlobs(n));
        }
        pause("pull-unpacked").await;
        let dir = self.dir.dir.clone();
        let app = self.app.clone();
        let (status, served) = (self.status.clone(), pointer.clone());
        tokio::task::spawn_blocking(move || -> Result<(), SnapshotError> {
            let io = |what: &str, e: std::io::Error| SnapshotError::Local(format!("{what}: {e}"));
            std::fs::rename(dir.join(PULL_TMP), dir.join(DB))
                .map_err(|e| io("swapping the snapshot in", e))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("fsync of the data directory", e))?;
            test_pause("pull-renamed");
            app.registry()
                .replace_with(&dir.join(DB))
                .map_err(|e| SnapshotError::Local(format!("reopening the swapped snapshot: {e}")))?;
            // Recorded on the swapping thread, straight after the reopen: once a listing shows the new
            // snapshot, `/metrics` and `/readyz` name its generation too (recorded after the task was
            // awaited, a scrape could see the new listing with the old generation).
            status.update(|s| s.served = Some(served));
            Ok(())
        })
        .await
        .map_err(|e| SnapshotError::Local(format!("swap task: {e}")))??;
        tracing::info!(generation = pointer.generation, snapshot = %pointer.snapshot, "snapshot swapped in");
        Ok(Pulled::Swapped(pointer))
    }

    /// Pulls now, then every `every` (every [`MISSING_BLOB_RETRY`] while blobs are missing) and whenever
    /// [`Replica::wake`] is notified. Never returns.
    pub async fn run(self: Arc<Self>, every: Duration) {
        loop {
            let wait = match self.pull().await {
                Ok(Pulled::MissingBlobs(_)) | Err(_) => every.min(MISSING_BLOB_RETRY),
                _ => every,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

/// A test pause point ([`test_pause`]) off the runtime's threads: a paused pull must not stall the server.
async fn pause(point: &'static str) {
    if cfg!(feature = "test-hooks") {
        let _ = tokio::task::spawn_blocking(move || test_pause(point)).await;
    }
}

/// Decompresses the snapshot into `tmp`, checks it as a registry (integrity, foreign keys, generation),
/// and lists the blobs its versions need that `store` lacks. Returns (missing, blobs seen present).
fn unpack_and_check(
    bytes: &[u8],
    tmp: &Path,
    what: &str,
    pointer: &Pointer,
    store: &dyn BlobStore,
    mut present: HashSet<String>,
    trusted: &akidb_core::signing::TrustedKeys,
) -> Result<(Vec<String>, HashSet<String>), SnapshotError> {
    snapshot::unpack(bytes, tmp, what)?;
    let corrupt = |m: String| SnapshotError::Corrupt(format!("snapshot {what} {m}"));
    let reg =
        Registry::open_read_only(tmp).map_err(|e| corrupt(format!("is not a registry database: {e}")))?;
    let integrity = reg
        .integrity_check()
        .map_err(|e| corrupt(format!("cannot be checked: {e}")))?;
    if integrity != "ok" {
        return Err(corrupt(format!("fails its integrity check: {integrity}")));
    }
    let generation = reg
        .generation()
        .map_err(|e| corrupt(format!("has no generation: {e}")))?;
    if generation != pointer.generation {
        return Err(corrupt(format!(
            "holds generation {generation}, but the pointer says {}",
            pointer.generation
        )));
    }
    let models = reg
        .models()
        .map_err(|e| corrupt(format!("cannot be read: {e}")))?;
    let mut missing = Vec::new();
    for m in &models {
        for v in &m.versions {
            let manifest = akidb_core::Manifest::from_json(&v.manifest)
                .map_err(|e| corrupt(format!("holds a bad manifest for {}@{}: {e}", m.name, v.version)))?;
            if !trusted.is_empty() {
                let signature = reg
                    .signature(&v.manifest_sha256)
                    .map_err(|e| corrupt(format!("cannot be read: {e}")))?;
                let name = format!("{}@{}", m.name, v.version);
                trusted
                    .verify_manifest(&v.manifest, signature.as_ref().map(|(_, b)| b.as_slice()), &name)
                    .map_err(|e| SnapshotError::Corrupt(format!("{e} (in snapshot {what})")))?;
            }
            let needed = std::iter::once((
                "manifest.json".to_owned(),
                v.manifest_sha256.clone(),
                v.manifest.len() as u64,
            ))
            .chain(
                manifest
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), f.sha256.clone(), f.size)),
            );
            for (path, sha, size) in needed {
                if present.contains(&sha) {
                    continue;
                }
                let hash =
                    BlobHash::parse(&sha).ok_or_else(|| corrupt(format!("lists `{sha}`, not a sha256")))?;
                match store.size(&hash) {
                    Ok(Some(s)) if s == size => {
                        present.insert(sha);
                    }
                    Ok(_) => missing.push(format!("{}@{} {path} (sha256 {sha})", m.name, v.version)),
                    Err(e) => {
                        return Err(SnapshotError::Local(format!(
                            "checking blob {sha} in the store: {e}"
                        )))
                    }
                }
            }
        }
    }
    Ok((missing, present))
}

/// Listens to the primary's `GET /v1/registry/events` (server-sent events, bearer `token`) and wakes the
/// replica on every announcement; reconnects after a second when the stream ends or fails. Never returns.
pub async fn follow_primary(primary: String, token: Option<String>, wake: Arc<Notify>) {
    let url = format!("{}/v1/registry/events", primary.trim_end_matches('/'));
    crate::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client builds");
    loop {
        let mut req = client.get(&url).header("accept", "text/event-stream");
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(mut res) if res.status().is_success() => {
                tracing::info!(%url, "following the primary's registry events");
                let mut line = Vec::new();
                loop {
                    match res.chunk().await {
                        Ok(Some(chunk)) => {
                            for &b in chunk.iter() {
                                if b == b'\n' {
                                    if line.starts_with(b"data:") {
                                        wake.notify_one();
                                    }
                                    line.clear();
                                } else {
                                    line.push(b);
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(%url, error = %e, "registry events stream failed");
                            break;
                        }
                    }
                }
            }
            Ok(res) => tracing::warn!(%url, status = %res.status(), "registry events refused"),
            Err(e) => tracing::warn!(%url, error = %e, "registry events: cannot connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
