//! [`FileStorage`]: a data directory holding `wal/` (numbered segments of checksummed records)
//! and `snapshot` (the latest snapshot, replaced atomically).
//!
//! Writing a batch: any snapshot it carries goes to the snapshot file first (durable before
//! the WAL mentions it); then every record is appended with one `write` and one `fdatasync`
//! (group commit). Once a snapshot's record is durable, segments whose entries it covers are
//! deleted. A segment is rolled when it passes `segment_bytes`; each starts with the full hard
//! state and snapshot marker, so deleting older ones loses nothing.
//!
//! Recovery: read the snapshot, replay every segment in order; a torn last record of the last
//! segment is truncated away (a crash mid-write), anything else damaged is an error naming the
//! file and offset.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use skiff_core::{HardState, Index, Persist, Restored, SnapshotMeta};

use super::wal::{self, RecordRef, Tail};
use super::{snapshot_file, sync_dir, LogImage, Storage, StorageError};

/// Tuning of a [`FileStorage`].
#[derive(Clone, Debug)]
pub struct FileStorageOptions {
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// fdatasync after every batch. Only for benchmarks that want to see the cost of the
    /// disk: without it, acknowledged writes can be lost by a power failure.
    pub sync: bool,
}

impl Default for FileStorageOptions {
    fn default() -> Self {
        FileStorageOptions { segment_bytes: 64 << 20, sync: true }
    }
}

/// One WAL segment: its number and the highest entry index written in it.
#[derive(Clone, Copy, Debug)]
struct Segment {
    number: u64,
    max_index: Index,
}

/// File-backed [`Storage`].
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    wal_dir: PathBuf,
    opts: FileStorageOptions,
    /// Oldest first; the last is the one being appended to.
    segments: Vec<Segment>,
    active: File,
    active_len: u64,
    hard_state: HardState,
    snapshot: Option<SnapshotMeta>,
    buf: Vec<u8>,
}

impl FileStorage {
    /// Opens (or creates) the data directory `dir` and recovers what it holds.
    pub fn open(dir: impl AsRef<Path>, opts: FileStorageOptions) -> Result<(FileStorage, Restored), StorageError> {
        let dir = dir.as_ref().to_path_buf();
        let wal_dir = dir.join("wal");
        fs::create_dir_all(&wal_dir).map_err(|e| StorageError::io(&wal_dir, "create data directory", e))?;
        let snapshot = snapshot_file::read(&dir)?;
        let numbers = wal::list_segments(&wal_dir)?;
        // Replay on top of the snapshot: entries it covers are skipped as they come, and after
        // trimming, the oldest segment left may start anywhere up to just past it.
        let stored = snapshot.as_ref().map_or(Index(0), |s| s.meta.index);
        let mut image = LogImage { snapshot_index: stored, ..LogImage::default() };
        let mut wal_snapshot = Index(0);
        let mut segments = Vec::new();
        for (k, &number) in numbers.iter().enumerate() {
            let path = wal::segment_path(&wal_dir, number);
            let (records, tail) = wal::read_segment(&path)?;
            if let Tail::Torn { valid_len } = tail {
                if k + 1 < numbers.len() {
                    return Err(StorageError::corrupt(&path, valid_len, "damaged record in a closed segment"));
                }
                tracing::warn!(file = %path.display(), offset = valid_len, "truncating a torn WAL tail");
                truncate_file(&path, valid_len)?;
            }
            let mut max_index = Index(0);
            for (r, record) in records.iter().enumerate() {
                let snapshot_index = record.snapshot.as_ref().map(|m| m.index);
                wal_snapshot = wal_snapshot.max(snapshot_index.unwrap_or(Index(0)));
                image.apply(record.hard_state, snapshot_index, record.truncate_from, &record.entries).map_err(
                    |what| StorageError::Inconsistent { path: path.clone(), what: format!("record {r}: {what}") },
                )?;
                max_index = record.entries.last().map_or(max_index, |e| max_index.max(e.index));
            }
            segments.push(Segment { number, max_index });
        }
        // The snapshot file is written before the record that mentions it, so it may be newer
        // than the WAL knows (a crash in between), never older.
        if wal_snapshot > stored {
            let path = dir.join(snapshot_file::SNAPSHOT_FILE);
            let what = format!("the WAL records a snapshot at {} but the file holds {}", wal_snapshot.0, stored.0);
            return Err(StorageError::Inconsistent { path, what });
        }
        let mut storage = FileStorage {
            active: File::open(&dir).map_err(|e| StorageError::io(&dir, "open data directory", e))?,
            dir,
            wal_dir,
            opts,
            segments,
            active_len: 0,
            hard_state: image.hard_state,
            snapshot: snapshot.as_ref().map(|s| s.meta.clone()),
            buf: Vec::new(),
        };
        match storage.segments.last() {
            Some(last) => {
                let path = wal::segment_path(&storage.wal_dir, last.number);
                storage.active = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| StorageError::io(&path, "open WAL segment", e))?;
                storage.active_len = storage.active.metadata().map_err(|e| StorageError::io(&path, "stat", e))?.len();
            }
            None => storage.roll(1)?,
        }
        let restored = Restored { hard_state: image.hard_state, snapshot, entries: image.entries };
        Ok((storage, restored))
    }

    /// Starts segment `number`, headed by the current hard state and snapshot marker.
    fn roll(&mut self, number: u64) -> Result<(), StorageError> {
        let path = wal::segment_path(&self.wal_dir, number);
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, "create WAL segment", e))?;
        let mut header = Vec::new();
        let record = RecordRef {
            hard_state: Some(self.hard_state),
            snapshot: self.snapshot.as_ref(),
            truncate_from: None,
            entries: &[],
        };
        wal::encode_record(&record, &mut header);
        file.write_all(&header).and_then(|_| file.sync_data()).map_err(|e| StorageError::io(&path, "write WAL", e))?;
        sync_dir(&self.wal_dir)?;
        self.active = file;
        self.active_len = header.len() as u64;
        self.segments.push(Segment { number, max_index: Index(0) });
        Ok(())
    }

    /// Deletes closed segments whose every entry is covered by the snapshot at `index`.
    fn trim(&mut self, index: Index) -> Result<(), StorageError> {
        let closed = self.segments.len() - 1;
        let removable = self.segments[..closed].iter().take_while(|s| s.max_index <= index).count();
        for s in self.segments.drain(..removable) {
            let path = wal::segment_path(&self.wal_dir, s.number);
            fs::remove_file(&path).map_err(|e| StorageError::io(&path, "remove WAL segment", e))?;
        }
        if removable > 0 {
            sync_dir(&self.wal_dir)?;
        }
        Ok(())
    }
}

impl Storage for FileStorage {
    fn append(&mut self, batch: &[Persist]) -> Result<(), StorageError> {
        if self.active_len >= self.opts.segment_bytes {
            let next = self.segments.last().map_or(1, |s| s.number + 1);
            self.roll(next)?;
        }
        self.buf.clear();
        let mut snapshot_index = None;
        let mut max_index = Index(0);
        for p in batch {
            if let Some(s) = &p.snapshot {
                snapshot_file::write(&self.dir, s)?;
                self.snapshot = Some(s.meta.clone());
                snapshot_index = Some(s.meta.index);
            }
            if let Some(hs) = p.hard_state {
                self.hard_state = hs;
            }
            max_index = p.entries.last().map_or(max_index, |e| max_index.max(e.index));
            let record = RecordRef {
                hard_state: p.hard_state,
                snapshot: p.snapshot.as_ref().map(|s| &s.meta),
                truncate_from: p.truncate_from,
                entries: &p.entries,
            };
            wal::encode_record(&record, &mut self.buf);
        }
        let number = self.segments.last().expect("an active segment").number;
        let write = |f: &mut File, buf: &[u8], sync: bool| -> std::io::Result<()> {
            f.write_all(buf)?;
            if sync {
                f.sync_data()?;
            }
            Ok(())
        };
        write(&mut self.active, &self.buf, self.opts.sync)
            .map_err(|e| StorageError::io(&wal::segment_path(&self.wal_dir, number), "append to WAL", e))?;
        self.active_len += self.buf.len() as u64;
        let active = self.segments.last_mut().expect("an active segment");
        active.max_index = active.max_index.max(max_index);
        if let Some(index) = snapshot_index {
            self.trim(index)?;
        }
        Ok(())
    }
}

/// Bytes of WAL segments in the data directory `dir` (the persisted Raft state besides the
/// snapshot), for a service deciding when to snapshot. 0 if unreadable.
pub fn wal_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("wal"))
        .map(|d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

fn truncate_file(path: &Path, len: u64) -> Result<(), StorageError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(len)?;
            f.sync_all()
        })
        .map_err(|e| StorageError::io(path, "truncate torn WAL tail", e))
}
