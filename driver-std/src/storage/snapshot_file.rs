//! The snapshot file: `SNAPSHOT_MAGIC | len: u64 LE | crc32c(payload): u32 LE | payload`,
//! the payload a postcard-encoded `skiff_core::Snapshot`, written with
//! [`super::write_atomically_with`]: a crash leaves either the old snapshot or the new one,
//! never a mix.
//!
//! A file that does not start with the magic is read as format 3 (`len | crc | payload`,
//! with the voter list of its time; see `legacy`). The two never look alike: a format-3
//! length equal to the magic's first 8 bytes would be at least 2^58.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use skiff_core::{Snapshot, SnapshotMeta};

use super::fs::Fs;
use super::{legacy, write_atomically_with, StorageError};

pub const SNAPSHOT_FILE: &str = "snapshot";
/// The first bytes of a snapshot file: "SKIFSNP" and the format number.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"SKIFSNP\x04";
/// Length and checksum, after the magic.
const HEADER: usize = 12;

/// Bytes of a snapshot's data written between syncs of its file. A file written whole and
/// synced once leaves all of it dirty at once, and the WAL's syncs on the same disk queue
/// behind its write-back (tens of milliseconds for 1M keys on three nodes at once); synced
/// every this many bytes, a WAL sync waits behind at most this much of it.
pub const SYNC_EVERY: usize = 2 << 20;

/// Writes `snapshot` as the directory's snapshot, durably, replacing any older one. The
/// payload, postcard's encoding of the snapshot (its meta, then the data as a varint length
/// and the bytes), is written in parts, so the data is never copied; the file is synced every
/// [`SYNC_EVERY`] bytes of it.
pub fn write<F: Fs>(fs: &mut F, dir: &Path, snapshot: &Snapshot) -> Result<(), StorageError> {
    let data = &snapshot.data[..];
    let head = postcard::to_allocvec(&snapshot.meta).expect("snapshot metas always encode");
    let head = postcard::to_extend(&data.len(), head).expect("lengths always encode");
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head), data);
    let mut first = Vec::with_capacity(SNAPSHOT_MAGIC.len() + HEADER + head.len());
    first.extend_from_slice(&SNAPSHOT_MAGIC);
    first.extend_from_slice(&((head.len() + data.len()) as u64).to_le_bytes());
    first.extend_from_slice(&crc.to_le_bytes());
    first.extend_from_slice(&head);
    write_atomically_with(fs, dir, SNAPSHOT_FILE, |fs, f| {
        fs.write(f, &first)?;
        let mut chunks = data.chunks(SYNC_EVERY).peekable();
        while let Some(chunk) = chunks.next() {
            fs.write(f, chunk)?;
            if chunks.peek().is_some() {
                fs.sync(f)?;
            }
        }
        Ok(())
    })
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use skiff_core::{Index, Membership, NodeId, Term};

    use super::*;
    use crate::storage::SimFs;

    fn snapshot(index: u64, len: usize) -> Snapshot {
        let meta = SnapshotMeta {
            index: Index(index),
            term: Term(3),
            membership: Membership::from_voters(vec![NodeId(1), NodeId(2), NodeId(3)]).unwrap(),
            membership_index: Index(1),
        };
        Snapshot { meta, data: Bytes::from((0..len).map(|i| (i * 7 + index as usize) as u8).collect::<Vec<u8>>()) }
    }

    /// The file as written whole: the magic, the payload's length and checksum, and the
    /// payload postcard makes of the whole snapshot.
    fn whole(s: &Snapshot) -> Vec<u8> {
        let payload = postcard::to_allocvec(s).unwrap();
        let mut bytes = SNAPSHOT_MAGIC.to_vec();
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes
    }

    #[test]
    fn the_file_written_in_parts_is_the_whole_encoding() {
        let dir = Path::new("/d");
        for len in [0, 1, 200, SYNC_EVERY, 2 * SYNC_EVERY + 5] {
            let mut fs = SimFs::new();
            fs.create_dir_all(dir).unwrap();
            let s = snapshot(9, len);
            write(&mut fs, dir, &s).unwrap();
            let files = fs.image().files();
            assert_eq!(files[&dir.join(SNAPSHOT_FILE)], whole(&s), "data of {len} bytes");
            assert_eq!(read(&mut fs, dir).unwrap(), Some(s));
        }
    }

    #[test]
    fn a_crash_while_a_large_snapshot_is_written_leaves_the_old_one_or_the_new() {
        let dir = Path::new("/d");
        let mut fs = SimFs::new();
        fs.create_dir_all(dir).unwrap();
        let (old, new) = (snapshot(5, 100), snapshot(9, 2 * SYNC_EVERY + 5));
        write(&mut fs, dir, &old).unwrap();
        fs.record();
        write(&mut fs, dir, &new).unwrap();
        let images = fs.images();
        // Three data writes and the syncs between them, as well as the rest.
        assert!(images.len() >= 8, "{} operations", images.len() - 1);
        let (mut saw_old, mut saw_new) = (false, false);
        for (k, image) in images.iter().enumerate() {
            for (what, state) in image.crash_states() {
                let found = read(&mut SimFs::from_image(state), dir).unwrap_or_else(|e| panic!("op {k}, {what}: {e}"));
                assert!(found == Some(old.clone()) || found == Some(new.clone()), "op {k}, {what}: a third snapshot");
                saw_old |= found == Some(old.clone());
                saw_new |= found == Some(new.clone());
            }
        }
        assert!(saw_old && saw_new);
    }
}
