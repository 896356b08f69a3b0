//! Registry metadata in SQLite (WAL): models, versions (with their exact manifest bytes), files and aliases.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use akidb_core::Manifest;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// Registry errors.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// `name@version` exists with a different manifest.
    #[error("{name}@{version} is already published with different content")]
    Conflict {
        /// Model name.
        name: String,
        /// Version.
        version: String,
    },
    /// A name, version or alias that is not allowed (see [`valid_name`]) or that clashes.
    #[error("{0}")]
    Invalid(String),
    /// The model or version does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// SQLite failed.
    #[error("registry database error: {0}")]
    Db(#[from] rusqlite::Error),
}

/// Model names, versions and aliases: 1–128 characters from `A-Z a-z 0-9 . _ -`, not starting with `.`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The one name a version cannot have: `/v1/models/{name}/aliases/...` is the alias route.
pub const RESERVED_VERSION: &str = "aliases";

/// Refuses a model name or version that [`valid_name`] rejects, and the reserved version
/// [`RESERVED_VERSION`].
pub fn check_version_names(name: &str, version: &str) -> Result<(), RegistryError> {
    for (what, s) in [("model name", name), ("version", version)] {
        if !valid_name(s) {
            return Err(RegistryError::Invalid(format!(
                "{what} `{}` is not allowed (1-128 of A-Z a-z 0-9 . _ -, not starting with '.')",
                s.escape_debug()
            )));
        }
    }
    if version == RESERVED_VERSION {
        return Err(RegistryError::Invalid(format!(
            "`{RESERVED_VERSION}` is reserved and cannot be a version"
        )));
    }
    Ok(())
}

/// One published version.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionRecord {
    /// Model name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The manifest exactly as published.
    pub manifest: Vec<u8>,
    /// sha256 of `manifest`.
    pub manifest_sha256: String,
    /// Sum of the file sizes.
    pub total_size: u64,
    /// Unix seconds.
    pub published_at: i64,
}

/// What recording a version did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The version is new.
    Created,
    /// The same manifest bytes were already recorded; nothing changed.
    Unchanged,
}

/// A model with its versions and aliases.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelRecord {
    /// Model name.
    pub name: String,
    /// Versions, oldest first.
    pub versions: Vec<VersionRecord>,
    /// `(alias, version)` pairs, sorted by alias.
    pub aliases: Vec<(String, String)>,
}

/// The SQLite registry. One connection behind a mutex: every statement is a few microseconds.
pub struct Registry {
    conn: Mutex<Connection>,
    /// Bumped each time [`Registry::replace_with`] swaps the database underneath (a replica's pull), so
    /// anything cached against a generation of the old database is dropped even if the new one carries the
    /// same generation number.
    epoch: AtomicU64,
}

/// Where a cached answer comes from: the database opened ([`Registry::replace_with`] count) and its
/// registry generation. Anything read from the registry stays valid while this is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// How many times the database was swapped.
    pub epoch: u64,
    /// The registry generation (see [`Registry::generation`]).
    pub generation: i64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS models (
    name        TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    model            TEXT NOT NULL REFERENCES models(name),
    version          TEXT NOT NULL,
    manifest         BLOB NOT NULL,
    manifest_sha256  TEXT NOT NULL,
    total_size       INTEGER NOT NULL,
    published_at     INTEGER NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE TABLE IF NOT EXISTS files (
    model    TEXT NOT NULL,
    version  TEXT NOT NULL,
    path     TEXT NOT NULL,
    role     TEXT NOT NULL,
    size     INTEGER NOT NULL,
    sha256   TEXT NOT NULL,
    PRIMARY KEY (model, version, path),
    FOREIGN KEY (model, version) REFERENCES versions(model, version)
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files(sha256);
CREATE TABLE IF NOT EXISTS aliases (
    model       TEXT NOT NULL,
    alias       TEXT NOT NULL,
    version     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES versions(model, version)
);
-- The registry generation: bumped by every transaction that records a version or moves an alias, so a
-- snapshot, a replica and a cache can tell which state of the registry they hold.
CREATE TABLE IF NOT EXISTS meta (
    key    TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0);
";

const BUMP_GENERATION: &str = "UPDATE meta SET value = value + 1 WHERE key = 'generation'";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn version_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRecord> {
    Ok(VersionRecord {
        name: row.get(0)?,
        version: row.get(1)?,
        manifest: row.get(2)?,
        manifest_sha256: row.get(3)?,
        total_size: row.get::<_, i64>(4)? as u64,
        published_at: row.get(5)?,
    })
}

const VERSION_COLS: &str = "model, version, manifest, manifest_sha256, total_size, published_at";

impl Registry {
    /// Opens (creating if needed) the registry database at `path`, in WAL mode with foreign keys on.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        debug_assert!(mode.eq_ignore_ascii_case("wal") || path.as_os_str() == ":memory:");
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(SIGNATURE_SCHEMA)?;
        Ok(Registry {
            conn: Mutex::new(conn),
            epoch: AtomicU64::new(0),
        })
    }

    /// Opens a registry database read-only (a replica's snapshot): no schema changes, no WAL files; every
    /// write fails. The file must be a registry (it has the generation table).
    pub fn open_read_only(path: &Path) -> Result<Registry, RegistryError> {
        let conn = open_read_only_conn(path)?;
        Ok(Registry {
            conn: Mutex::new(conn),
            epoch: AtomicU64::new(0),
        })
    }

    /// Swaps in the database at `path` (opened read-only) in place of the current one: requests already
    /// holding the connection finish on the old database, every later one reads the new. Fails, changing
    /// nothing, when `path` does not open as a registry.
    pub fn replace_with(&self, path: &Path) -> Result<(), RegistryError> {
        let conn = open_read_only_conn(path)?;
        let mut current = self.conn();
        *current = conn;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// The registry generation: 0 for a new registry, then one more for every transaction that recorded a
    /// version or moved an alias.
    pub fn generation(&self) -> Result<i64, RegistryError> {
        Ok(generation_of(&self.conn())?)
    }

    /// The current [`CacheKey`] if the connection is free right now, else `None` (never waits: callers on
    /// an async thread fall back to the blocking path).
    pub fn try_cache_key(&self) -> Option<CacheKey> {
        let conn = self.conn.try_lock().ok()?;
        let generation = generation_of(&conn).ok()?;
        Some(CacheKey {
            epoch: self.epoch.load(Ordering::SeqCst),
            generation,
        })
    }

    /// The current [`CacheKey`], waiting for the connection.
    pub fn cache_key(&self) -> Result<CacheKey, RegistryError> {
        let conn = self.conn();
        Ok(CacheKey {
            epoch: self.epoch.load(Ordering::SeqCst),
            generation: generation_of(&conn)?,
        })
    }

    /// Writes a consistent copy of the database to `dest` (which must not exist) with `VACUUM INTO`: one
    /// read transaction, so writers carry on and the copy holds exactly one generation.
    pub fn vacuum_into(&self, dest: &Path) -> Result<(), RegistryError> {
        let dest = dest
            .to_str()
            .ok_or_else(|| RegistryError::Invalid(format!("{} is not a UTF-8 path", dest.display())))?;
        self.conn().execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the database answers (for `/readyz`).
    pub fn check(&self) -> Result<(), RegistryError> {
        self.conn()
            .query_row("SELECT count(*) FROM models", [], |_| Ok(()))?;
        Ok(())
    }

    /// SQLite's `integrity_check` plus `foreign_key_check`: `"ok"` when the database is sound and every file
    /// and alias refers to a recorded version.
    pub fn integrity_check(&self) -> Result<String, RegistryError> {
        let conn = self.conn();
        let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if integrity != "ok" {
            return Ok(integrity);
        }
        let mut st = conn.prepare("PRAGMA foreign_key_check")?;
        let violations = st.query_map([], |r| r.get::<_, String>(0))?.count();
        Ok(if violations == 0 {
            "ok".into()
        } else {
            format!("{violations} foreign key violations")
        })
    }

    /// Records a version and sets `aliases` to it, all in one transaction. Call only once every blob the
    /// manifest lists (and the manifest itself) is durable in the blob store.
    pub fn record_version(
        &self,
        manifest: &Manifest,
        manifest_bytes: &[u8],
        aliases: &[String],
    ) -> Result<Recorded, RegistryError> {
        self.record_version_signed(manifest, manifest_bytes, aliases, None)
    }

    /// [`Registry::record_version`], and `signature` (`(key_id, bytes of manifest.json.sig)`) recorded for
    /// the manifest in the same transaction: a version is never visible without the signature it was
    /// published with. A new signature for an unchanged manifest (re-signed after a key rotation) replaces
    /// the old one; `None` leaves any recorded signature as it is.
    pub fn record_version_signed(
        &self,
        manifest: &Manifest,
        manifest_bytes: &[u8],
        aliases: &[String],
        signature: Option<(&str, &[u8])>,
    ) -> Result<Recorded, RegistryError> {
        let (name, version) = (&manifest.name, &manifest.version);
        check_version_names(name, version)?;
        let sha = akidb_core::sha256_hex(manifest_bytes);
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT manifest_sha256 FROM versions WHERE model = ?1 AND version = ?2",
                params![name, version],
                |r| r.get(0),
            )
            .optional()?;
        let recorded = match existing {
            Some(s) if s == sha => Recorded::Unchanged,
            Some(_) => {
                return Err(RegistryError::Conflict {
                    name: name.clone(),
                    version: version.clone(),
                })
            }
            None => {
                let clash: bool = tx.query_row(
                    "SELECT EXISTS(SELECT 1 FROM aliases WHERE model = ?1 AND alias = ?2)",
                    params![name, version],
                    |r| r.get(0),
                )?;
                if clash {
                    return Err(RegistryError::Invalid(format!(
                        "`{version}` is an alias of {name}; a version cannot have an alias's name"
                    )));
                }
                let t = now();
                tx.execute(
                    "INSERT OR IGNORE INTO models (name, created_at) VALUES (?1, ?2)",
                    params![name, t],
                )?;
                tx.execute(
                    "INSERT INTO versions (model, version, manifest, manifest_sha256, total_size, published_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![name, version, manifest_bytes, sha, manifest.total_size() as i64, t],
                )?;
                for f in &manifest.files {
                    let role = serde_json::to_value(f.role)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    tx.execute(
                        "INSERT INTO files (model, version, path, role, size, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![name, version, f.path, role, f.size as i64, f.sha256],
                    )?;
                }
                Recorded::Created
            }
        };
        for alias in aliases {
            set_alias_tx(&tx, name, alias, version)?;
        }
        let signature_changed = match signature {
            Some((key_id, bytes)) => record_signature_tx(&tx, &sha, key_id, bytes)?,
            None => false,
        };
        if recorded == Recorded::Created || !aliases.is_empty() || signature_changed {
            tx.execute(BUMP_GENERATION, [])?;
        }
        tx.commit()?;
        Ok(recorded)
    }

    /// Points `alias` of model `name` at `version` (which must exist).
    pub fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<(), RegistryError> {
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        set_alias_tx(&tx, name, alias, version)?;
        tx.execute(BUMP_GENERATION, [])?;
        tx.commit()?;
        Ok(())
    }

    /// Every model, sorted by name, with versions and aliases.
    pub fn models(&self) -> Result<Vec<ModelRecord>, RegistryError> {
        let names: Vec<String> = {
            let conn = self.conn();
            let mut st = conn.prepare_cached("SELECT name FROM models ORDER BY name")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(m) = self.model(&n)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// One model, or `None`.
    pub fn model(&self, name: &str) -> Result<Option<ModelRecord>, RegistryError> {
        let conn = self.conn();
        let exists: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM models WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(None);
        }
        let mut st = conn.prepare_cached(&format!(
            "SELECT {VERSION_COLS} FROM versions WHERE model = ?1 ORDER BY published_at, rowid"
        ))?;
        let versions = st
            .query_map([name], version_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut st =
            conn.prepare_cached("SELECT alias, version FROM aliases WHERE model = ?1 ORDER BY alias")?;
        let aliases = st
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(ModelRecord {
            name: name.to_owned(),
            versions,
            aliases,
        }))
    }

    /// Resolves `version_or_alias` of `name`: a version first, then an alias. Returns the record and whether
    /// an alias was followed.
    pub fn resolve(
        &self,
        name: &str,
        version_or_alias: &str,
    ) -> Result<Option<(VersionRecord, bool)>, RegistryError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {VERSION_COLS} FROM versions WHERE model = ?1 AND version = ?2"
        ))?;
        if let Some(v) = st
            .query_row(params![name, version_or_alias], version_from_row)
            .optional()?
        {
            return Ok(Some((v, false)));
        }
        let mut st = conn.prepare_cached(&format!(
            "SELECT {VERSION_COLS} FROM versions WHERE (model, version) =
               (SELECT model, version FROM aliases WHERE model = ?1 AND alias = ?2)"
        ))?;
        Ok(st
            .query_row(params![name, version_or_alias], version_from_row)
            .optional()?
            .map(|v| (v, true)))
    }
}

fn open_read_only_conn(path: &Path) -> Result<Connection, RegistryError> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    generation_of(&conn)?;
    Ok(conn)
}

fn generation_of(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = 'generation'")?
        .query_row([], |r| r.get(0))
}

/// A transaction that reads, then writes: it takes SQLite's write lock up front (`BEGIN IMMEDIATE`), so a
/// concurrent writer (another process on the same file) makes it wait for the busy timeout. A deferred
/// transaction would start as a reader and fail at once with "database is locked" when it tries to upgrade
/// while another connection writes: SQLite cannot wait there without deadlocking.
fn write_transaction(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

fn set_alias_tx(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    alias: &str,
    version: &str,
) -> Result<(), RegistryError> {
    if !valid_name(alias) || alias == RESERVED_VERSION {
        return Err(RegistryError::Invalid(format!(
            "alias `{}` is not allowed",
            alias.escape_debug()
        )));
    }
    let exists = |v: &str| -> rusqlite::Result<bool> {
        tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM versions WHERE model = ?1 AND version = ?2)",
            params![name, v],
            |r| r.get(0),
        )
    };
    if !exists(version)? {
        return Err(RegistryError::NotFound(format!("{name}@{version}")));
    }
    if exists(alias)? {
        return Err(RegistryError::Invalid(format!(
            "`{alias}` is a version of {name}; an alias cannot have a version's name"
        )));
    }
    tx.execute(
        "INSERT INTO aliases (model, alias, version, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(model, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
        params![name, alias, version, now()],
    )?;
    Ok(())
}

/// Manifest signatures (issue #19), keyed by the manifest's sha256 (a manifest names its model and version,
/// so one hash is one version). A snapshot (`VACUUM INTO`) copies the table with the rest of the database.
const SIGNATURE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS signatures (
    manifest_sha256  TEXT PRIMARY KEY,
    key_id           TEXT NOT NULL,
    signature        BLOB NOT NULL
);
";

/// Records `signature` for the manifest `manifest_sha256`; returns whether the table changed.
fn record_signature_tx(
    tx: &rusqlite::Transaction<'_>,
    manifest_sha256: &str,
    key_id: &str,
    signature: &[u8],
) -> Result<bool, RegistryError> {
    let changed = tx.execute(
        "INSERT INTO signatures (manifest_sha256, key_id, signature) VALUES (?1, ?2, ?3)
         ON CONFLICT(manifest_sha256) DO UPDATE SET key_id = excluded.key_id, signature = excluded.signature
         WHERE key_id IS NOT excluded.key_id OR signature IS NOT excluded.signature",
        params![manifest_sha256, key_id, signature],
    )?;
    Ok(changed > 0)
}

/// Whether `e` is SQLite's "no such table": a read-only snapshot made before the signatures table
/// existed, which simply holds no signatures.
fn no_such_table(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(_, Some(m)) if m.starts_with("no such table"))
}

impl Registry {
    /// The recorded signature of the manifest whose sha256 is `manifest_sha256`: `(key_id, bytes of
    /// manifest.json.sig)`, or `None` when it was published unsigned.
    pub fn signature(&self, manifest_sha256: &str) -> Result<Option<(String, Vec<u8>)>, RegistryError> {
        let conn = self.conn();
        let found = conn
            .prepare_cached("SELECT key_id, signature FROM signatures WHERE manifest_sha256 = ?1")
            .and_then(|mut st| {
                st.query_row([manifest_sha256], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            });
        match found {
            Err(e) if no_such_table(&e) => Ok(None),
            r => Ok(r?),
        }
    }

    /// `version -> key id` of the signed versions of model `name`.
    pub fn signed_versions(
        &self,
        name: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, RegistryError> {
        let conn = self.conn();
        let rows = conn
            .prepare_cached(
                "SELECT v.version, s.key_id FROM versions v
                 JOIN signatures s ON s.manifest_sha256 = v.manifest_sha256 WHERE v.model = ?1",
            )
            .and_then(|mut st| {
                st.query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()
            });
        match rows {
            Err(e) if no_such_table(&e) => Ok(Default::default()),
            r => Ok(r?),
        }
    }
}
