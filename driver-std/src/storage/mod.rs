//! Durable storage for a node: the [`Storage`] trait the runtime's storage thread drives, the
//! file-backed [`FileStorage`] (segmented WAL plus an atomically replaced snapshot file) and the
//! in-memory [`MemStorage`] with the same durability model for test clusters.
//!
//! Contract: [`Storage::append`] makes a batch of `Persist` records durable, in order, before
//! it returns; only then does the runtime report `Input::Persisted` to the core. A crash
//! loses at most the records of batches that had not returned.

mod file;
mod fs;
mod group_commit;
mod image;
mod legacy;
mod marker;
mod mem;
mod sim_fs;
pub mod snapshot_file;
mod wal;

use std::fmt;
use std::path::{Path, PathBuf};

use skiff_core::{Persist, RestoreError};

pub use file::{FileStorage, FileStorageOptions, WalBytes};
pub use fs::{Fs, RealFs};
pub use group_commit::group_commit;
pub use image::LogImage;
pub use marker::{check_cluster, write_atomically, write_atomically_with, CLUSTER_MARKER};
pub use mem::{MemDisk, MemStorage};
pub use sim_fs::{DiskImage, SimFile, SimFs};
pub use snapshot_file::{parse as parse_snapshot_file, SnapshotWrites};
pub use wal::{parse_segment as parse_wal_segment, Format as WalFormat, Tail, WalRecord};

/// Where persist records go.
pub trait Storage: Send + 'static {
    /// Makes every record of `batch` durable, in order (group commit: one sync for all).
    /// An error means the storage can no longer be trusted: the node must stop.
    fn append(&mut self, batch: &[Persist]) -> Result<(), StorageError>;
}

/// Why storage could not be opened or written. Every variant names the file involved.
#[derive(Debug)]
pub enum StorageError {
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    /// Damaged data that is not a torn tail: a bad checksum or an undecodable record with
    /// valid data after it, or a damaged snapshot.
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    /// A WAL segment is missing from the middle of the sequence.
    MissingSegment {
        path: PathBuf,
    },
    /// The records replay to a state the core refuses.
    Inconsistent {
        path: PathBuf,
        what: String,
    },
    /// The recovered state is not one the core accepts.
    Restore(RestoreError),
    /// One entry too large for a WAL record (`len` encoded bytes, at most `max`): its batch
    /// is not durable, and like any storage error this stops the node. The core's
    /// `max_entry_bytes` refuses such proposals before they reach the log.
    TooLarge {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    /// The data directory belongs to another cluster (its marker at `path` says `found`).
    WrongCluster {
        path: PathBuf,
        found: String,
        expected: u64,
    },
}

impl StorageError {
    pub(crate) fn io(path: &Path, op: &'static str, source: std::io::Error) -> StorageError {
        StorageError::Io { path: path.to_path_buf(), op, source }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, what: &str) -> StorageError {
        StorageError::Corrupt { path: path.to_path_buf(), offset, what: what.to_string() }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { path, op, source } => write!(f, "{}: cannot {op}: {source}", path.display()),
            StorageError::Corrupt { path, offset, what } => {
                write!(f, "{}: corrupt at offset {offset}: {what}", path.display())
            }
            StorageError::MissingSegment { path } => write!(f, "{}: WAL segment missing", path.display()),
            StorageError::Inconsistent { path, what } => write!(f, "{}: inconsistent WAL: {what}", path.display()),
            StorageError::Restore(e) => write!(f, "recovered state refused: {e}"),
            StorageError::TooLarge { path, len, max } => {
                write!(f, "{}: a record of {len} bytes exceeds the maximum of {max}", path.display())
            }
            StorageError::WrongCluster { path, found, expected } => {
                write!(
                    f,
                    "{}: the data directory belongs to cluster {found}, not {expected}: refusing to start",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
