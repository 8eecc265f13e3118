//! The snapshot file: `len: u64 LE | crc32c(payload): u32 LE | payload`, the payload a
//! postcard-encoded `skiff_core::Snapshot`, written with [`write_atomically`]: a crash leaves
//! either the old snapshot or the new one, never a mix.

use std::io::ErrorKind;
use std::path::Path;

use skiff_core::Snapshot;

use super::fs::Fs;
use super::{write_atomically, StorageError};

pub const SNAPSHOT_FILE: &str = "snapshot";
const HEADER: usize = 12;

/// Writes `snapshot` as the directory's snapshot, durably, replacing any older one.
pub fn write<F: Fs>(fs: &mut F, dir: &Path, snapshot: &Snapshot) -> Result<(), StorageError> {
    let payload = postcard::to_allocvec(snapshot).expect("snapshots always encode");
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
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

/// Decodes a snapshot file's bytes (read from `path`, named in errors).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Snapshot, StorageError> {
    if bytes.len() < HEADER {
        return Err(StorageError::corrupt(path, 0, "snapshot header cut short"));
    }
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if len != (bytes.len() - HEADER) as u64 {
        return Err(StorageError::corrupt(path, 0, "snapshot length does not match the file"));
    }
    let payload = &bytes[HEADER..];
    if crc32c::crc32c(payload) != crc {
        return Err(StorageError::corrupt(path, HEADER as u64, "snapshot checksum mismatch"));
    }
    postcard::from_bytes(payload).map_err(|_| StorageError::corrupt(path, HEADER as u64, "snapshot does not decode"))
}
