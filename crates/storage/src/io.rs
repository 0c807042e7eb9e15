//! Positioned I/O (no shared file cursor, so threads can use one handle at once) and opening files without
//! following symbolic links.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::StorageError;

/// Read exactly `buf.len()` bytes at `offset`; a file that ends first is [`StorageError::Short`].
#[cfg(unix)]
pub(crate) fn read_exact_at(f: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<(), StorageError> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, offset).map_err(|source| {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            StorageError::Short {
                path: path.to_path_buf(),
                needed: offset + buf.len() as u64,
            }
        } else {
            StorageError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Read exactly `buf.len()` bytes at `offset`; a file that ends first is [`StorageError::Short`].
#[cfg(windows)]
pub(crate) fn read_exact_at(
    f: &File,
    path: &Path,
    mut buf: &mut [u8],
    mut offset: u64,
) -> Result<(), StorageError> {
    use std::os::windows::fs::FileExt;
    let end = offset + buf.len() as u64;
    while !buf.is_empty() {
        match f.seek_read(buf, offset) {
            Ok(0) => {
                return Err(StorageError::Short {
                    path: path.to_path_buf(),
                    needed: end,
                })
            }
            Ok(n) => {
                let rest = std::mem::take(&mut buf);
                buf = rest.get_mut(n..).unwrap_or_default();
                offset += n as u64;
            }
            Err(source) if source.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(StorageError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Write all of `data` at `offset`.
#[cfg(unix)]
pub(crate) fn write_all_at(f: &File, path: &Path, data: &[u8], offset: u64) -> Result<(), StorageError> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(data, offset)
        .map_err(|source| StorageError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Write all of `data` at `offset`.
#[cfg(windows)]
pub(crate) fn write_all_at(
    f: &File,
    path: &Path,
    mut data: &[u8],
    mut offset: u64,
) -> Result<(), StorageError> {
    use std::os::windows::fs::FileExt;
    while !data.is_empty() {
        match f.seek_write(data, offset) {
            Ok(0) => {
                return Err(StorageError::Write {
                    path: path.to_path_buf(),
                    source: std::io::ErrorKind::WriteZero.into(),
                })
            }
            Ok(n) => {
                data = data.get(n..).unwrap_or_default();
                offset += n as u64;
            }
            Err(source) if source.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(StorageError::Write {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Open options that never follow a symbolic link in the last component (`O_NOFOLLOW`: opening a link fails
/// with `ELOOP`) and never block on a FIFO planted where a file belongs (`O_NONBLOCK`, which has no effect on
/// regular files).
pub(crate) fn no_follow(write: bool) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true);
    if write {
        o.write(true).create(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    o
}

/// Open `path` with [`no_follow`], mapping a symbolic link to [`StorageError::Symlink`] and anything but a
/// regular file to [`StorageError::NotAFile`].
pub(crate) fn open_file(path: &Path, write: bool) -> Result<File, StorageError> {
    if cfg!(not(unix)) && is_symlink(path) {
        return Err(StorageError::Symlink {
            path: path.to_path_buf(),
        });
    }
    let f = no_follow(write).open(path).map_err(|source| {
        if is_symlink_error(&source) || is_symlink(path) {
            StorageError::Symlink {
                path: path.to_path_buf(),
            }
        } else {
            StorageError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let meta = f.metadata().map_err(|source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(StorageError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    Ok(f)
}

#[cfg(unix)]
fn is_symlink_error(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(not(unix))]
fn is_symlink_error(_: &std::io::Error) -> bool {
    false
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}
