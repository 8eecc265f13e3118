//! [`group_commit`]: the storage loop every runtime runs on its storage thread (the threaded
//! [`crate::runtime`] and skiff-mio's event loop alike).

use std::sync::mpsc::Receiver;

use skiff_core::Persist;

use super::{Storage, StorageError};

/// Takes every record queued, writes them with one [`Storage::append`] (one sync for all),
/// then reports the batch's last sequence number with `report(Ok(seq))`, or the failure with
/// `report(Err(e))` and returns. Obligation kept: `Ok(seq)` is reported only once every
/// record up to `seq` is durable. Returns when `records` is closed (after writing what it
/// held), when `report` returns false, or, checked before every write, once `crashed()` says
/// so: what was queued is then lost, as on a machine that crashed.
pub fn group_commit<S: Storage>(
    storage: &mut S,
    records: &Receiver<Persist>,
    crashed: impl Fn() -> bool,
    mut report: impl FnMut(Result<u64, StorageError>) -> bool,
) {
    let mut batch = Vec::new();
    while let Ok(first) = records.recv() {
        batch.clear();
        batch.push(first);
        batch.extend(records.try_iter());
        if crashed() {
            return;
        }
        let up_to = batch.last().expect("one at least").seq;
        match storage.append(&batch) {
            Ok(()) => {
                if !report(Ok(up_to)) {
                    return;
                }
            }
            Err(e) => {
                report(Err(e));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;

    use skiff_core::Persist;

    use super::*;

    struct Counting(Vec<usize>, bool);

    impl Storage for Counting {
        fn append(&mut self, batch: &[Persist]) -> Result<(), StorageError> {
            self.0.push(batch.len());
            if self.1 {
                Err(StorageError::Corrupt { path: "x".into(), offset: 0, what: "planted".into() })
            } else {
                Ok(())
            }
        }
    }

    fn record(seq: u64) -> Persist {
        Persist { seq, snapshot: None, hard_state: None, truncate_from: None, entries: Vec::new() }
    }

    #[test]
    fn queued_records_go_in_one_append_and_a_failure_ends_the_loop() {
        let (tx, rx) = channel();
        for seq in 1..=3 {
            tx.send(record(seq)).unwrap();
        }
        drop(tx);
        let mut s = Counting(Vec::new(), false);
        let mut reports = Vec::new();
        group_commit(
            &mut s,
            &rx,
            || false,
            |r| {
                reports.push(r.map_err(|e| e.to_string()));
                true
            },
        );
        assert_eq!((s.0, reports), (vec![3], vec![Ok(3)]));

        let (tx, rx) = channel();
        tx.send(record(1)).unwrap();
        let mut s = Counting(Vec::new(), true);
        let mut reports = Vec::new();
        group_commit(
            &mut s,
            &rx,
            || false,
            |r| {
                reports.push(r.is_ok());
                true
            },
        );
        assert_eq!(reports, [false], "the failure is reported and nothing more is read");
        // After a crash request nothing is written.
        tx.send(record(2)).unwrap();
        drop(tx);
        let mut s = Counting(Vec::new(), false);
        group_commit(&mut s, &rx, || true, |_| panic!("nothing to report"));
        assert!(s.0.is_empty());
    }
}
