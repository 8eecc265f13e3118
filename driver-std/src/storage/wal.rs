//! WAL records and segment files.
//!
//! A segment is a sequence of records, each `len: u32 LE | crc32c(payload): u32 LE | payload`
//! where the payload is a postcard-encoded [`WalRecord`]. Segments are named by a sequence
//! number (`00000000000000000001.wal`, ...) and numbered without gaps; every segment starts with
//! a record holding the full hard state and the snapshot marker current when it was opened, so
//! older segments can be deleted once a snapshot covers their entries.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use skiff_core::{Entry, HardState, Index, SnapshotMeta};

use super::StorageError;

/// Bytes before a record's payload: length and checksum.
pub const RECORD_HEADER: usize = 8;
/// Largest payload a record may announce; anything larger is corruption, never allocated.
pub const MAX_RECORD: u32 = 1 << 30;
const SEGMENT_SUFFIX: &str = ".wal";

/// One persisted record: what a `skiff_core::Persist` changes, with the snapshot reduced to
/// its metadata (its data lives in the snapshot file, written before this record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WalRecord {
    pub hard_state: Option<HardState>,
    pub snapshot: Option<SnapshotMeta>,
    pub truncate_from: Option<Index>,
    pub entries: Vec<Entry>,
}

/// A record as written, borrowing from the `Persist` it comes from (so writing copies no
/// entries). Encodes exactly as [`WalRecord`], which reads it back.
#[derive(Debug, Serialize)]
pub struct RecordRef<'a> {
    pub hard_state: Option<HardState>,
    pub snapshot: Option<&'a SnapshotMeta>,
    pub truncate_from: Option<Index>,
    pub entries: &'a [Entry],
}

/// Appends `record` to `buf` with its header, encoding it in place.
pub fn encode_record(record: &RecordRef<'_>, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER]);
    *buf = postcard::to_extend(record, std::mem::take(buf)).expect("WAL records always encode");
    let payload = &buf[start + RECORD_HEADER..];
    let len = u32::try_from(payload.len()).expect("a WAL record fits in u32");
    let crc = crc32c::crc32c(payload);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// How a segment's scan ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belongs to a whole, valid record.
    Clean,
    /// The last record is incomplete or damaged and nothing follows it: a write cut short by
    /// a crash. `valid_len` bytes are good.
    Torn { valid_len: u64 },
}

/// Reads every record of one segment. A damaged record followed by more bytes is corruption
/// (an error naming the file and offset); a damaged last record is a torn tail.
pub fn read_segment(path: &Path) -> Result<(Vec<WalRecord>, Tail), StorageError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| StorageError::io(path, "read WAL segment", e))?;
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn = Tail::Torn { valid_len: at as u64 };
        if rest.len() < RECORD_HEADER {
            return Ok((records, torn));
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let end = RECORD_HEADER as u64 + u64::from(len);
        if len > MAX_RECORD || end > rest.len() as u64 {
            // Runs past the end of the file: the write of the last record was cut short,
            // unless an intact record follows (then this length was damaged in place).
            return match intact_record_after(&bytes, at + 1) {
                Some(next) => Err(StorageError::corrupt(
                    path,
                    at as u64,
                    &format!("record length {len} runs past the end of the file, but an intact record follows at offset {next}"),
                )),
                None => Ok((records, torn)),
            };
        }
        let payload = &rest[RECORD_HEADER..end as usize];
        let last = at + end as usize == bytes.len();
        let decoded = if crc32c::crc32c(payload) == crc {
            postcard::from_bytes::<WalRecord>(payload).map_err(|_| "undecodable record")
        } else {
            Err("checksum mismatch")
        };
        match decoded {
            Ok(r) => records.push(r),
            Err(_) if last => return Ok((records, torn)),
            Err(what) => return Err(StorageError::corrupt(path, at as u64, what)),
        }
        at += end as usize;
    }
    Ok((records, Tail::Clean))
}

/// The offset of the first intact record (length in range, checksum right) at or after
/// `from`, if any. Only called on a damaged file, to tell a torn tail from damage in place.
fn intact_record_after(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(RECORD_HEADER)).find(|&at| {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + RECORD_HEADER + len as usize;
        len > 0 && len <= MAX_RECORD && end <= bytes.len() && crc32c::crc32c(&bytes[at + RECORD_HEADER..end]) == crc
    })
}

/// The path of segment `number` in `dir`.
pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}{SEGMENT_SUFFIX}"))
}

/// The segment numbers present in `dir`, in order. A gap in the numbering is an error naming
/// the missing file.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut numbers = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, "list WAL directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, "list WAL directory", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(number) = name.strip_suffix(SEGMENT_SUFFIX).and_then(|n| n.parse::<u64>().ok()) {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    for pair in numbers.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(StorageError::MissingSegment { path: segment_path(dir, pair[0] + 1) });
        }
    }
    Ok(numbers)
}
