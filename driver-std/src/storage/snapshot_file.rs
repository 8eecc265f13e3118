//! The snapshot file: `SNAPSHOT_MAGIC | len: u64 LE | crc32c(payload): u32 LE | payload`,
//! the payload a postcard-encoded `skiff_core::Snapshot`, written with [`write_atomically`]:
//! a crash leaves either the old snapshot or the new one, never a mix.
//!
//! A file that does not start with the magic is read as format 3 (`len | crc | payload`,
//! with the voter list of its time; see `legacy`). The two never look alike: a format-3
//! length equal to the magic's first 8 bytes would be at least 2^58.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use skiff_core::{Snapshot, SnapshotMeta};

use super::fs::Fs;
use super::{legacy, write_atomically, StorageError};

pub const SNAPSHOT_FILE: &str = "snapshot";
/// The first bytes of a snapshot file: "SKIFSNP" and the format number.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"SKIFSNP\x04";
/// Length and checksum, after the magic.
const HEADER: usize = 12;

/// Writes `snapshot` as the directory's snapshot, durably, replacing any older one.
pub fn write<F: Fs>(fs: &mut F, dir: &Path, snapshot: &Snapshot) -> Result<(), StorageError> {
    let payload = postcard::to_allocvec(snapshot).expect("snapshots always encode");
    let mut bytes = Vec::with_capacity(SNAPSHOT_MAGIC.len() + HEADER + payload.len());
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    write_atomically(fs, dir, SNAPSHOT_FILE, &bytes)
}

/// Reads the directory's snapshot, if there is one. A damaged file is an error naming it.
pub fn read<F: Fs>(fs: &mut F, dir: &Path) -> Result<Option<Snapshot>, StorageError> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match fs.read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(&path, "read snapshot", e)),
    };
    parse(&path, &bytes).map(Some)
}

/// Decodes a snapshot file's bytes (read from `path`, named in errors), of the current
/// format or format 3.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Snapshot, StorageError> {
    let current = bytes.starts_with(&SNAPSHOT_MAGIC);
    let start = if current { SNAPSHOT_MAGIC.len() } else { 0 };
    let bytes = &bytes[start..];
    if bytes.len() < HEADER {
        return Err(StorageError::corrupt(path, start as u64, "snapshot header cut short"));
    }
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if len != (bytes.len() - HEADER) as u64 {
        return Err(StorageError::corrupt(path, start as u64, "snapshot length does not match the file"));
    }
    let payload = &bytes[HEADER..];
    let at = (start + HEADER) as u64;
    if crc32c::crc32c(payload) != crc {
        return Err(StorageError::corrupt(path, at, "snapshot checksum mismatch"));
    }
    let decoded = if current {
        postcard::from_bytes(payload).map_err(|_| "snapshot does not decode")
    } else {
        legacy::decode_snapshot_v3(payload)
    };
    decoded.map_err(|what| StorageError::corrupt(path, at, what))
}

/// How a [`Pending`] snapshot file gets written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotWrites {
    /// In the batch that carries it: the batch waits for it (and every batch behind it).
    Inline,
    /// On a thread of its own while batches go on (the default).
    Background,
    /// At the start of the next batch: the order `Background` may take, made deterministic
    /// for crash-point tests.
    Deferred,
}

/// A snapshot file being written apart from the WAL (see `FileStorage`).
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) meta: SnapshotMeta,
    job: Job,
}

#[derive(Debug)]
enum Job {
    Thread(JoinHandle<Result<(), StorageError>>),
    Later(Snapshot),
}

impl Pending {
    /// Starts writing `snapshot` into `dir` as `how` says (`Background` or `Deferred`).
    pub(crate) fn start<F: Fs>(fs: &F, dir: &Path, snapshot: &Snapshot, how: SnapshotWrites) -> Pending {
        let meta = snapshot.meta.clone();
        let job = match how {
            SnapshotWrites::Background => {
                let (mut fs, dir, copy) = (fs.clone(), dir.to_path_buf(), snapshot.clone());
                let spawned = std::thread::Builder::new()
                    .name("skiff-snapshot-write".into())
                    .spawn(move || write(&mut fs, &dir, &copy));
                match spawned {
                    Ok(handle) => Job::Thread(handle),
                    // No thread to be had: written when finished, like `Deferred`.
                    Err(_) => Job::Later(snapshot.clone()),
                }
            }
            SnapshotWrites::Deferred | SnapshotWrites::Inline => Job::Later(snapshot.clone()),
        };
        Pending { meta, job }
    }

    /// Whether finishing would not wait (the thread is done, or there is none).
    pub(crate) fn ready(&self) -> bool {
        match &self.job {
            Job::Thread(h) => h.is_finished(),
            Job::Later(_) => true,
        }
    }

    /// Waits for the file to be durable in `dir` (writing it now if that was left for later).
    pub(crate) fn finish<F: Fs>(self, fs: &mut F, dir: &Path) -> Result<SnapshotMeta, StorageError> {
        match self.job {
            Job::Thread(h) => h.join().unwrap_or_else(|_| {
                let path: PathBuf = dir.join(SNAPSHOT_FILE);
                Err(StorageError::io(&path, "write snapshot", std::io::Error::other("the writer thread panicked")))
            })?,
            Job::Later(s) => write(fs, dir, &s)?,
        }
        Ok(self.meta)
    }
}
