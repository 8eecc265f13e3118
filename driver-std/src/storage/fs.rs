//! The file system under [`super::FileStorage`]: every operation the storage performs on disk
//! goes through [`Fs`], so the same code runs over the real file system ([`RealFs`]) and over
//! the crash-recording [`super::SimFs`] that the `crash_points` test explores.
//!
//! Durability model the storage relies on (and `SimFs` enforces): bytes written to a file are
//! durable only after [`Fs::sync`] of that file (or [`Fs::sync_path`]); a created, renamed or
//! removed name is durable only after [`Fs::sync_path`] of its directory. A crash may keep any
//! part of what was not made durable, including a prefix of a write or a zero-filled tail.
//! Space preallocated with [`Fs::preallocate`] reads as zeros and is durable, like a write,
//! after a sync of its file.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// The operations [`super::FileStorage`] performs on disk.
/// Clones share one file system (a writer thread gets its own handle).
pub trait Fs: Clone + Send + 'static {
    /// An open file, written at its cursor: where the last write ended, at first the file's
    /// end as opened (0 for a created file). Preallocation does not move it.
    type File: Send + fmt::Debug;

    /// Creates `dir` and its missing parents (durably: a directory, once made, survives).
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()>;
    /// The names of the files in `dir`.
    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole content of `path`; `ErrorKind::NotFound` if it does not exist.
    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates `path` empty (replacing any file of that name) and opens it for writing.
    fn create(&mut self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing `path` for writing at its end; returns the file and its length.
    fn open_append(&mut self, path: &Path) -> io::Result<(Self::File, u64)>;
    /// Writes `bytes` at `file`'s cursor (over what is there, extending the file past its
    /// end) and moves the cursor past them.
    fn write(&mut self, file: &mut Self::File, bytes: &[u8]) -> io::Result<()>;
    /// Extends `file` to at least `len` bytes, the new ones reading as zeros and allocated
    /// on disk, so that later writes within them change no file size or block map and a
    /// sync of them writes no metadata (Linux `fallocate`). Not durable until synced.
    /// `ErrorKind::Unsupported` where the file system cannot (the caller goes without).
    fn preallocate(&mut self, file: &mut Self::File, len: u64) -> io::Result<()>;
    /// Makes everything written to `file` durable (fdatasync).
    fn sync(&mut self, file: &mut Self::File) -> io::Result<()>;
    /// Makes the file or directory at `path` durable: a file's data, or a directory's names.
    fn sync_path(&mut self, path: &Path) -> io::Result<()>;
    /// Cuts (or zero-extends) `path` to `len` bytes, not durably.
    fn set_len(&mut self, path: &Path, len: u64) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to`, not durably.
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`, not durably.
    fn remove(&mut self, path: &Path) -> io::Result<()>;
}

/// The real file system, through `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl Fs for RealFs {
    type File = File;

    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        let missing: Vec<&Path> = dir.ancestors().take_while(|a| !a.as_os_str().is_empty() && !a.is_dir()).collect();
        fs::create_dir_all(dir)?;
        // Each new directory's name lives in its parent.
        for created in missing {
            let parent = created.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    }

    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn create(&mut self, path: &Path) -> io::Result<File> {
        OpenOptions::new().create(true).truncate(true).write(true).open(path)
    }

    fn open_append(&mut self, path: &Path) -> io::Result<(File, u64)> {
        // Not O_APPEND: writes go to the cursor, inside preallocated space.
        let mut file = OpenOptions::new().write(true).open(path)?;
        let len = file.seek(SeekFrom::End(0))?;
        Ok((file, len))
    }

    fn write(&mut self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
    }

    #[cfg(target_os = "linux")]
    fn preallocate(&mut self, file: &mut File, len: u64) -> io::Result<()> {
        if file.metadata()?.len() >= len {
            return Ok(());
        }
        // Mode 0: allocate and extend the size (the new range reads as zeros).
        rustix::fs::fallocate(&*file, rustix::fs::FallocateFlags::empty(), 0, len).map_err(|e| {
            if e == rustix::io::Errno::OPNOTSUPP {
                io::Error::new(io::ErrorKind::Unsupported, io::Error::from(e))
            } else {
                io::Error::from(e)
            }
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn preallocate(&mut self, _file: &mut File, _len: u64) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "preallocation is only implemented on Linux"))
    }

    fn sync(&mut self, file: &mut File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_path(&mut self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn set_len(&mut self, path: &Path, len: u64) -> io::Result<()> {
        OpenOptions::new().write(true).open(path)?.set_len(len)
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&mut self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
}
