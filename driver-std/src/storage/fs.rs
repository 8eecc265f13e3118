//! The file system under [`super::FileStorage`]: every operation the storage performs on disk
//! goes through [`Fs`], so the same code runs over the real file system ([`RealFs`]) and over
//! the crash-recording [`super::SimFs`] that the `crash_points` test explores.
//!
//! Durability model the storage relies on (and `SimFs` enforces): bytes written to a file are
//! durable only after [`Fs::sync`] of that file (or [`Fs::sync_path`]); a created, renamed or
//! removed name is durable only after [`Fs::sync_path`] of its directory. A crash may keep any
//! part of what was not made durable, including a prefix of a write or a zero-filled tail.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The operations [`super::FileStorage`] performs on disk.
/// Clones share one file system (a writer thread gets its own handle).
pub trait Fs: Clone + Send + 'static {
    /// An open file, written at its end.
    type File: Send + fmt::Debug;

    /// Creates `dir` and its missing parents (durably: a directory, once made, survives).
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()>;
    /// The names of the files in `dir`.
    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole content of `path`; `ErrorKind::NotFound` if it does not exist.
    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates `path` empty (replacing any file of that name) and opens it for appending.
    fn create(&mut self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing `path` for appending; returns the file and its length.
    fn open_append(&mut self, path: &Path) -> io::Result<(Self::File, u64)>;
    /// Appends `bytes` to `file`.
    fn write(&mut self, file: &mut Self::File, bytes: &[u8]) -> io::Result<()>;
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
        let file = OpenOptions::new().append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok((file, len))
    }

    fn write(&mut self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
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
