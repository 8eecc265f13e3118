//! [`SimFs`]: an in-memory file system that keeps, for every file and every name, what a
//! running process sees apart from what a power loss would leave, records its state after
//! every operation, and can fail any operation. The `crash_points` test runs
//! [`super::FileStorage`] on it and recovers from every disk state a crash allows
//! ([`DiskImage::crash_states`]).
//!
//! Model (the [`super::Fs`] contract): written bytes become durable on a sync of their file;
//! created, renamed and removed names become durable on a sync of their directory. Directories
//! are durable once created. What a crash keeps of the rest is arbitrary; `crash_states` picks
//! the states below, for every file and every name independently:
//! - nothing unsynced kept (a power loss), or everything written kept;
//! - a page cache that outlives the process (a process crash: still not durable);
//! - one file's unsynced tail partly kept (cut at its first byte, half way and one byte short),
//!   or its size kept with zeros in place of the data, whole or from half way; a write over
//!   durable bytes (preallocated zeros) likewise partly kept, the old bytes after the cut;
//! - one name change kept without the others.
//!
//! Not modelled: a later page of an unsynced write kept while an earlier one is lost (zeros,
//! then data), which a file system converting allocated extents as each page's write
//! completes could leave after a power loss in the middle of a sync (ext4 does so for
//! appended blocks too). Recovery refuses such a last segment as damaged rather than guess
//! whether the records after the zeros were acknowledged.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fs::Fs;

/// One file's content as the process sees it, and the part a power loss keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

/// The state of a simulated disk at one moment.
#[derive(Clone, Debug, Default)]
pub struct DiskImage {
    /// The names the process sees, each to its inode.
    names: BTreeMap<PathBuf, usize>,
    /// The names a power loss keeps.
    durable_names: BTreeMap<PathBuf, usize>,
    dirs: BTreeSet<PathBuf>,
    inodes: Vec<Inode>,
}

impl DiskImage {
    /// The files the process sees, with their content (for inspection and deduplication).
    pub fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        self.names.iter().map(|(p, &i)| (p.clone(), self.inodes[i].data.clone())).collect()
    }

    /// A disk holding exactly `files`, all durable (their directories too).
    pub fn with_files(files: &BTreeMap<PathBuf, Vec<u8>>) -> DiskImage {
        let mut image = DiskImage::default();
        for (k, (path, data)) in files.iter().enumerate() {
            image.dirs.extend(path.ancestors().skip(1).map(Path::to_path_buf));
            image.inodes.push(Inode { data: data.clone(), durable: data.clone() });
            image.names.insert(path.clone(), k);
        }
        image.durable_names = image.names.clone();
        image
    }

    /// The disk after a power loss: only what was made durable.
    pub fn power_loss(&self) -> DiskImage {
        self.settle(&self.durable_names, |_, inode| inode.durable.clone())
    }

    /// A disk whose names are `names` and whose files hold `content(inode number, inode)`, all
    /// of it durable (the state found after a reboot).
    fn settle(&self, names: &BTreeMap<PathBuf, usize>, content: impl Fn(usize, &Inode) -> Vec<u8>) -> DiskImage {
        let inodes = self
            .inodes
            .iter()
            .enumerate()
            .map(|(i, inode)| {
                let data = content(i, inode);
                Inode { durable: data.clone(), data }
            })
            .collect();
        DiskImage { names: names.clone(), durable_names: names.clone(), dirs: self.dirs.clone(), inodes }
    }

    /// The disk states a crash at this moment may leave, each with a description, without
    /// repeats. The first is the power loss, the second the process crash.
    pub fn crash_states(&self) -> Vec<(String, DiskImage)> {
        let mut states = vec![
            ("power loss".to_string(), self.power_loss()),
            ("process crash (page cache kept, not durable)".to_string(), self.clone()),
            ("everything written kept".to_string(), self.settle(&self.names, |_, inode| inode.data.clone())),
        ];
        for (i, inode) in self.inodes.iter().enumerate() {
            if inode.data == inode.durable {
                continue;
            }
            let variants = partial_writes(inode);
            let name = self
                .names
                .iter()
                .find(|(_, &n)| n == i)
                .map_or("an unlinked file".into(), |(p, _)| p.display().to_string());
            for (what, content) in variants {
                let pick = |k: usize, other: &Inode| if k == i { content.clone() } else { other.durable.clone() };
                states.push((format!("{name}: {what}"), self.settle(&self.names, pick)));
                states.push((format!("{name}: {what}, names as durable"), self.settle(&self.durable_names, pick)));
            }
        }
        let changed: BTreeSet<&PathBuf> = self
            .names
            .keys()
            .chain(self.durable_names.keys())
            .filter(|p| self.names.get(*p) != self.durable_names.get(*p))
            .collect();
        for path in changed {
            let mut names = self.durable_names.clone();
            match self.names.get(path) {
                Some(&i) => names.insert(path.clone(), i),
                None => names.remove(path),
            };
            let what = format!("only the change of name {} kept", path.display());
            states.push((format!("{what}, data as synced"), self.settle(&names, |_, inode| inode.durable.clone())));
            states.push((format!("{what}, data as written"), self.settle(&names, |_, inode| inode.data.clone())));
        }
        let mut seen = HashSet::new();
        states.retain(|(_, image)| {
            let key = (
                image.files(),
                image
                    .durable_names
                    .iter()
                    .map(|(p, &i)| (p.clone(), image.inodes[i].durable.clone()))
                    .collect::<Vec<_>>(),
            );
            seen.insert(key)
        });
        states
    }

    fn inode_at(&self, path: &Path) -> io::Result<usize> {
        self.names
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file", path.display())))
    }
}

/// What a crash may keep of one file whose data differs from what is durable, besides all
/// or nothing of it: the unsynced range (from the first byte that differs to the end of what
/// was written) cut at its first byte, half way and one byte short, the bytes after the cut
/// as they were durable (none past a durable end); the written size with zeros in place of
/// that range, whole or from half way. A file that only shrank keeps its new content whole.
fn partial_writes(inode: &Inode) -> Vec<(String, Vec<u8>)> {
    let (data, durable) = (&inode.data, &inode.durable);
    let base = data.iter().zip(durable).position(|(a, b)| a != b).unwrap_or(data.len().min(durable.len()));
    if base == data.len() {
        return vec![("unsynced rewrite kept".to_string(), data.clone())];
    }
    // The written range ends at the last byte that differs (or the written end).
    let end = if data.len() > durable.len() {
        data.len()
    } else {
        data.iter().zip(durable).rposition(|(a, b)| a != b).map_or(base, |p| p + 1)
    };
    let extra = end - base;
    // The written bytes before `upto`, the durable ones after it (`upto` < `end` <= data.len()).
    let keep = |upto: usize| -> Vec<u8> {
        (0..upto.max(durable.len())).map(|k| if k < upto { data[k] } else { durable[k] }).collect()
    };
    let mut variants = Vec::new();
    for cut in [1, extra / 2, extra.saturating_sub(1)] {
        if cut > 0 && cut < extra {
            variants.push((format!("{cut} of {extra} unsynced bytes kept"), keep(base + cut)));
        }
    }
    let zeros = |from: usize| -> Vec<u8> {
        let mut v = data[..from].to_vec();
        v.extend(data[from..end].iter().map(|_| 0));
        v.extend_from_slice(&data[end..]);
        v
    };
    variants.push((format!("size kept, {extra} unsynced bytes zero"), zeros(base)));
    variants.push((format!("half of {extra} unsynced bytes kept, the rest zero"), zeros(base + extra / 2)));
    variants
}

/// An open [`SimFs`] file: its inode (it outlives a rename or removal of its name) and the
/// cursor its writes go to.
#[derive(Debug)]
pub struct SimFile {
    inode: usize,
    pos: usize,
}

#[derive(Debug, Default)]
struct SimState {
    disk: DiskImage,
    /// Operations that change the disk, so far (the failed one included).
    ops: u64,
    /// The disk after every operation, when recording.
    images: Option<Vec<DiskImage>>,
    /// The operation (by number, from 1) that fails, and its OS error number.
    fail_at: Option<(u64, i32)>,
    /// What the planted failure hit, once it fired (`"write <open file>"`, say).
    fired: Option<String>,
}

/// A simulated file system; clones share one disk.
#[derive(Clone, Debug, Default)]
pub struct SimFs(Arc<Mutex<SimState>>);

impl SimFs {
    /// An empty disk.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// A disk in the state `image` (a crash state, say).
    pub fn from_image(image: DiskImage) -> SimFs {
        SimFs(Arc::new(Mutex::new(SimState { disk: image, ..SimState::default() })))
    }

    fn state(&self) -> MutexGuard<'_, SimState> {
        self.0.lock().expect("sim fs lock")
    }

    /// Starts keeping the disk's state after every operation (see [`SimFs::images`]).
    pub fn record(&self) {
        let mut s = self.state();
        let now = s.disk.clone();
        s.images = Some(vec![now]);
    }

    /// The states recorded since [`SimFs::record`]: `images()[k]` is the disk after `k`
    /// operations counted from then.
    pub fn images(&self) -> Vec<DiskImage> {
        self.state().images.clone().unwrap_or_default()
    }

    /// The number of disk-changing operations performed so far.
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// Makes operation number `op` (counted by [`SimFs::ops`], from 1) fail with the OS
    /// error `errno` (28 is ENOSPC, 5 is EIO), changing nothing.
    pub fn fail_at(&self, op: u64, errno: i32) {
        self.state().fail_at = Some((op, errno));
    }

    /// What the failure planted with [`SimFs::fail_at`] hit, if it fired: the operation's
    /// name and path (`"preallocate <open file>"`).
    pub fn fired(&self) -> Option<String> {
        self.state().fired.clone()
    }

    /// The disk as it is now.
    pub fn image(&self) -> DiskImage {
        self.state().disk.clone()
    }

    /// Runs one disk-changing operation: counts it, fails it if planted, records the result.
    fn op<T>(&self, what: &str, path: &Path, f: impl FnOnce(&mut DiskImage) -> io::Result<T>) -> io::Result<T> {
        let mut s = self.state();
        s.ops += 1;
        let result = match s.fail_at {
            Some((op, errno)) if op == s.ops => {
                s.fired = Some(format!("{what} {}", path.display()));
                let e = io::Error::from_raw_os_error(errno);
                Err(io::Error::new(e.kind(), format!("{e} (planted, on {what} {})", path.display())))
            }
            _ => f(&mut s.disk),
        };
        let now = s.disk.clone();
        if let Some(images) = &mut s.images {
            images.push(now);
        }
        result
    }
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl Fs for SimFs {
    type File = SimFile;

    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        self.op("create directory", dir, |d| {
            for a in dir.ancestors() {
                d.dirs.insert(a.to_path_buf());
            }
            Ok(())
        })
    }

    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.state();
        if !s.disk.dirs.contains(dir) {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{}: no such directory", dir.display())));
        }
        let names = s.disk.names.keys().filter(|p| parent(p) == dir);
        Ok(names.filter_map(|p| p.file_name()?.to_str().map(str::to_string)).collect())
    }

    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.state();
        let i = s.disk.inode_at(path)?;
        Ok(s.disk.inodes[i].data.clone())
    }

    fn create(&mut self, path: &Path) -> io::Result<SimFile> {
        self.op("create", path, |d| {
            if !d.dirs.contains(&parent(path)) {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
            }
            d.inodes.push(Inode::default());
            let inode = d.inodes.len() - 1;
            d.names.insert(path.to_path_buf(), inode);
            Ok(SimFile { inode, pos: 0 })
        })
    }

    fn open_append(&mut self, path: &Path) -> io::Result<(SimFile, u64)> {
        let s = self.state();
        let inode = s.disk.inode_at(path)?;
        let len = s.disk.inodes[inode].data.len();
        Ok((SimFile { inode, pos: len }, len as u64))
    }

    fn write(&mut self, file: &mut SimFile, bytes: &[u8]) -> io::Result<()> {
        self.op("write", Path::new("<open file>"), |d| {
            let data = &mut d.inodes[file.inode].data;
            let end = file.pos + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[file.pos..end].copy_from_slice(bytes);
            file.pos = end;
            Ok(())
        })
    }

    fn preallocate(&mut self, file: &mut SimFile, len: u64) -> io::Result<()> {
        self.op("preallocate", Path::new("<open file>"), |d| {
            let data = &mut d.inodes[file.inode].data;
            if data.len() < len as usize {
                data.resize(len as usize, 0);
            }
            Ok(())
        })
    }

    fn sync(&mut self, file: &mut SimFile) -> io::Result<()> {
        self.op("sync", Path::new("<open file>"), |d| {
            let inode = &mut d.inodes[file.inode];
            inode.durable = inode.data.clone();
            Ok(())
        })
    }

    fn sync_path(&mut self, path: &Path) -> io::Result<()> {
        self.op("sync", path, |d| {
            if d.dirs.contains(path) {
                let in_dir = |p: &PathBuf| parent(p) == path;
                d.durable_names.retain(|p, _| !in_dir(p));
                let names: Vec<_> = d.names.iter().filter(|(p, _)| in_dir(p)).map(|(p, &i)| (p.clone(), i)).collect();
                d.durable_names.extend(names);
                return Ok(());
            }
            let i = d.inode_at(path)?;
            d.inodes[i].durable = d.inodes[i].data.clone();
            Ok(())
        })
    }

    fn set_len(&mut self, path: &Path, len: u64) -> io::Result<()> {
        self.op("set length of", path, |d| {
            let i = d.inode_at(path)?;
            d.inodes[i].data.resize(len as usize, 0);
            Ok(())
        })
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.op("rename", from, |d| {
            let i = d.inode_at(from)?;
            d.names.remove(from);
            d.names.insert(to.to_path_buf(), i);
            Ok(())
        })
    }

    fn remove(&mut self, path: &Path) -> io::Result<()> {
        self.op("remove", path, |d| {
            d.inode_at(path)?;
            d.names.remove(path);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_and_names_are_lost_on_power_loss_and_kept_once_synced() {
        let mut fs = SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let mut f = fs.create(&dir.join("a")).unwrap();
        fs.write(&mut f, b"hello").unwrap();
        fs.sync(&mut f).unwrap();
        let lost = fs.image().power_loss();
        assert!(lost.files().is_empty(), "the name was never synced: {:?}", lost.files());
        fs.sync_path(dir).unwrap();
        fs.write(&mut f, b" world").unwrap();
        let after = fs.image().power_loss().files();
        assert_eq!(after.get(&dir.join("a")).map(Vec::as_slice), Some(&b"hello"[..]));
        let states = fs.image().crash_states();
        let contents: Vec<Vec<u8>> =
            states.iter().filter_map(|(_, s)| s.files().get(&dir.join("a")).cloned()).collect();
        for want in [&b"hello"[..], b"hello world", b"hello ", b"hello\0\0\0\0\0\0"] {
            assert!(contents.iter().any(|c| c == want), "{:?} among the crash states", String::from_utf8_lossy(want));
        }
    }

    #[test]
    fn a_planted_failure_changes_nothing_and_is_reported() {
        let mut fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let mut f = fs.create(Path::new("/d/a")).unwrap();
        fs.fail_at(fs.ops() + 1, 28);
        let err = fs.write(&mut f, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(fs.read(Path::new("/d/a")).unwrap(), b"");
    }
}
