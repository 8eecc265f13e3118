//! The snapshot file: `len: u64 LE | crc32c(payload): u32 LE | payload`, the payload a
//! postcard-encoded `skiff_core::Snapshot`. Written atomically: to a temporary file, fsynced,
//! renamed over the old one, and the directory fsynced, so a crash leaves either the old
//! snapshot or the new one, never a mix.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use skiff_core::Snapshot;

use super::{sync_dir, StorageError};

pub const SNAPSHOT_FILE: &str = "snapshot";
const TEMP_FILE: &str = "snapshot.tmp";
const HEADER: usize = 12;

/// Writes `snapshot` as the directory's snapshot, durably, replacing any older one.
pub fn write(dir: &Path, snapshot: &Snapshot) -> Result<(), StorageError> {
    let payload = postcard::to_allocvec(snapshot).expect("snapshots always encode");
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let temp = dir.join(TEMP_FILE);
    let write_temp = || -> std::io::Result<()> {
        let mut f = File::create(&temp)?;
        f.write_all(&bytes)?;
        f.sync_all()
    };
    write_temp().map_err(|e| StorageError::io(&temp, "write snapshot", e))?;
    let path = dir.join(SNAPSHOT_FILE);
    fs::rename(&temp, &path).map_err(|e| StorageError::io(&path, "rename snapshot into place", e))?;
    sync_dir(dir)
}

/// Reads the directory's snapshot, if there is one. A damaged file is an error naming it.
pub fn read(dir: &Path) -> Result<Option<Snapshot>, StorageError> {
    let path = dir.join(SNAPSHOT_FILE);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut f) => f.read_to_end(&mut bytes).map_err(|e| StorageError::io(&path, "read snapshot", e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(&path, "open snapshot", e)),
    };
    if bytes.len() < HEADER {
        return Err(StorageError::corrupt(&path, 0, "snapshot header cut short"));
    }
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if len != (bytes.len() - HEADER) as u64 {
        return Err(StorageError::corrupt(&path, 0, "snapshot length does not match the file"));
    }
    let payload = &bytes[HEADER..];
    if crc32c::crc32c(payload) != crc {
        return Err(StorageError::corrupt(&path, HEADER as u64, "snapshot checksum mismatch"));
    }
    postcard::from_bytes(payload)
        .map(Some)
        .map_err(|_| StorageError::corrupt(&path, HEADER as u64, "snapshot does not decode"))
}
