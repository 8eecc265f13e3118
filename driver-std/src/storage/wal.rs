//! WAL records and segment files.
//!
//! A segment starts with [`SEGMENT_MAGIC`] (which names the format), then holds a sequence of
//! records, each `len: u32 LE | crc32c(payload): u32 LE | crc32c(the 8 bytes before): u32 LE |
//! payload | RECORD_END`, the payload a postcard-encoded [`WalRecord`]. The header's own
//! checksum makes a damaged length visible at once, so a scan never has to search for where
//! records resume; the non-zero end byte makes a record that was not wholly written visible
//! in a zero-filled tail. Segments are named by a sequence number (`00000000000000000001.wal`,
//! ...) and numbered without gaps; every segment starts with a record holding the full hard
//! state and the snapshot marker current when it was opened, so older segments can be deleted
//! once a snapshot covers their entries.
//!
//! Torn versus corrupt: only the end of the last segment can hold an unfinished write. A
//! record is *torn* (cut away on recovery) when the file ends inside it, or when everything
//! from some byte of it to the end of the file is zero (its end byte included): a crash that
//! kept the file's size but not all of its data. Any other damage, anywhere, is corruption,
//! reported with the file and offset, and never cut silently: bit rot in the last record
//! leaves its end byte in place, and is told from a torn write by that.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use skiff_core::{Entry, HardState, Index, Persist, SnapshotMeta};

use super::{legacy, StorageError};

/// The first bytes of every segment: "SKIFWAL" and the format number. Format 4 is format 3
/// with a snapshot's configuration (`SnapshotMeta::membership` and `membership_index`) in
/// place of its voter list; format-3 segments are still read (see `legacy`), and a directory
/// holding them gets new segments of format 4. Format 3 was format 2's records holding the
/// KV service's stamped `LogEntry` payloads: the entries of a format-2 directory would not
/// decode as commands, so it is refused rather than replayed as no-ops.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SKIFWAL\x04";
/// Bytes before a record's payload: length and two checksums.
pub const RECORD_HEADER: usize = 12;
/// Largest payload a record may hold. The writer never writes more (one entry that would not
/// fit is refused); the reader treats more as corruption, never allocating it.
pub const MAX_RECORD: u32 = 256 << 20;
/// The last byte of every record (never zero; see the module docs).
const RECORD_END: u8 = 0xa5;
/// Upper bound of an entry's encoding besides its data (index, term, kind, length).
const ENTRY_OVERHEAD: usize = 32;
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
#[derive(Clone, Debug, Serialize)]
pub struct RecordRef<'a> {
    pub hard_state: Option<HardState>,
    pub snapshot: Option<&'a SnapshotMeta>,
    pub truncate_from: Option<Index>,
    pub entries: &'a [Entry],
}

/// The records one `Persist` is written as: one, unless its entries exceed `max_bytes`, then
/// several, each holding at most `max_bytes` of entries (or a single entry). Replaying any
/// prefix of them is a state the node could have been in: the first carries the snapshot,
/// the truncation and the new term and vote (with the commit index of before, `prev_commit`),
/// the last carries the full hard state.
pub fn split(p: &Persist, prev_commit: Index, max_bytes: usize) -> Vec<RecordRef<'_>> {
    let mut chunks: Vec<&[Entry]> = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (k, e) in p.entries.iter().enumerate() {
        let size = e.data.len() + ENTRY_OVERHEAD;
        if k > start && bytes + size > max_bytes {
            chunks.push(&p.entries[start..k]);
            (start, bytes) = (k, 0);
        }
        bytes += size;
    }
    chunks.push(&p.entries[start..]);
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(k, entries)| {
            let hard_state = match p.hard_state {
                Some(hs) if k < last => (k == 0).then_some(HardState { commit: hs.commit.min(prev_commit), ..hs }),
                hs => hs,
            };
            let first = k == 0;
            RecordRef {
                hard_state,
                snapshot: p.snapshot.as_ref().map(|s| &s.meta).filter(|_| first),
                truncate_from: p.truncate_from.filter(|_| first),
                entries,
            }
        })
        .collect()
}

/// Appends `record` to `buf` with its header and end byte, encoding it in place. Returns the
/// payload's length, or `Err(len)` (leaving `buf` as it was) if it exceeds [`MAX_RECORD`].
pub fn encode_record(record: &RecordRef<'_>, buf: &mut Vec<u8>) -> Result<usize, usize> {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER]);
    *buf = postcard::to_extend(record, std::mem::take(buf)).expect("WAL records always encode");
    let len = buf.len() - start - RECORD_HEADER;
    if len > MAX_RECORD as usize {
        buf.truncate(start);
        return Err(len);
    }
    let crc = crc32c::crc32c(&buf[start + RECORD_HEADER..]);
    buf.push(RECORD_END);
    buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&buf[start..start + 8]);
    buf[start + 8..start + 12].copy_from_slice(&header_crc.to_le_bytes());
    Ok(len)
}

/// How a segment's scan ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belongs to a whole, valid record.
    Clean,
    /// The end of the file is an unfinished write (see the module docs). `valid_len` bytes
    /// are good.
    Torn { valid_len: u64 },
}

/// The format of a segment, named by its magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Read only (see `legacy`): records are never appended to such a segment.
    V3,
    /// The current format ([`SEGMENT_MAGIC`]).
    V4,
}

/// Parses one segment's bytes (read from `path`, named in errors) in one pass. Damage that is
/// not a torn tail is an error naming the file and offset.
pub fn parse_segment(path: &Path, bytes: &[u8]) -> Result<(Vec<WalRecord>, Tail, Format), StorageError> {
    let magic = bytes.get(..SEGMENT_MAGIC.len());
    let format = if magic == Some(&SEGMENT_MAGIC[..]) {
        Format::V4
    } else if magic == Some(&legacy::SEGMENT_MAGIC_V3[..]) {
        Format::V3
    } else {
        return Err(StorageError::corrupt(path, 0, "not a skiff WAL segment of format 3 or 4 (bad magic)"));
    };
    let decode = |payload: &[u8]| match format {
        Format::V4 => postcard::from_bytes::<WalRecord>(payload).map_err(|_| "record does not decode"),
        Format::V3 => legacy::decode_record_v3(payload),
    };
    // Everything from `zeros` on is zero.
    let zeros = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    // Whether a crash that kept the size but not the data explains damage before `limit`:
    // the zeros reaching to the end of the file start before it.
    let zero_tail = |limit: usize| zeros < limit;
    let mut records = Vec::new();
    let mut at = SEGMENT_MAGIC.len();
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn = Tail::Torn { valid_len: at as u64 };
        if rest.len() < RECORD_HEADER {
            return Ok((records, torn, format));
        }
        let word = |k: usize| u32::from_le_bytes(rest[k..k + 4].try_into().expect("4 bytes"));
        let (len, crc, header_crc) = (word(0), word(4), word(8));
        if crc32c::crc32c(&rest[..8]) != header_crc || len > MAX_RECORD {
            if zero_tail(at + RECORD_HEADER) {
                return Ok((records, torn, format));
            }
            return Err(StorageError::corrupt(path, at as u64, "damaged record header"));
        }
        let end = at + RECORD_HEADER + len as usize + 1;
        if end > bytes.len() {
            return Ok((records, torn, format)); // the file ends inside the record: its write was cut short
        }
        let payload = &bytes[at + RECORD_HEADER..end - 1];
        if crc32c::crc32c(payload) != crc || bytes[end - 1] != RECORD_END {
            if zero_tail(end) {
                return Ok((records, torn, format));
            }
            return Err(StorageError::corrupt(path, at as u64, "record checksum mismatch"));
        }
        match decode(payload) {
            Ok(r) => records.push(r),
            Err(what) => return Err(StorageError::corrupt(path, at as u64, what)),
        }
        at = end;
    }
    Ok((records, Tail::Clean, format))
}

/// The path of segment `number` in `dir`.
pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}{SEGMENT_SUFFIX}"))
}

/// The segment numbers among the file `names` of WAL directory `dir`, in order. A gap in the
/// numbering is an error naming the missing file.
pub fn segment_numbers(dir: &Path, names: &[String]) -> Result<Vec<u64>, StorageError> {
    let mut numbers: Vec<u64> =
        names.iter().filter_map(|n| n.strip_suffix(SEGMENT_SUFFIX)?.parse::<u64>().ok()).collect();
    numbers.sort_unstable();
    for pair in numbers.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(StorageError::MissingSegment { path: segment_path(dir, pair[0] + 1) });
        }
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use skiff_core::{EntryKind, NodeId, Term};

    use super::*;

    fn entry(i: u64, len: usize) -> Entry {
        Entry { index: Index(i), term: Term(2), kind: EntryKind::Command, data: Bytes::from(vec![1u8; len]) }
    }

    #[test]
    fn a_large_persist_splits_into_records_within_the_bound_whose_prefixes_are_states() {
        let hs = HardState { term: Term(2), vote: Some(NodeId(1)), commit: Index(9) };
        let entries: Vec<Entry> = (1..=10).map(|i| entry(i, 1000)).collect();
        let p = Persist { seq: 1, snapshot: None, hard_state: Some(hs), truncate_from: Some(Index(1)), entries };
        let records = split(&p, Index(3), 2500);
        assert_eq!(records.iter().map(|r| r.entries.len()).collect::<Vec<_>>(), vec![2, 2, 2, 2, 2]);
        assert_eq!(records[0].hard_state, Some(HardState { commit: Index(3), ..hs }), "term and vote first");
        assert_eq!(records[0].truncate_from, Some(Index(1)));
        assert!(records[1..4].iter().all(|r| r.hard_state.is_none() && r.truncate_from.is_none()));
        assert_eq!(records[4].hard_state, Some(hs), "the commit index last");
        let mut buf = Vec::new();
        for r in &records {
            assert!(encode_record(r, &mut buf).unwrap() <= 2500);
        }
        // One entry larger than the bound goes alone; one larger than the reader's is refused.
        let one = Persist { entries: vec![entry(1, 5000)], ..p.clone() };
        assert_eq!(split(&one, Index(0), 2500).len(), 1);
        let huge = Persist { entries: vec![entry(1, MAX_RECORD as usize)], ..p };
        let mut buf = vec![7];
        assert!(encode_record(&split(&huge, Index(0), 2500)[0], &mut buf).is_err());
        assert_eq!(buf, vec![7], "nothing of a refused record is left");
    }
}
