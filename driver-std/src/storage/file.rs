//! [`FileStorage`]: a data directory holding `wal/` (numbered segments of checksummed records)
//! and `snapshot` (the latest snapshot, replaced atomically), on any [`Fs`].
//!
//! Writing a batch: every record is appended and the batch is synced once (group commit). A
//! snapshot's file is always durable before a WAL record names it. A snapshot that discards
//! stored entries (an install past or against the log) is written first, inside its batch. One
//! that discards none (the service's compaction, or an install matching the log) covers only
//! entries already in the WAL, so until its file is durable the old snapshot plus the log
//! recover the same state: its file is written on a thread of its own
//! ([`SnapshotWrites::Background`]), started once its batch is synced, and the record naming it
//! goes with the first batch after the file is durable. Large snapshots thus do not hold up
//! the batches behind them, unless another snapshot comes before the file is done (one is
//! written at a time, so that batch waits for it). A background write that fails is reported
//! as the error of the next batch (the node stops; the old snapshot and the WAL still recover
//! everything). A `Persist` too large for one record is split ([`wal::split`]). Once a snapshot's
//! record is durable, segments whose entries it covers are deleted. A segment is rolled when
//! it passes `segment_bytes`, also in the middle of a batch (after syncing what came before);
//! each starts with the full hard state and snapshot marker, so deleting older ones loses
//! nothing. A roll is atomic: the new segment is written and synced under a temporary name,
//! then renamed into place and its directory synced.
//!
//! Preallocation ([`FileStorageOptions::preallocate`], on by default): the active segment is
//! extended to `segment_bytes` with allocated zeros (`fallocate`) when it is started or
//! reopened, and records are written over them, so a sync writes the data and no size or
//! block-map change (on ext4 that saves a journal commit per sync, a quarter of its time
//! with three nodes on one disk). The zeros after the last record read as a torn tail (see
//! [`wal`]), cut on recovery like one; a segment is rolled only once its records fill it, so
//! closed segments hold no zeros.
//!
//! Recovery: remove temporary files a crash left, read the snapshot, replay every segment in
//! order; a torn tail of the last segment is cut away (see [`wal`] for torn versus corrupt),
//! anything else damaged is an error naming the file and offset. If the snapshot file is newer
//! than the WAL's last snapshot record (a crash between the two), the install rule decides:
//! the log after the snapshot is kept only if it holds the snapshot's last entry, the term is
//! raised to the snapshot's if it is behind, and a record saying so is written. Everything recovery read is synced before `open` returns, so the node
//! never acts on bytes a power loss could still take back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use skiff_core::{Entry, HardState, Index, Persist, Restored, SnapshotMeta};

use super::fs::{Fs, RealFs};
use super::snapshot_file::{Pending, SnapshotWrites};
use super::wal::{self, RecordRef, Tail};
use super::{snapshot_file, LogImage, Storage, StorageError};

/// Tuning of a [`FileStorage`].
#[derive(Clone, Debug)]
pub struct FileStorageOptions {
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// A `Persist` whose entries exceed this many bytes is written as several records.
    pub record_bytes: usize,
    /// fdatasync after every batch. Only for benchmarks that want to see the cost of the
    /// disk: without it, acknowledged writes can be lost by a power failure.
    pub sync: bool,
    /// How a snapshot that covers only entries already stored (see the module docs) is
    /// written: on its own thread by default, so the batches behind it do not wait for a
    /// large file's write and sync.
    pub snapshot_writes: SnapshotWrites,
    /// Preallocate each active segment to `segment_bytes` (see the module docs). Where the
    /// file system cannot, segments simply grow.
    pub preallocate: bool,
}

impl Default for FileStorageOptions {
    fn default() -> Self {
        FileStorageOptions {
            segment_bytes: 64 << 20,
            record_bytes: 8 << 20,
            sync: true,
            snapshot_writes: SnapshotWrites::Background,
            preallocate: true,
        }
    }
}

/// One WAL segment: its number, the highest entry index written in it, and (once closed)
/// the bytes its records take.
#[derive(Clone, Copy, Debug)]
struct Segment {
    number: u64,
    max_index: Index,
    len: u64,
}

/// The bytes the WAL's records take on disk (preallocated space not counted), as a handle
/// that reads the count while the storage is written on another thread.
#[derive(Clone, Debug, Default)]
pub struct WalBytes(Arc<AtomicU64>);

impl WalBytes {
    /// The bytes of every segment's records, as of the last write, roll or trim.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// File-backed [`Storage`].
#[derive(Debug)]
pub struct FileStorage<F: Fs = RealFs> {
    fs: F,
    dir: PathBuf,
    wal_dir: PathBuf,
    opts: FileStorageOptions,
    /// Oldest first; the last is the one being appended to.
    segments: Vec<Segment>,
    active: Option<F::File>,
    /// Bytes of records (and header) in the active segment: where the next write goes.
    active_len: u64,
    wal_bytes: WalBytes,
    /// Set when a write or sync failed: the active segment's cursor may be past its cut end
    /// (see `write_buf`), so every later `append` is refused (the node must stop anyway).
    failed: bool,
    /// The hard state and snapshot marker as of the last record encoded.
    hard_state: HardState,
    snapshot: Option<SnapshotMeta>,
    buf: Vec<u8>,
    /// A snapshot file written apart from the WAL; its record follows once it is durable.
    pending: Option<Pending>,
}

impl FileStorage<RealFs> {
    /// Opens (or creates) the data directory `dir` and recovers what it holds.
    pub fn open(dir: impl AsRef<Path>, opts: FileStorageOptions) -> Result<(FileStorage, Restored), StorageError> {
        FileStorage::open_on(RealFs, dir, opts)
    }
}

impl<F: Fs> FileStorage<F> {
    /// [`FileStorage::open`] on the file system `fs`.
    pub fn open_on(
        mut fs: F,
        dir: impl AsRef<Path>,
        opts: FileStorageOptions,
    ) -> Result<(FileStorage<F>, Restored), StorageError> {
        let dir = dir.as_ref().to_path_buf();
        let wal_dir = dir.join("wal");
        fs.create_dir_all(&wal_dir).map_err(|e| StorageError::io(&wal_dir, "create data directory", e))?;
        remove_temporary(&mut fs, &dir, &wal_dir)?;
        let snapshot = snapshot_file::read(&mut fs, &dir)?;
        let names = fs.list(&wal_dir).map_err(|e| StorageError::io(&wal_dir, "list WAL directory", e))?;
        let numbers = wal::segment_numbers(&wal_dir, &names)?;
        // Replay on top of the snapshot: entries it covers are skipped as they come, and after
        // trimming, the oldest segment left may start anywhere up to just past it.
        let stored = snapshot.as_ref().map_or(Index(0), |s| s.meta.index);
        let mut image = LogImage { snapshot_index: stored, ..LogImage::default() };
        let mut wal_snapshot = Index(0);
        let mut segments = Vec::new();
        let mut last_format = wal::Format::V4;
        for (k, &number) in numbers.iter().enumerate() {
            let path = wal::segment_path(&wal_dir, number);
            let bytes = fs.read(&path).map_err(|e| StorageError::io(&path, "read WAL segment", e))?;
            let (records, tail, format) = wal::parse_segment(&path, &bytes)?;
            last_format = format;
            let mut len = bytes.len() as u64;
            if let Tail::Torn { valid_len } = tail {
                if k + 1 < numbers.len() {
                    return Err(StorageError::corrupt(&path, valid_len, "damaged record in a closed segment"));
                }
                if bytes[valid_len as usize..].iter().all(|&b| b == 0) {
                    // Preallocated space, or a write that kept the size but none of the data.
                    tracing::debug!(file = %path.display(), offset = valid_len, "cutting the WAL's zero tail");
                } else {
                    tracing::warn!(file = %path.display(), offset = valid_len, "truncating a torn WAL tail");
                }
                fs.set_len(&path, valid_len).map_err(|e| StorageError::io(&path, "truncate torn WAL tail", e))?;
                len = valid_len;
            }
            if opts.sync {
                fs.sync_path(&path).map_err(|e| StorageError::io(&path, "sync WAL segment", e))?;
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
            segments.push(Segment { number, max_index, len });
        }
        // The snapshot file is written before the record that mentions it, so it may be newer
        // than the WAL knows (a crash in between), never older.
        let snapshot_path = dir.join(snapshot_file::SNAPSHOT_FILE);
        if wal_snapshot > stored {
            let what = format!("the WAL records a snapshot at {} but the file holds {}", wal_snapshot.0, stored.0);
            return Err(StorageError::Inconsistent { path: snapshot_path, what });
        }
        let unrecorded = snapshot.as_ref().filter(|s| s.meta.index > wal_snapshot).map(|s| s.meta.clone());
        let discard = unrecorded.as_ref().is_some_and(|m| image.at_snapshot != Some(m.term));
        if discard {
            image.entries.clear();
        }
        // The install's hard state came in the lost record too; a snapshot of a later term
        // than the stored one means the node had moved to that term (without a vote in it,
        // or the vote would be durable).
        let raised = unrecorded.as_ref().filter(|m| m.term > image.hard_state.term).map(|m| {
            image.hard_state = HardState { term: m.term, vote: None, commit: image.hard_state.commit };
            image.hard_state
        });
        if opts.sync {
            for path in [&snapshot_path, &wal_dir, &dir] {
                match fs.sync_path(path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && path == &snapshot_path => {}
                    r => r.map_err(|e| StorageError::io(path, "sync", e))?,
                }
            }
        }
        let mut storage = FileStorage {
            fs,
            dir,
            wal_dir,
            opts,
            segments,
            active: None,
            active_len: 0,
            wal_bytes: WalBytes::default(),
            failed: false,
            hard_state: image.hard_state,
            snapshot: snapshot.as_ref().map(|s| s.meta.clone()),
            buf: Vec::new(),
            pending: None,
        };
        match storage.segments.last() {
            // Records of the current format never go into a segment of an older one.
            Some(last) if last_format != wal::Format::V4 => storage.roll(last.number + 1)?,
            Some(last) => {
                let path = wal::segment_path(&storage.wal_dir, last.number);
                let (mut file, len) =
                    storage.fs.open_append(&path).map_err(|e| StorageError::io(&path, "open WAL segment", e))?;
                storage.preallocate(&mut file, len, &path)?;
                storage.active = Some(file);
                storage.active_len = len;
            }
            None => storage.roll(1)?,
        }
        if let Some(meta) = unrecorded {
            // Record the install rule's outcome, so a later replay sees the snapshot where
            // it is and the log after it as it was decided here.
            let truncate_from = discard.then(|| meta.index.next());
            let record = RecordRef { hard_state: raised, snapshot: Some(&meta), truncate_from, entries: &[] };
            storage.buf.clear();
            wal::encode_record(&record, &mut storage.buf).expect("a marker record is small");
            storage.write_buf(true)?;
        }
        storage.count_bytes();
        let restored = Restored { hard_state: image.hard_state, snapshot, entries: image.entries };
        Ok((storage, restored))
    }

    /// A handle on the bytes the WAL's records take (for a service deciding when to snapshot).
    pub fn wal_bytes(&self) -> WalBytes {
        self.wal_bytes.clone()
    }

    /// Publishes the WAL's size in records: closed segments' and the active one's.
    fn count_bytes(&self) {
        let closed: u64 = self.segments[..self.segments.len().saturating_sub(1)].iter().map(|s| s.len).sum();
        self.wal_bytes.0.store(closed + self.active_len, Ordering::Relaxed);
    }

    /// Extends `file` (the active segment at `path`, `len` bytes written) to `segment_bytes`
    /// if preallocation is on. A file system that cannot is noted once and gone without; a
    /// disk without room for a whole segment is warned of and this segment goes without (the
    /// writes report a full disk themselves when it comes to that); any other failure is an
    /// error.
    fn preallocate(&mut self, file: &mut F::File, len: u64, path: &Path) -> Result<(), StorageError> {
        if !self.opts.preallocate || len >= self.opts.segment_bytes {
            return Ok(());
        }
        match self.fs.preallocate(file, self.opts.segment_bytes) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                tracing::info!(file = %path.display(), error = %e, "WAL segments are not preallocated");
                self.opts.preallocate = false;
                Ok(())
            }
            // ENOSPC, 28 on every Linux architecture and the BSDs (`ErrorKind::StorageFull`
            // is newer than this crate's minimum Rust).
            Err(e) if e.raw_os_error() == Some(28) => {
                tracing::warn!(file = %path.display(), error = %e, "no room to preallocate a WAL segment");
                Ok(())
            }
            Err(e) => Err(StorageError::io(path, "preallocate WAL segment", e)),
        }
    }

    /// Starts segment `number`, headed by the current hard state and snapshot marker, atomically.
    fn roll(&mut self, number: u64) -> Result<(), StorageError> {
        if let Some(closing) = self.segments.last_mut().filter(|_| self.active.is_some()) {
            // Full (see `roll_if_full`), so no preallocated zeros are left in it.
            debug_assert!(self.active_len >= self.opts.segment_bytes);
            closing.len = self.active_len;
        }
        let path = wal::segment_path(&self.wal_dir, number);
        let temp = path.with_extension("wal.tmp");
        let mut header = wal::SEGMENT_MAGIC.to_vec();
        let record = RecordRef {
            hard_state: Some(self.hard_state),
            snapshot: self.snapshot.as_ref(),
            truncate_from: None,
            entries: &[],
        };
        wal::encode_record(&record, &mut header).expect("a segment header is small");
        let fs = &mut self.fs;
        let mut create = || -> std::io::Result<F::File> {
            let mut file = fs.create(&temp)?;
            fs.write(&mut file, &header)?;
            Ok(file)
        };
        let mut file = create().map_err(|e| StorageError::io(&temp, "create WAL segment", e))?;
        self.preallocate(&mut file, header.len() as u64, &temp)?;
        self.fs.sync(&mut file).map_err(|e| StorageError::io(&temp, "sync WAL segment", e))?;
        self.fs.rename(&temp, &path).map_err(|e| StorageError::io(&path, "rename WAL segment into place", e))?;
        self.fs.sync_path(&self.wal_dir).map_err(|e| StorageError::io(&self.wal_dir, "sync directory", e))?;
        self.active = Some(file);
        self.active_len = header.len() as u64;
        self.segments.push(Segment { number, max_index: Index(0), len: 0 });
        self.count_bytes();
        Ok(())
    }

    /// Rolls to the next segment if the active one is full.
    fn roll_if_full(&mut self) -> Result<(), StorageError> {
        if self.active_len >= self.opts.segment_bytes {
            if !self.opts.sync {
                // A closed segment must be whole, or recovery refuses it as damaged.
                self.write_buf(true)?;
            }
            let next = self.segments.last().map_or(1, |s| s.number + 1);
            self.roll(next)?;
        }
        Ok(())
    }

    /// Appends the encoded records in `buf` to the active segment, synced if `sync`.
    fn write_buf(&mut self, sync: bool) -> Result<(), StorageError> {
        let number = self.segments.last().expect("an active segment").number;
        let file = self.active.as_mut().expect("an active segment");
        let fs = &mut self.fs;
        let buf = &self.buf;
        let mut write = || -> std::io::Result<()> {
            fs.write(file, buf)?;
            if sync {
                fs.sync(file)?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            // Best effort: cut what this write left, so that a restart of the process (whose
            // page cache may hold those bytes, and whose sync would then succeed) does not
            // take a batch that failed for durable.
            let path = wal::segment_path(&self.wal_dir, number);
            let _ = self.fs.set_len(&path, self.active_len).and_then(|_| self.fs.sync_path(&path));
            self.failed = true;
            return Err(StorageError::io(&path, "append to WAL", e));
        }
        self.active_len += self.buf.len() as u64;
        self.buf.clear();
        self.count_bytes();
        Ok(())
    }

    /// Deletes closed segments whose every entry is covered by the snapshot at `index`, oldest
    /// first, syncing the directory after each: a crash leaves the sequence without a gap.
    fn trim(&mut self, index: Index) -> Result<(), StorageError> {
        let closed = self.segments.len() - 1;
        let removable = self.segments[..closed].iter().take_while(|s| s.max_index <= index).count();
        for s in self.segments.drain(..removable) {
            let path = wal::segment_path(&self.wal_dir, s.number);
            self.fs.remove(&path).map_err(|e| StorageError::io(&path, "remove WAL segment", e))?;
            self.fs.sync_path(&self.wal_dir).map_err(|e| StorageError::io(&self.wal_dir, "sync directory", e))?;
        }
        self.count_bytes();
        Ok(())
    }

    /// Encodes `record` into the buffer, tracking what it changes.
    fn encode(&mut self, record: &RecordRef<'_>) -> Result<(), StorageError> {
        wal::encode_record(record, &mut self.buf).map_err(|len| StorageError::TooLarge {
            path: wal::segment_path(&self.wal_dir, self.segments.last().map_or(0, |s| s.number)),
            len,
            max: wal::MAX_RECORD as usize,
        })?;
        if let Some(hs) = record.hard_state {
            self.hard_state = hs;
        }
        if let Some(meta) = record.snapshot {
            self.snapshot = Some(meta.clone());
        }
        let active = self.segments.last_mut().expect("an active segment");
        active.max_index = record.entries.last().map_or(active.max_index, |e: &Entry| active.max_index.max(e.index));
        Ok(())
    }
}

impl<F: Fs> FileStorage<F> {
    /// Waits for the pending snapshot file, if any, and encodes the record that names it.
    /// Returns the index its segments may be trimmed to once that record is durable.
    fn finish_pending(&mut self) -> Result<Option<Index>, StorageError> {
        let Some(pending) = self.pending.take() else { return Ok(None) };
        let meta = pending.finish(&mut self.fs, &self.dir)?;
        let record = RecordRef { hard_state: None, snapshot: Some(&meta), truncate_from: None, entries: &[] };
        self.encode(&record)?;
        Ok(Some(meta.index))
    }
}

impl<F: Fs> Storage for FileStorage<F> {
    fn append(&mut self, batch: &[Persist]) -> Result<(), StorageError> {
        if self.failed {
            let number = self.segments.last().map_or(0, |s| s.number);
            let refused = std::io::Error::other("an earlier write to this WAL failed; it takes no more");
            return Err(StorageError::io(&wal::segment_path(&self.wal_dir, number), "append to WAL", refused));
        }
        self.roll_if_full()?;
        self.buf.clear();
        let mut trim_to = None;
        if self.pending.as_ref().is_some_and(Pending::ready) {
            trim_to = self.finish_pending()?;
        }
        let mut lazy = None;
        for p in batch {
            // A snapshot that discards no stored entry (the service's compaction, or an
            // install that matched the log) covers only entries stored in earlier records:
            // until its file is durable, the old snapshot and the log recover the same state.
            let deferred = p.snapshot.is_some()
                && p.truncate_from.is_none()
                && self.opts.snapshot_writes != SnapshotWrites::Inline;
            if let Some(s) = &p.snapshot {
                // One snapshot file at a time, in order.
                if let Some(index) = self.finish_pending()? {
                    trim_to = Some(index);
                }
                if deferred {
                    lazy = Some(s);
                } else {
                    lazy = None;
                    if !self.buf.is_empty() {
                        // The records before it must not be lost while the snapshot survives.
                        self.write_buf(true)?;
                    }
                    snapshot_file::write(&mut self.fs, &self.dir, s)?;
                    trim_to = Some(s.meta.index);
                }
            }
            for mut record in wal::split(p, self.hard_state.commit, self.opts.record_bytes) {
                if deferred {
                    record.snapshot = None;
                }
                if !self.buf.is_empty() && self.active_len + self.buf.len() as u64 >= self.opts.segment_bytes {
                    // What came before is synced before the next segment's header names it.
                    self.write_buf(true)?;
                    self.roll_if_full()?;
                }
                self.encode(&record)?;
            }
        }
        // Without `sync`, a batch that trims is synced anyway: the snapshot's record must be
        // durable before the segments it covers go.
        self.write_buf(self.opts.sync || trim_to.is_some())?;
        if let Some(index) = trim_to {
            self.trim(index)?;
        }
        // Started only now that every entry it covers is durable (some may have come in this
        // batch), so the file never lands ahead of them.
        if let Some(s) = lazy {
            self.pending = Some(Pending::start(&self.fs, &self.dir, s, self.opts.snapshot_writes));
        }
        Ok(())
    }
}

impl<F: Fs> Drop for FileStorage<F> {
    /// Lets a snapshot file being written finish (its record is left to recovery, which
    /// finds the file newer than the WAL and takes it by the install rule).
    fn drop(&mut self) {
        if let Some(p) = self.pending.take().filter(|_| self.opts.snapshot_writes == SnapshotWrites::Background) {
            {
                if let Err(e) = p.finish(&mut self.fs, &self.dir) {
                    tracing::warn!(error = %e, "a snapshot written in the background failed");
                }
            }
        }
    }
}

/// Removes what a crash during a snapshot write or a segment roll left behind.
fn remove_temporary<F: Fs>(fs: &mut F, dir: &Path, wal_dir: &Path) -> Result<(), StorageError> {
    let mut removed = false;
    for d in [dir, wal_dir] {
        let names = fs.list(d).map_err(|e| StorageError::io(d, "list directory", e))?;
        for name in names.iter().filter(|n| n.ends_with(".tmp")) {
            let path = d.join(name);
            tracing::warn!(file = %path.display(), "removing a temporary file left by a crash");
            fs.remove(&path).map_err(|e| StorageError::io(&path, "remove temporary file", e))?;
            removed = true;
        }
        if removed {
            fs.sync_path(d).map_err(|e| StorageError::io(d, "sync directory", e))?;
        }
    }
    Ok(())
}
