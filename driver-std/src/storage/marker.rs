//! Small files written whole: [`write_atomically`] (a temporary file, synced, renamed into
//! place, the directory synced: a crash leaves the old content or the new, never a mix or an
//! empty file), and the data directory's cluster marker built on it.

use std::io::ErrorKind;
use std::path::Path;

use super::fs::Fs;
use super::StorageError;

/// The file naming the cluster a data directory belongs to.
pub const CLUSTER_MARKER: &str = "cluster_id";

/// Replaces `dir/name` with `bytes`, durably and atomically. Leaves `dir/name.tmp` behind if
/// it fails or crashes midway (`FileStorage::open` removes such files).
pub fn write_atomically<F: Fs>(fs: &mut F, dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    write_atomically_with(fs, dir, name, |fs, f| fs.write(f, bytes))
}

/// [`write_atomically`] for content `fill` writes piece by piece into the temporary file
/// (it may sync it on the way, too); the file is synced after it, then renamed into place.
pub fn write_atomically_with<F: Fs>(
    fs: &mut F,
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut F, &mut F::File) -> std::io::Result<()>,
) -> Result<(), StorageError> {
    let temp = dir.join(format!("{name}.tmp"));
    let write_temp = || -> std::io::Result<()> {
        let mut f = fs.create(&temp)?;
        fill(fs, &mut f)?;
        fs.sync(&mut f)
    };
    write_temp().map_err(|e| StorageError::io(&temp, "write", e))?;
    let path = dir.join(name);
    fs.rename(&temp, &path).map_err(|e| StorageError::io(&path, "rename into place", e))?;
    fs.sync_path(dir).map_err(|e| StorageError::io(dir, "sync directory", e))
}

/// Checks that data directory `dir` belongs to cluster `cluster_id`, marking it as such if it
/// is new (creating it if missing). Another cluster's directory, or a marker that does not
/// hold a cluster id, is [`StorageError::WrongCluster`].
pub fn check_cluster<F: Fs>(fs: &mut F, dir: &Path, cluster_id: u64) -> Result<(), StorageError> {
    fs.create_dir_all(dir).map_err(|e| StorageError::io(dir, "create data directory", e))?;
    let path = dir.join(CLUSTER_MARKER);
    match fs.read(&path) {
        Ok(bytes) => {
            let found = String::from_utf8_lossy(&bytes).trim().to_string();
            if found.parse::<u64>() == Ok(cluster_id) {
                Ok(())
            } else {
                Err(StorageError::WrongCluster { path, found, expected: cluster_id })
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            write_atomically(fs, dir, CLUSTER_MARKER, cluster_id.to_string().as_bytes())
        }
        Err(e) => Err(StorageError::io(&path, "read", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::SimFs;
    use super::*;

    #[test]
    fn a_crash_while_marking_a_new_directory_leaves_no_marker_or_the_whole_one() {
        let fs = SimFs::new();
        fs.record();
        check_cluster(&mut fs.clone(), Path::new("/data"), 7).unwrap();
        let mut states = 0;
        for image in fs.images() {
            for (what, state) in image.crash_states() {
                states += 1;
                let mut after = SimFs::from_image(state);
                let found = after.read(Path::new("/data/cluster_id")).ok();
                assert!(found.is_none() || found.as_deref() == Some(&b"7"[..]), "{what}: marker {found:?}");
                check_cluster(&mut after, Path::new("/data"), 7).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
        assert!(states > 5, "{states}");
        let err = check_cluster(&mut fs.clone(), Path::new("/data"), 8).unwrap_err();
        assert!(err.to_string().contains("belongs to cluster 7, not 8"), "{err}");
    }
}
