//! File path sanitising: no torrent can make bitswarm write outside its download folder.
//!
//! The policy, applied to every path component (and to the torrent's `name`):
//!
//! | input | action |
//! |---|---|
//! | empty component, `.` or `..` | **rejected**: the torrent is refused |
//! | `/` or `\` inside a component (so an absolute or nested path hidden in one element) | **rejected** |
//! | NUL byte | **rejected** |
//! | more than 64 components, or more than 4096 bytes in all | **rejected** |
//! | two files that map to the same path, or a file that is also another file's folder | **rejected** |
//! | invalid UTF-8 | neutralised: each bad sequence becomes U+FFFD |
//! | control characters (U+0001..U+001F, U+007F) | neutralised: replaced by `_` |
//! | a component longer than 255 bytes | neutralised: shortened at a character boundary, keeping an extension of up to 16 bytes |
//! | on Windows only: reserved device names (`CON`, `NUL`, `COM1`, ...), `<>:"|?*`, trailing dot or space | neutralised with `_` |
//!
//! Rejection is kept for the forms whose only use is escaping the folder or hiding a path; neutralising is
//! kept for names that are merely unusual, so real torrents with odd names still work. Other clients on the
//! same system produce the same names for every torrent that is not refused, except for very long names.

/// Why a path was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A path with no components.
    #[error("the path is empty")]
    EmptyPath,
    /// An empty component (as from `a//b` or a leading `/`).
    #[error("it has an empty component")]
    EmptyComponent,
    /// `.` or `..`.
    #[error("it has a `.` or `..` component")]
    DotComponent,
    /// A `/` or `\` inside one component.
    #[error("a component contains a path separator")]
    Separator,
    /// A NUL byte.
    #[error("it contains a NUL byte")]
    Nul,
    /// Too many components or bytes.
    #[error("it is too long (over 64 components or 4096 bytes)")]
    TooLong,
    /// Two files with the same path after sanitising.
    #[error("another file has the same path")]
    Duplicate,
    /// A file whose path is also a folder of another file.
    #[error("it is both a file and a folder")]
    FileFolderClash,
}

/// Longest component kept as is, in bytes (the limit of common file systems).
pub const MAX_COMPONENT: usize = 255;
const MAX_COMPONENTS: usize = 64;
const MAX_PATH_BYTES: usize = 4096;

/// Sanitise one raw component per the module's policy.
pub fn sanitize_component(raw: &[u8]) -> Result<String, PathError> {
    if raw.is_empty() {
        return Err(PathError::EmptyComponent);
    }
    if raw == b"." || raw == b".." {
        return Err(PathError::DotComponent);
    }
    if raw.contains(&0) {
        return Err(PathError::Nul);
    }
    if raw.iter().any(|&b| b == b'/' || b == b'\\') {
        return Err(PathError::Separator);
    }
    let text = String::from_utf8_lossy(raw);
    let mut s: String = text
        .chars()
        .map(|c| if c.is_ascii_control() { '_' } else { c })
        .collect();
    if cfg!(windows) {
        s = windows_neutralise(&s);
    }
    if s.len() > MAX_COMPONENT {
        s = shorten(&s);
    }
    Ok(s)
}

/// Sanitise a whole path (a list of raw components).
pub fn sanitize_path<'a>(raw: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<String>, PathError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for c in raw {
        if out.len() >= MAX_COMPONENTS {
            return Err(PathError::TooLong);
        }
        let s = sanitize_component(c)?;
        bytes += s.len() + 1;
        if bytes > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        out.push(s);
    }
    if out.is_empty() {
        return Err(PathError::EmptyPath);
    }
    Ok(out)
}

fn shorten(s: &str) -> String {
    let ext = s
        .rfind('.')
        .map(|i| s.get(i..).unwrap_or_default())
        .filter(|e| e.len() <= 16 && e.len() > 1);
    let ext = ext.unwrap_or("");
    let mut end = MAX_COMPONENT - ext.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", s.get(..end).unwrap_or_default(), ext)
}

fn windows_neutralise(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if out.ends_with('.') || out.ends_with(' ') {
        out.pop();
        out.push('_');
    }
    let stem = out.split('.').next().unwrap_or_default().to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes().get(3).is_some_and(|b| (b'1'..=b'9').contains(b)));
    if reserved {
        out.insert(0, '_');
    }
    out
}

/// Checks a set of sanitised file paths for duplicates and file/folder clashes. Returns the index of the
/// first offending path.
pub fn check_unique<'a>(paths: impl IntoIterator<Item = &'a [String]>) -> Result<(), (usize, PathError)> {
    use std::collections::HashSet;
    let mut files: HashSet<&[String]> = HashSet::new();
    let mut dirs: HashSet<&[String]> = HashSet::new();
    let mut all = Vec::new();
    for (i, p) in paths.into_iter().enumerate() {
        if !files.insert(p) {
            return Err((i, PathError::Duplicate));
        }
        for n in 1..p.len() {
            if let Some(prefix) = p.get(..n) {
                dirs.insert(prefix);
            }
        }
        all.push(p);
    }
    for (i, p) in all.iter().enumerate() {
        if dirs.contains(p) {
            return Err((i, PathError::FileFolderClash));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_forms_are_rejected() {
        assert_eq!(sanitize_component(b".."), Err(PathError::DotComponent));
        assert_eq!(sanitize_component(b"."), Err(PathError::DotComponent));
        assert_eq!(sanitize_component(b""), Err(PathError::EmptyComponent));
        assert_eq!(sanitize_component(b"/etc/passwd"), Err(PathError::Separator));
        assert_eq!(sanitize_component(b"..\\..\\windows"), Err(PathError::Separator));
        assert_eq!(sanitize_component(b"a/../b"), Err(PathError::Separator));
        assert_eq!(sanitize_component(b"evil\0.txt"), Err(PathError::Nul));
        assert_eq!(sanitize_path(Vec::<&[u8]>::new()), Err(PathError::EmptyPath));
        assert_eq!(
            sanitize_path([&b"ok"[..], b"..", b"x"]),
            Err(PathError::DotComponent)
        );
    }

    #[test]
    fn odd_names_are_neutralised() {
        assert_eq!(sanitize_component(b"a\x01b\x7f").unwrap(), "a_b_");
        assert_eq!(sanitize_component(b"caf\xe9").unwrap(), "caf\u{fffd}");
        assert_eq!(sanitize_component(b"...hidden").unwrap(), "...hidden");
        let long = format!("{}.mkv", "x".repeat(400));
        let s = sanitize_component(long.as_bytes()).unwrap();
        assert_eq!(s.len(), 255);
        assert!(s.ends_with(".mkv"));
        let multibyte = "é".repeat(200);
        let s = sanitize_component(multibyte.as_bytes()).unwrap();
        assert!(s.len() <= 255 && s.chars().all(|c| c == 'é'));
    }

    #[test]
    fn windows_names_only_touched_on_windows() {
        let out = sanitize_component(b"CON.txt").unwrap();
        if cfg!(windows) {
            assert_eq!(out, "_CON.txt");
        } else {
            assert_eq!(out, "CON.txt");
        }
        assert_eq!(windows_neutralise("con"), "_con");
        assert_eq!(windows_neutralise("COM1.log"), "_COM1.log");
        assert_eq!(windows_neutralise("COM10"), "COM10");
        assert_eq!(windows_neutralise("a:b?"), "a_b_");
        assert_eq!(windows_neutralise("trail."), "trail_");
    }

    #[test]
    fn too_deep_or_long_paths_are_rejected() {
        let deep: Vec<&[u8]> = vec![b"d"; 65];
        assert_eq!(sanitize_path(deep), Err(PathError::TooLong));
        let wide: Vec<Vec<u8>> = (0..20).map(|_| vec![b'a'; 250]).collect();
        assert_eq!(
            sanitize_path(wide.iter().map(|v| v.as_slice())),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn duplicates_and_clashes() {
        let p = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        let ok = [p("a/b"), p("a/c"), p("d")];
        assert!(check_unique(ok.iter().map(|v| v.as_slice())).is_ok());
        let dup = [p("a/b"), p("a/b")];
        assert_eq!(
            check_unique(dup.iter().map(|v| v.as_slice())),
            Err((1, PathError::Duplicate))
        );
        let clash = [p("a"), p("a/b")];
        assert_eq!(
            check_unique(clash.iter().map(|v| v.as_slice())),
            Err((0, PathError::FileFolderClash))
        );
    }
}
