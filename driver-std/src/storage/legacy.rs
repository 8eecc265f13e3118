//! Formats written by earlier releases, read so that an upgraded node opens its data
//! directory as it was; they are never written.
//!
//! Format 3 (WAL segments `SKIFWAL\x03` and snapshot files without a magic) predates
//! membership changes: a snapshot's metadata held the fixed voter set. It converts to the
//! current form as the configuration it was: those voters, set by no entry (the bootstrap
//! configuration, `membership_index` 0). Entries decode unchanged (no `Config` entry existed,
//! and that kind was added last).

use serde::Deserialize;
use skiff_core::{Entry, HardState, Index, Membership, NodeId, Snapshot, SnapshotMeta, Term};

use super::wal::WalRecord;

/// A WAL segment of format 3 starts with this.
pub const SEGMENT_MAGIC_V3: [u8; 8] = *b"SKIFWAL\x03";

/// `SnapshotMeta` as format 3 encoded it.
#[derive(Deserialize)]
struct SnapshotMetaV3 {
    index: Index,
    term: Term,
    voters: Vec<NodeId>,
}

impl SnapshotMetaV3 {
    fn convert(self) -> Result<SnapshotMeta, &'static str> {
        let membership = Membership::from_voters(self.voters).map_err(|_| "a snapshot's voter set is invalid")?;
        Ok(SnapshotMeta { index: self.index, term: self.term, membership, membership_index: Index(0) })
    }
}

/// `WalRecord` as format 3 encoded it.
#[derive(Deserialize)]
struct WalRecordV3 {
    hard_state: Option<HardState>,
    snapshot: Option<SnapshotMetaV3>,
    truncate_from: Option<Index>,
    entries: Vec<Entry>,
}

/// `Snapshot` as a format-3 snapshot file encoded it.
#[derive(Deserialize)]
struct SnapshotV3 {
    meta: SnapshotMetaV3,
    data: bytes::Bytes,
}

/// Decodes a format-3 WAL record's payload.
pub fn decode_record_v3(payload: &[u8]) -> Result<WalRecord, &'static str> {
    let r: WalRecordV3 = postcard::from_bytes(payload).map_err(|_| "record does not decode")?;
    Ok(WalRecord {
        hard_state: r.hard_state,
        snapshot: r.snapshot.map(SnapshotMetaV3::convert).transpose()?,
        truncate_from: r.truncate_from,
        entries: r.entries,
    })
}

/// Decodes a format-3 snapshot file's payload.
pub fn decode_snapshot_v3(payload: &[u8]) -> Result<Snapshot, &'static str> {
    let s: SnapshotV3 = postcard::from_bytes(payload).map_err(|_| "snapshot does not decode")?;
    Ok(Snapshot { meta: s.meta.convert()?, data: s.data })
}
