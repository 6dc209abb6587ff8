//! Atomic, streamed file writes for uploads. Chunks received on an async
//! worker are queued (a few at a time, so memory stays flat whatever the
//! file size) to one blocking thread that writes a temporary file next to
//! the target; on commit that thread flushes and renames it over the
//! target. In synced mode it also starts write-back as the data arrives,
//! fsyncs the file before the rename and the directory after it, so a
//! committed file survives a power loss. Until the rename the target is
//! untouched.
//!
//! The temporary file is removed whenever the write does not complete: an
//! I/O error, an explicit abort, or the handler being dropped mid-upload
//! (the queue closes without a commit). No disk I/O happens on the async
//! threads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use actix_web::rt::task::{JoinHandle, spawn_blocking};
use actix_web::web::Bytes;
use tokio::sync::mpsc;

/// Chunks queued between the network and the disk.
const QUEUE_CHUNKS: usize = 16;
/// Write buffer of the disk thread.
const WRITE_BUFFER: usize = 256 * 1024;
/// Bytes between two requests to start writing the file out to disk.
const WRITE_BACK_EVERY: u64 = 8 * 1024 * 1024;

enum Msg {
    Data(Bytes),
    Commit,
}

/// A file being written; see the module documentation.
pub struct AtomicFile {
    tx: mpsc::Sender<Msg>,
    task: Option<JoinHandle<io::Result<u64>>>,
}

fn join_failure(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("upload writer failed: {e}"))
}

impl AtomicFile {
    /// Creates the target's parent directories and a temporary file beside
    /// the target, then starts the disk thread; `synced` makes the commit
    /// wait for the disk. Fails when the target is a directory or a parent
    /// cannot be created.
    pub async fn create(target: PathBuf, synced: bool) -> io::Result<AtomicFile> {
        let (file, temp, target) = spawn_blocking(move || {
            let (file, temp) = prepare(&target)?;
            Ok::<_, io::Error>((file, temp, target))
        })
        .await
        .map_err(join_failure)??;
        let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
        let task = spawn_blocking(move || write_loop(file, temp, target, rx, synced));
        Ok(AtomicFile {
            tx,
            task: Some(task),
        })
    }

    /// Queues a chunk, waiting while the queue is full. An error means the
    /// disk thread stopped (its error is returned) and the file is gone.
    pub async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        if self.tx.send(Msg::Data(chunk)).await.is_ok() {
            return Ok(());
        }
        match self.outcome().await {
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other("upload writer stopped early")),
        }
    }

    /// Completes the write: flush, (fsync,) rename over the target. Returns
    /// the number of bytes written.
    pub async fn commit(mut self) -> io::Result<u64> {
        // A failed send means the thread already stopped; its result says why.
        let _ = self.tx.send(Msg::Commit).await;
        self.outcome().await
    }

    /// Abandons the write and waits until the temporary file is removed.
    pub async fn abort(self) {
        let AtomicFile { tx, task } = self;
        drop(tx);
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    async fn outcome(&mut self) -> io::Result<u64> {
        match self.task.take() {
            Some(task) => task.await.map_err(join_failure)?,
            None => Err(io::Error::other("upload writer already finished")),
        }
    }
}

/// Removes the temporary file unless the write was committed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take()
            && let Err(e) = fs::remove_file(&p)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("could not remove {}: {e}", p.display());
        }
    }
}

fn prepare(target: &Path) -> io::Result<(File, PathBuf)> {
    let no_name = || io::Error::new(io::ErrorKind::InvalidInput, "path has no file name");
    target.file_name().ok_or_else(no_name)?;
    let parent = target.parent().ok_or_else(no_name)?;
    fs::create_dir_all(parent)?;
    let existing = match fs::metadata(target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if existing.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "target is a directory",
        ));
    }
    let suffix = agent_actors::ids::Uuid::new_v4().simple();
    let temp = parent.join(format!(".oh-upload-{}.tmp", &suffix[..16]));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    // An overwrite keeps the mode of the file it replaces (as an in-place
    // write would have).
    if let Some(m) = existing
        && let Err(e) = fs::set_permissions(&temp, m.permissions())
    {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok((file, temp))
}

/// Asks the kernel to start writing the file's dirty pages to disk now,
/// without waiting: the disk works while the rest of a large upload
/// arrives, and the fsync of the commit has little left to do.
#[cfg(target_os = "linux")]
fn start_write_back(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range on a file descriptor we own; offset 0 and
    // length 0 mean the whole file; it only schedules I/O.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_write_back(_file: &File) {}

fn write_loop(
    file: File,
    temp: PathBuf,
    target: PathBuf,
    mut rx: mpsc::Receiver<Msg>,
    synced: bool,
) -> io::Result<u64> {
    let mut guard = TempGuard(Some(temp.clone()));
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut written = 0u64;
    let mut kicked = 0u64;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Data(chunk) => {
                out.write_all(&chunk)?;
                written += chunk.len() as u64;
                // Early write-back only pays when the commit waits for the
                // disk; otherwise it would hold the upload to disk speed.
                if synced && written - kicked >= WRITE_BACK_EVERY {
                    start_write_back(out.get_ref());
                    kicked = written;
                }
            }
            Msg::Commit => {
                let file = out.into_inner().map_err(|e| e.into_error())?;
                if synced {
                    file.sync_all()?;
                }
                drop(file);
                fs::rename(&temp, &target)?;
                guard.0 = None;
                // Make the rename itself durable; failure here does not
                // undo a completed upload.
                if synced
                    && let Some(dir) = target.parent()
                    && let Ok(d) = File::open(dir)
                {
                    let _ = d.sync_all();
                }
                return Ok(written);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::Interrupted,
        "upload abandoned before completion",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".oh-upload-"))
            .collect()
    }

    async fn commit_abort_and_drop(synced: bool) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/dir/f.bin");
        // A large file crosses the write-back threshold of synced mode.
        let big = Bytes::from(vec![7u8; (WRITE_BACK_EVERY + 4096) as usize]);
        let big_target = dir.path().join("big.bin");
        let mut w = AtomicFile::create(big_target.clone(), synced)
            .await
            .unwrap();
        w.write(big.clone()).await.unwrap();
        assert_eq!(w.commit().await.unwrap(), big.len() as u64);
        assert_eq!(fs::read(&big_target).unwrap(), big);

        let mut w = AtomicFile::create(target.clone(), synced).await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert!(!target.exists(), "target untouched before commit");
        assert_eq!(w.commit().await.unwrap(), 11);
        assert_eq!(fs::read(&target).unwrap(), b"hello world");

        let mut w = AtomicFile::create(target.clone(), synced).await.unwrap();
        w.write(Bytes::from_static(b"partial")).await.unwrap();
        w.abort().await;
        assert_eq!(fs::read(&target).unwrap(), b"hello world");
        assert!(leftovers(target.parent().unwrap()).is_empty());

        let mut w = AtomicFile::create(target.clone(), synced).await.unwrap();
        w.write(Bytes::from_static(b"dropped")).await.unwrap();
        drop(w);
        let parent = target.parent().unwrap().to_path_buf();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !leftovers(&parent).is_empty() && std::time::Instant::now() < deadline {
            actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(leftovers(&parent).is_empty(), "dropped writer cleans up");
        assert_eq!(fs::read(&target).unwrap(), b"hello world");
    }

    #[actix_web::test]
    async fn commit_abort_and_drop_synced() {
        commit_abort_and_drop(true).await;
    }

    #[actix_web::test]
    async fn commit_abort_and_drop_unsynced() {
        commit_abort_and_drop(false).await;
    }

    #[actix_web::test]
    async fn refuses_directories() {
        let dir = tempfile::tempdir().unwrap();
        let err = AtomicFile::create(dir.path().to_path_buf(), false)
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
        let file = dir.path().join("plain");
        fs::write(&file, b"x").unwrap();
        let err = AtomicFile::create(file.join("below"), true)
            .await
            .err()
            .unwrap();
        assert!(matches!(
            err.kind(),
            io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists
        ));
    }
}
