//! Path helpers shared by the preset tools: Python's `os.path.realpath` /
//! `pathlib.Path.resolve()` (non-strict) semantics, lexical normalization, and the
//! rendering of I/O errors the way Python prints an `OSError`.
//!
//! Everything here may touch the file system (symlink look-ups) and so is blocking:
//! call it from the tools' blocking threads only. It decides nothing about which paths
//! are allowed; each tool applies its own policy to the resolved path.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed while resolving one path, as the kernel's own limit.
const MAX_SYMLINKS: usize = 40;

/// `pathlib.Path.resolve()` (non-strict): `path` made absolute against `base` (when
/// relative), every symlink on the way followed, `.` dropped and `..` applied after the
/// symlink before it was resolved; components that do not exist are kept as written.
/// Fails only on a symlink loop (more than 40 links).
pub fn resolve(base: &Path, path: &Path) -> io::Result<PathBuf> {
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let mut budget = MAX_SYMLINKS;
    let mut out = PathBuf::from("/");
    resolve_into(&mut out, &full, &mut budget)?;
    Ok(out)
}

fn resolve_into(out: &mut PathBuf, path: &Path, budget: &mut usize) -> io::Result<()> {
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => *out = PathBuf::from("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                let candidate = out.join(name);
                match std::fs::symlink_metadata(&candidate) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        if *budget == 0 {
                            return Err(io::Error::other(format!(
                                "Symlink loop from '{}'",
                                candidate.display()
                            )));
                        }
                        *budget -= 1;
                        let target = std::fs::read_link(&candidate)?;
                        // A relative target is taken from the link's directory (`out`).
                        resolve_into(out, &target, budget)?;
                    }
                    _ => *out = candidate,
                }
            }
        }
    }
    Ok(())
}

/// `pathlib`'s normalization of a joined path: `.` and repeated separators go, `..`
/// stays (pathlib never collapses it without resolving).
pub fn join_lexical(base: &Path, path: &str) -> PathBuf {
    let joined = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        base.join(path)
    };
    let normalized: PathBuf = joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if normalized.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        normalized
    }
}

/// Python's rendering of an `OSError`: `[Errno 2] No such file or directory: '/x'`.
pub fn py_os_error(e: &io::Error, path: &str) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = e.to_string();
            let strerror = text
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&text);
            format!("[Errno {code}] {strerror}: '{path}'")
        }
        None => e.to_string(),
    }
}

/// Whether an I/O error is a permission refusal (Python's `PermissionError`).
pub fn is_permission_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_follows_links_and_keeps_missing_parts() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        assert_eq!(
            resolve(&root, Path::new("link/x/../y")).unwrap(),
            root.join("real/y")
        );
        assert_eq!(
            resolve(&root, Path::new("missing/./a")).unwrap(),
            root.join("missing/a")
        );
        assert_eq!(
            resolve(&root, Path::new("../outside")).unwrap(),
            root.parent().unwrap().join("outside")
        );
        std::os::unix::fs::symlink("loop2", root.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", root.join("loop2")).unwrap();
        assert!(resolve(&root, Path::new("loop1")).is_err());
    }

    #[test]
    fn lexical_join_is_pathlib_like() {
        assert_eq!(
            join_lexical(Path::new("/w"), "./a//b/."),
            PathBuf::from("/w/a/b")
        );
        assert_eq!(
            join_lexical(Path::new("/w"), "/abs/../x"),
            PathBuf::from("/abs/../x")
        );
        assert_eq!(join_lexical(Path::new("/w"), "."), PathBuf::from("/w"));
    }
}
