//! Writes to a node's data directory that survive a crash at any instant.
//!
//! A file is written under a temporary name beside its target, fsynced, renamed over the target and
//! the directory fsynced, so a reader sees the old content or the new, never a torn file. A directory
//! is built under a temporary name and renamed into place whole. A directory is deleted by renaming
//! it aside first, so a crash in the middle of a deletion leaves a `trash-*` name that nothing loads,
//! never a half-emptied directory under its real name.
//!
//! Every step that changes the disk passes a numbered *write boundary*. With
//! `SWARM_NODE_CRASH_AT_WRITE=N` in the environment the process aborts (as a kill -9 would leave it)
//! at the Nth boundary; the fault tests use this to stop a run at each boundary in turn.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// The environment variable that makes the process abort at the Nth write boundary.
pub const CRASH_AT_WRITE_VARIABLE: &str = "SWARM_NODE_CRASH_AT_WRITE";

static BOUNDARIES_PASSED: AtomicU64 = AtomicU64::new(0);

fn crash_at() -> Option<u64> {
    static CRASH_AT: OnceLock<Option<u64>> = OnceLock::new();
    *CRASH_AT.get_or_init(|| {
        let value = std::env::var(CRASH_AT_WRITE_VARIABLE).ok()?;
        match value.trim().parse() {
            Ok(n) => Some(n),
            Err(_) => {
                eprintln!(
                    "warning: {CRASH_AT_WRITE_VARIABLE}={value:?} is not a write-boundary number; \
                     no crash will be injected"
                );
                None
            }
        }
    })
}

/// Marks one write boundary: `what` is about to happen (or has just happened) to `path`.
pub fn boundary(what: &str, path: &Path) {
    let passed = BOUNDARIES_PASSED.fetch_add(1, Ordering::SeqCst) + 1;
    if crash_at() == Some(passed) {
        eprintln!(
            "{CRASH_AT_WRITE_VARIABLE}: aborting at write boundary {passed} ({what} {})",
            path.display()
        );
        std::process::abort();
    }
}

/// Write boundaries this process has passed.
pub fn boundaries_passed() -> u64 {
    BOUNDARIES_PASSED.load(Ordering::SeqCst)
}

/// Flushes a directory's entries (new, renamed or removed names) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// A name beside `path` that carries `tag` and this process's id, so two processes never collide.
fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Writes `bytes` to `path` (which must not be kept open elsewhere) and fsyncs it, without the
/// rename step: for files inside a directory that is itself published by [`publish_dir`].
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    boundary("create", path);
    let mut file =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    boundary("written", path);
    file.sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    boundary("synced", path);
    Ok(())
}

/// Fsyncs a file written by other means (a library that writes to a path).
pub fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))?;
    boundary("synced", path);
    Ok(())
}

/// Replaces `path` with `bytes` atomically: readers and a crash see the old content or the new.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = sibling(path, "tmp");
    let written = write_synced(&tmp, bytes).and_then(|()| {
        fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))
    });
    if let Err(error) = written {
        let _ = fs::remove_file(&tmp);
        return Err(error);
    }
    boundary("renamed", path);
    sync_dir(&parent_of(path))
}

/// Creates `path` with `bytes` and permission `mode`, failing if anything (even a dangling symbolic
/// link) already has that name: the content appears whole or not at all, and nothing is replaced.
pub fn create_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = sibling(path, "new");
    let written = (|| {
        boundary("create", &tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        boundary("synced", &tmp);
        // A hard link never replaces an existing name, unlike a rename.
        fs::hard_link(&tmp, path).with_context(|| format!("cannot create {}", path.display()))
    })();
    let _ = fs::remove_file(&tmp);
    written?;
    boundary("linked", path);
    sync_dir(&parent_of(path))
}

/// Publishes the fully written directory `tmp` as `target` (which must not exist): every file and
/// the directory are fsynced, then one rename makes it visible.
pub fn publish_dir(tmp: &Path, target: &Path) -> Result<()> {
    for entry in fs::read_dir(tmp).with_context(|| format!("cannot list {}", tmp.display()))? {
        let path = entry
            .with_context(|| format!("cannot list {}", tmp.display()))?
            .path();
        if path.is_file() {
            sync_file(&path)?;
        }
    }
    sync_dir(tmp)?;
    boundary("rename", target);
    fs::rename(tmp, target)
        .with_context(|| format!("cannot move {} into place", target.display()))?;
    boundary("renamed", target);
    sync_dir(&parent_of(target))
}

/// The name a directory is moved to before it is deleted: `trash-<name>-<pid>` beside it.
pub fn trash_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!("trash-{name}-{}", std::process::id()))
}

/// Deletes the directory `path`: renamed aside to [`trash_name`] first (so a crash never leaves it
/// half-deleted under its own name), then emptied and removed.
pub fn remove_dir(path: &Path) -> Result<()> {
    let aside = trash_name(path);
    boundary("rename aside", path);
    fs::rename(path, &aside).with_context(|| format!("cannot move {} aside", path.display()))?;
    sync_dir(&parent_of(path))?;
    remove_tree(&aside)
}

/// Removes a directory that is already out of the way (a `tmp-*` or `trash-*` name), one entry at a
/// time, each deletion a write boundary.
pub fn remove_tree(path: &Path) -> Result<()> {
    for entry in fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
        let child = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&child)?;
        } else {
            boundary("delete", &child);
            fs::remove_file(&child)
                .with_context(|| format!("cannot delete {}", child.display()))?;
        }
    }
    boundary("delete", path);
    fs::remove_dir(path).with_context(|| format!("cannot delete {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_file_replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        write_file(&path, b"one\n").unwrap();
        write_file(&path, b"two\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("metrics.jsonl")]);
    }

    #[test]
    fn create_new_file_refuses_an_existing_name_and_a_dangling_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        create_new_file(&path, b"first", 0o600).unwrap();
        assert!(create_new_file(&path, b"second", 0o600).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"first");

        let link = dir.path().join("dangling.key");
        std::os::unix::fs::symlink(dir.path().join("absent"), &link).unwrap();
        assert!(create_new_file(&link, b"x", 0o600).is_err());
        assert!(
            !dir.path().join("absent").exists(),
            "the link's target is not created"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary left"
        );
    }

    #[test]
    fn remove_dir_deletes_nested_content() {
        let dir = tempfile::tempdir().unwrap();
        let doomed = dir.path().join("round-0000000001");
        fs::create_dir_all(doomed.join("inner")).unwrap();
        fs::write(doomed.join("a"), b"a").unwrap();
        fs::write(doomed.join("inner/b"), b"b").unwrap();
        remove_dir(&doomed).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn publish_dir_moves_a_directory_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp-x");
        fs::create_dir(&tmp).unwrap();
        write_synced(&tmp.join("f"), b"content").unwrap();
        let target = dir.path().join("x");
        publish_dir(&tmp, &target).unwrap();
        assert_eq!(fs::read(target.join("f")).unwrap(), b"content");
        assert!(!tmp.exists());
    }
}
