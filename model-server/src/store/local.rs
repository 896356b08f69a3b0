//! The local backend: blobs as files under a directory, written through a temporary file and a rename.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::{read_verified, Blob, BlobHash, BlobStore, PutError};

/// Blobs as files on a local directory:
///
/// ```text
/// ROOT/sha256/ab/abcdef...   one file per blob, named by its full hash, fanned out by the first two digits
/// ROOT/tmp/                  uploads in progress, each locked by its writer; unlocked ones removed at open
/// ```
///
/// A write goes to a temporary file in `ROOT/tmp`, is hashed as it streams, fsynced, renamed into place,
/// and the directory is fsynced: a crash leaves either nothing or the complete blob under its name.
#[derive(Debug)]
pub struct LocalBlobStore {
    root: PathBuf,
}

/// Suffix of temporary blob files; nothing else in `ROOT/tmp` is ever deleted.
const PART: &str = ".part";

/// Whether `file` is still the one at `path` (same device and inode): a stale-file cleaner may have
/// unlinked the name between our create and our lock.
fn still_named(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let ours = file.metadata()?;
    match fs::metadata(path) {
        Ok(m) => Ok(m.dev() == ours.dev() && m.ino() == ours.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl LocalBlobStore {
    /// Opens (creating if needed) a store at `root` and removes temporary files whose writer is gone.
    ///
    /// Every writer holds an exclusive `flock` on its temporary file for as long as it writes it (the
    /// kernel drops the lock when the process dies, however it dies). A file whose lock can be taken has
    /// no writer and is deleted; a locked one belongs to a live writer (another `publish`, a server, this
    /// process) and is left alone.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<LocalBlobStore> {
        let root = root.into();
        fs::create_dir_all(root.join("sha256"))?;
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp)?;
        for entry in fs::read_dir(&tmp)? {
            let path = entry?.path();
            if !path.to_string_lossy().ends_with(PART) {
                continue;
            }
            // Gone already (its writer renamed or removed it), or not ours to read: leave it.
            let Ok(file) = File::open(&path) else { continue };
            if file.try_lock().is_ok() {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(LocalBlobStore { root })
    }

    /// The file a blob lives in. Only a validated [`BlobHash`] can name one.
    pub fn path_of(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("sha256").join(&hash.0[..2]).join(&hash.0)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A new temporary file in `ROOT/tmp`, named uniquely (process id, clock, counter) and locked
    /// exclusively for as long as the returned `File` lives.
    fn temp_file(&self) -> io::Result<(PathBuf, File)> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = self
                .root
                .join("tmp")
                .join(format!("{}-{nanos:x}-{n}{PART}", std::process::id()));
            let file = match File::options().write(true).create_new(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            // A cleaner that took the lock first, between our create and our lock, deletes the name:
            // then this file is not ours to use; take another name.
            match file.try_lock() {
                Ok(()) if still_named(&file, &path)? => return Ok((path, file)),
                Ok(()) | Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }
}

/// The blob file at `path`, mapped (no copy), or `None` when there is none.
fn map_file(path: &Path) -> io::Result<Option<Bytes>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if file.metadata()?.len() == 0 {
        return Ok(Some(Bytes::new()));
    }
    // SAFETY: blob files are written once through a rename and never modified or truncated afterwards.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(Some(Bytes::from_owner(map)))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl BlobStore for LocalBlobStore {
    fn get(&self, hash: &BlobHash) -> io::Result<Option<Bytes>> {
        map_file(&self.path_of(hash))
    }

    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>> {
        match fs::metadata(self.path_of(hash)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put(&self, hash: &BlobHash, src: &mut dyn Read, limit: u64) -> Result<u64, PutError> {
        let (tmp_path, mut file) = self.temp_file()?;
        let result = (|| {
            #[cfg(feature = "test-hooks")]
            let mut paused = false;
            let total = read_verified(src, limit, hash, |chunk| {
                file.write_all(chunk)?;
                #[cfg(feature = "test-hooks")]
                if !paused {
                    paused = true;
                    file.flush()?;
                    super::test_pause("mid-blob");
                }
                Ok(())
            })?;
            file.sync_all()?;
            let dest = self.path_of(hash);
            let dir = dest.parent().expect("blob paths have a parent");
            fs::create_dir_all(dir)?;
            fs::rename(&tmp_path, &dest)?;
            sync_dir(dir)?;
            Ok(total)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp_path);
        }
        result
    }

    fn check(&self) -> io::Result<()> {
        let (path, _file) = self.temp_file()?;
        fs::remove_file(path)
    }

    fn open<'a>(&'a self, hash: &'a BlobHash) -> BoxFuture<'a, io::Result<Option<Blob>>> {
        let path = self.path_of(hash);
        Box::pin(async move {
            let mapped = tokio::task::spawn_blocking(move || map_file(&path))
                .await
                .map_err(io::Error::other)??;
            Ok(mapped.map(Blob::mapped))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_verifies_and_get_returns_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let data = b"hello blob".to_vec();
        let h = BlobHash::of(&data);
        assert_eq!(store.put(&h, &mut &data[..], 100).unwrap(), data.len() as u64);
        assert_eq!(store.get(&h).unwrap().unwrap(), Bytes::from(data.clone()));
        assert_eq!(store.size(&h).unwrap(), Some(data.len() as u64));

        let wrong = BlobHash::of(b"other");
        assert!(matches!(
            store.put(&wrong, &mut &data[..], 100),
            Err(PutError::HashMismatch { .. })
        ));
        assert!(store.get(&wrong).unwrap().is_none());
        let big = vec![7u8; 1000];
        assert!(matches!(
            store.put(&BlobHash::of(&big), &mut &big[..], 999),
            Err(PutError::TooLarge { .. })
        ));
        assert!(store.get(&BlobHash::of(&big)).unwrap().is_none());
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "no temp file left"
        );
    }

    /// A reader that hands out `pending`, then (once) blocks until told to go on and hands out what it is
    /// given, then ends.
    struct Gated {
        pending: Vec<u8>,
        gate: Option<std::sync::mpsc::Receiver<Vec<u8>>>,
        started: std::sync::mpsc::Sender<()>,
    }

    impl Read for Gated {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pending.is_empty() {
                if let Some(gate) = self.gate.take() {
                    let _ = self.started.send(());
                    self.pending = gate.recv().unwrap_or_default();
                }
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn opening_the_store_leaves_a_live_writers_temp_file_and_removes_dead_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        // What a killed writer leaves: an unlocked .part file. And a file that is not a temp blob.
        let dead = dir.path().join("tmp").join(format!("1-0-0{PART}"));
        fs::write(&dead, b"half").unwrap();
        let other = dir.path().join("tmp").join("notes.txt");
        fs::write(&other, b"keep").unwrap();

        let data = bytes_of(300_000);
        let hash = BlobHash::of(&data);
        let (go, gate) = std::sync::mpsc::channel();
        let (started, has_started) = std::sync::mpsc::channel();
        let mut src = Gated {
            pending: data[..1000].to_vec(),
            gate: Some(gate),
            started,
        };
        let h = hash.clone();
        let writer = std::thread::spawn(move || store.put(&h, &mut src, 1 << 20));
        has_started.recv().unwrap();
        // Another writer (a publish, a replica) opens the same directory while the upload is in flight.
        let second = LocalBlobStore::open(dir.path()).unwrap();
        assert!(!dead.exists(), "a temp file nobody holds is removed");
        assert!(other.exists(), "only temp blob files are removed");
        go.send(data[1000..].to_vec()).unwrap();
        assert_eq!(writer.join().unwrap().unwrap(), data.len() as u64);
        assert_eq!(second.get(&hash).unwrap().unwrap(), Bytes::from(data));
    }

    fn bytes_of(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }
}
