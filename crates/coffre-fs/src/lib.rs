//! Files coffre owns, handled one way everywhere:
//!
//! - [`write_atomic`]: temporary file in the same directory, `fsync`,
//!   rename over the target, `fsync` of the directory. A crash leaves the
//!   old file or the new one; a failed write (full disk, quota) is returned
//!   and leaves no temporary file behind.
//! - [`LockFile`]: an exclusive advisory lock (`flock`) that records who
//!   holds it (pid and command line), so a second writer is told whom it
//!   collides with. The lock goes with the process: a crash releases it.
//!   A reader that may not write the directory takes a shared lock on the
//!   existing file instead ([`LockFile::lock_shared`]).
//! - [`read_limited`]: read a whole file, refusing one larger than a bound
//!   (a device such as `/dev/zero` is refused instead of read forever).
//! - [`rotate`]: keep the previous versions of a log (`log.1` … `log.N`).
//!
//! # Example
//!
//! ```
//! use coffre_fs::{read_limited, write_atomic, LockError, LockFile};
//!
//! let dir = tempfile::tempdir()?;
//! let index = dir.path().join("index.jsonl");
//! // One writer at a time: a second lock on the same file is refused and
//! // names the holder.
//! let lock = LockFile::try_lock(&dir.path().join("index.lock")).map_err(std::io::Error::other)?;
//! match LockFile::try_lock(lock.path()) {
//!     Err(LockError::Held { holder, .. }) => assert!(holder.starts_with("pid ")),
//!     _ => panic!("the lock is held"),
//! }
//! write_atomic(&index, b"{\"id\":\"m5go\"}\n", 0o644)?;
//! assert_eq!(read_limited(&index, 1024)?, b"{\"id\":\"m5go\"}\n");
//! // A file larger than the bound is refused, not read.
//! assert!(read_limited(&index, 4).is_err());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// `path` made absolute with its directory resolved (the file itself may
/// not exist yet), so two spellings of one file compare equal.
fn absolute(path: &Path) -> PathBuf {
    let dir = parent_dir(path);
    let dir = fs::canonicalize(&dir).unwrap_or(dir);
    match path.file_name() {
        Some(n) => dir.join(n),
        None => dir,
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Make a rename or creation in `dir` durable. Not every platform can open
/// a directory to sync it; where it cannot, there is nothing more to do.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir) {
        Ok(d) => match d.sync_all() {
            Ok(()) => Ok(()),
            // Some file systems refuse fsync on a directory handle.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
            Err(e) => Err(e),
        },
        Err(_) => Ok(()),
    }
}

static TMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Replace `path` with `bytes` atomically, the new file getting permission
/// bits `mode` (Unix). On any error the target is unchanged and the
/// temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, mode, |f| f.write_all(bytes))
}

/// As [`write_atomic`], with the content produced by `fill` (which writes
/// into the temporary file).
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp)?;
    let result = (|| {
        fill(&mut f)?;
        f.flush()?;
        f.sync_all()?;
        // The umask may have narrowed the mode: set it exactly.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        fs::rename(&tmp, path)
    })();
    drop(f);
    match result {
        Ok(()) => sync_dir(&dir),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Write many files, each replaced atomically as by [`write_atomic`], with
/// one `syncfs` for all of them instead of one `fsync` per file (a batch of
/// thousands of certificates): every temporary file is written, the file
/// system synced once, then each renamed over its target and each
/// directory synced. On error no temporary file is left; targets already
/// renamed keep their new content.
pub fn write_atomic_batch(files: &[(PathBuf, Vec<u8>)], mode: u32) -> io::Result<()> {
    let mut temps: Vec<PathBuf> = Vec::with_capacity(files.len());
    let result = (|| {
        for (path, bytes) in files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = parent_dir(path).join(format!(
                ".{name}.{}-{}.tmp",
                std::process::id(),
                TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(mode);
            }
            let mut f = opts.open(&tmp)?;
            temps.push(tmp);
            f.write_all(bytes)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(fs::Permissions::from_mode(mode))?;
            }
        }
        let mut dirs: Vec<PathBuf> = files.iter().map(|(p, _)| parent_dir(p)).collect();
        dirs.sort();
        dirs.dedup();
        if let Some(dir) = dirs.first() {
            rustix::fs::syncfs(File::open(dir)?)?;
        }
        for ((path, _), tmp) in files.iter().zip(&temps) {
            fs::rename(tmp, path)?;
        }
        temps.clear();
        for dir in &dirs {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    for t in &temps {
        let _ = fs::remove_file(t);
    }
    result
}

/// Read all of `path`, refusing a file (or device) longer than `limit`
/// bytes with an [`io::ErrorKind::InvalidData`] error that says so.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let mut out = Vec::new();
    f.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the {limit}-byte limit for this file"),
        ));
    }
    Ok(out)
}

/// Move `path` to `path.1`, `path.1` to `path.2`, … keeping `keep`
/// previous versions (the oldest is deleted). Nothing happens when `path`
/// does not exist. `keep == 0` deletes `path`.
pub fn rotate(path: &Path, keep: u32) -> io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let numbered = |n: u32| {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    };
    if keep == 0 {
        return fs::remove_file(path);
    }
    match fs::remove_file(numbered(keep)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for n in (1..keep).rev() {
        match fs::rename(numbered(n), numbered(n + 1)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    fs::rename(path, numbered(1))?;
    sync_dir(&parent_dir(path))
}

/// Why a lock could not be taken.
#[derive(Debug)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds the lock.
    Held {
        /// The lock file.
        path: PathBuf,
        /// What the holder recorded: `pid N: command line`.
        holder: String,
    },
    /// The lock file could not be created or locked.
    Io {
        /// The lock file.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { path, holder } => {
                write!(
                    f,
                    "{} is held by another process ({holder})",
                    path.display()
                )
            }
            LockError::Io { path, .. } => write!(f, "cannot lock {}", path.display()),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Held { .. } => None,
            LockError::Io { source, .. } => Some(source),
        }
    }
}

/// An exclusive advisory lock on a lock file, held until dropped (or the
/// process ends). The file records the holder; it is left in place when the
/// lock is released (removing it would race with the next locker).
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    _file: File,
}

fn lock_io(path: &Path, source: io::Error) -> LockError {
    LockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn open_lock_file(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| lock_io(path, e))
}

/// `pid N: command line` of this process (the command line cut to 200
/// characters).
pub fn this_process() -> String {
    let mut cmd = std::env::args().collect::<Vec<_>>().join(" ");
    if cmd.chars().count() > 200 {
        cmd = cmd.chars().take(200).collect::<String>() + "…";
    }
    format!("pid {}: {cmd}", std::process::id())
}

impl LockFile {
    /// Take the lock on `path` (created if missing) without waiting for its
    /// holder (a lock seen held is looked at again for up to 200 ms, see
    /// below).
    pub fn try_lock(path: &Path) -> Result<LockFile, LockError> {
        let file = open_lock_file(path)?;
        // A lock just released can still look held for a moment: a child
        // forked by another thread of the holder keeps a copy of its file
        // descriptor until it execs. Look again for a short while before
        // naming a holder.
        let mut tries = 0;
        let taken = loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Err(e) if e == rustix::io::Errno::WOULDBLOCK && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => break r,
            }
        };
        match taken {
            Ok(()) => Ok(LockFile::held(path, file)),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = (&file).take(512).read_to_string(&mut text);
                // The first line: a holder that has just written its own
                // may not have cut the previous one's tail yet.
                let holder = match text.lines().next().unwrap_or("").trim() {
                    "" => "holder unknown".to_string(),
                    t => t.to_string(),
                };
                Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder,
                })
            }
            Err(e) => Err(lock_io(path, e.into())),
        }
    }

    /// Take the lock on `path` (created if missing), waiting while another
    /// process (or another handle of this one) holds it: for short critical
    /// sections every writer must pass through, such as a journal append.
    pub fn lock(path: &Path) -> Result<LockFile, LockError> {
        let file = open_lock_file(path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| lock_io(path, e.into()))?;
        Ok(LockFile::held(path, file))
    }

    /// Take a shared lock on an existing lock file, opened read-only,
    /// waiting while a writer holds it: for a reader that may not write
    /// the directory (files on read-only media, or owned by another user).
    /// Exclusive locks wait for it, as it waits for them; the holder is not
    /// recorded. A missing lock file is an [`LockError::Io`] of kind
    /// `NotFound`: it is not created.
    pub fn lock_shared(path: &Path) -> Result<LockFile, LockError> {
        let file = File::open(path).map_err(|e| lock_io(path, e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockShared)
            .map_err(|e| lock_io(path, e.into()))?;
        Ok(LockFile {
            path: path.to_path_buf(),
            _file: file,
        })
    }

    /// The lock just taken on `file`: record the holder for whoever collides
    /// with us. A failure to record does not weaken the lock itself.
    ///
    /// The new line is written over the old one, then the file cut to its
    /// length: a file emptied first (truncated to 0) and rewritten is, on
    /// ext4, flushed to disk at close ("replace via truncate"), which
    /// costs a fraction of a millisecond, and up to tens of milliseconds
    /// on a busy disk, on every lock taken.
    fn held(path: &Path, mut file: File) -> LockFile {
        let line = format!("{}\n", this_process());
        if file.rewind().is_ok() && file.write_all(line.as_bytes()).is_ok() {
            let _ = file.set_len(line.len() as u64);
        }
        LockFile {
            path: path.to_path_buf(),
            _file: file,
        }
    }

    /// Take the lock on `path` for this process: a second call for the same
    /// path while the first lock is alive returns the same lock instead of
    /// colliding with it. Other processes are refused as with
    /// [`LockFile::try_lock`].
    pub fn for_process(path: &Path) -> Result<Arc<LockFile>, LockError> {
        static HELD: Mutex<Vec<(PathBuf, Weak<LockFile>)>> = Mutex::new(Vec::new());
        let key = absolute(path);
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|(_, w)| w.strong_count() > 0);
        if let Some(l) = held
            .iter()
            .find(|(p, _)| *p == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(l);
        }
        let l = Arc::new(LockFile::try_lock(path)?);
        held.push((key, Arc::downgrade(&l)));
        Ok(l)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_line_replaces_a_longer_one_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        fs::write(&p, format!("pid 1: {}\nmore\n", "y".repeat(400))).unwrap();
        let l = LockFile::try_lock(&p).unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            format!("{}\n", this_process())
        );
        drop(l);
    }

    #[test]
    fn a_batch_is_written_whole_with_no_temporary_left() {
        let d = tempfile::tempdir().unwrap();
        let files: Vec<_> = (0..20)
            .map(|i| (d.path().join(format!("f{i}")), vec![i as u8; 10]))
            .collect();
        fs::write(&files[3].0, b"old").unwrap();
        write_atomic_batch(&files, 0o644).unwrap();
        for (p, b) in &files {
            assert_eq!(&fs::read(p).unwrap(), b);
        }
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 20);
        // A target in a missing directory fails the batch; nothing is left.
        let bad = vec![
            (d.path().join("g0"), b"x".to_vec()),
            (d.path().join("nope/g1"), b"y".to_vec()),
        ];
        assert!(write_atomic_batch(&bad, 0o644).is_err());
        assert!(!d.path().join("g0").exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 20);
        write_atomic_batch(&[], 0o644).unwrap();
    }

    #[test]
    fn a_shared_lock_keeps_writers_out_and_creates_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.lock");
        match LockFile::lock_shared(&p) {
            Err(LockError::Io { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::NotFound)
            }
            other => panic!("a missing lock file: {other:?}"),
        }
        assert!(!p.exists());
        drop(LockFile::try_lock(&p).unwrap());
        let before = fs::read(&p).unwrap();
        let a = LockFile::lock_shared(&p).unwrap();
        let b = LockFile::lock_shared(&p).unwrap();
        assert!(matches!(
            LockFile::try_lock(&p),
            Err(LockError::Held { .. })
        ));
        drop((a, b));
        assert_eq!(fs::read(&p).unwrap(), before, "a reader wrote");
        drop(LockFile::try_lock(&p).unwrap());
    }

    #[test]
    fn a_blocking_lock_waits_for_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.lock");
        let first = LockFile::lock(&p).unwrap();
        assert!(matches!(
            LockFile::try_lock(&p),
            Err(LockError::Held { .. })
        ));
        let t = {
            let p = p.clone();
            std::thread::spawn(move || LockFile::lock(&p).map(|_| ()))
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!t.is_finished(), "the lock was taken twice");
        drop(first);
        t.join().unwrap().unwrap();
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o644
            );
        }
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_write_keeps_the_old_file_and_removes_the_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"old", 0o600).unwrap();
        let err = write_atomic_with(&p, 0o600, |f| {
            f.write_all(b"half")?;
            Err(io::Error::from_raw_os_error(28)) // ENOSPC
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn read_limited_refuses_endless_devices() {
        let e = read_limited(Path::new("/dev/zero"), 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, [7u8; 10]).unwrap();
        assert_eq!(read_limited(&p, 10).unwrap().len(), 10);
        assert!(read_limited(&p, 9).is_err());
    }

    #[test]
    fn rotation_keeps_n_previous_versions() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        for i in 0..5 {
            fs::write(&p, format!("run {i}")).unwrap();
            rotate(&p, 3).unwrap();
        }
        assert!(!p.exists());
        let r = |n| fs::read_to_string(d.path().join(format!("log.{n}"))).unwrap();
        assert_eq!(r(1), "run 4");
        assert_eq!(r(2), "run 3");
        assert_eq!(r(3), "run 2");
        assert!(!d.path().join("log.4").exists());
        rotate(&p, 3).unwrap(); // nothing to rotate
    }

    #[test]
    fn a_second_lock_names_the_holder_and_a_released_lock_is_free() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let held = LockFile::try_lock(&p).unwrap();
        // flock locks belong to the open file description: a second open,
        // even in this process, collides like another process would.
        match LockFile::try_lock(&p).unwrap_err() {
            LockError::Held { holder, .. } => {
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                )
            }
            e => panic!("unexpected {e}"),
        }
        drop(held);
        LockFile::try_lock(&p).unwrap();
    }

    #[test]
    fn the_process_lock_is_shared_within_the_process() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("y.lock");
        let a = LockFile::for_process(&p).unwrap();
        let b = LockFile::for_process(&d.path().join(".").join("y.lock")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(LockFile::try_lock(&p).is_err());
        drop((a, b));
        LockFile::try_lock(&p).unwrap();
    }
}

/// A TCP address on 127.0.0.1 that nothing listens on right now: for a
/// broker or a daemon to be started on. Another process may take it in
/// between; callers that start a server on it see that as an "address in
/// use" error.
///
/// The port is chosen at random *below* the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default), in
/// the 16,384 ports under it: a port of that range, as `bind(:0)` gives,
/// can be taken in between as the local port of any outgoing connection,
/// and a test suite that opens thousands of them (the fleet tests) made
/// that a real chance. Where the range cannot be read, or no port below it
/// is free after 64 tries, the kernel chooses.
pub fn free_loopback_addr() -> io::Result<std::net::SocketAddr> {
    use std::hash::BuildHasher;
    use std::net::{Ipv4Addr, SocketAddr, TcpListener};
    let low = ephemeral_low().unwrap_or(0);
    // Ports 1024..low, at most 16,384 of them; none if the range starts low.
    let below = u64::from(low.saturating_sub(1024).min(16_384));
    for _ in 0..if below > 0 { 64 } else { 0 } {
        // Each RandomState has keys of its own: a fresh random number.
        let pick = std::collections::hash_map::RandomState::new().hash_one(0u8) % below;
        let port = low - 1 - pick as u16;
        if let Ok(l) = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
            return l.local_addr();
        }
    }
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The first port of the kernel's range of local ports for outgoing
/// connections (Linux).
fn ephemeral_low() -> Option<u16> {
    let text = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod free_addr_tests {
    #[test]
    fn the_address_is_loopback_and_bindable() {
        let a = super::free_loopback_addr().unwrap();
        assert!(a.ip().is_loopback());
        assert_ne!(a.port(), 0);
        std::net::TcpListener::bind(a).expect("nothing listens there");
    }

    #[test]
    fn the_port_is_below_the_range_outgoing_connections_use() {
        let low = super::ephemeral_low().expect("Linux says its range");
        let ports: std::collections::HashSet<u16> = (0..200)
            .map(|_| super::free_loopback_addr().unwrap().port())
            .collect();
        assert!(ports.iter().all(|&p| p < low && p >= 1024), "{ports:?}");
        // Spread at random, so that two callers rarely meet.
        assert!(ports.len() > 150, "only {} distinct ports", ports.len());
    }
}
