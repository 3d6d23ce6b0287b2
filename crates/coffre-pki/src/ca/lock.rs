//! The PKI's exclusive lock: `flock(2)` on `index.lock`, a file that is
//! never replaced, so every process locks the same inode.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{Error, Result};

/// Held while one process reads and appends the journal; released on drop
/// (closing the file releases the lock, even when the process is killed).
#[derive(Debug)]
pub(crate) struct PkiLock {
    _file: File,
}

impl PkiLock {
    /// Wait until no other process (or handle) holds the lock, then hold it.
    pub(crate) fn acquire(path: &Path) -> Result<PkiLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io("create", path, e))?;
        #[cfg(unix)]
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io("lock", path, e.into()))?;
        Ok(PkiLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("index.lock");
        let first = PkiLock::acquire(&p).unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let t = {
            let (p, got) = (p.clone(), got.clone());
            std::thread::spawn(move || {
                let _second = PkiLock::acquire(&p).unwrap();
                got.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!got.load(Ordering::SeqCst), "the lock was taken twice");
        drop(first);
        t.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
    }
}
