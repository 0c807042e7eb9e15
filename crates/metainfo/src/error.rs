//! The metainfo error type: every message names the field (and file or byte offset) that is wrong.

use crate::path::PathError;

/// Why a torrent file or info dictionary was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    /// The bytes are not valid bencode.
    #[error(transparent)]
    Bencode(#[from] bencode::Error),
    /// A required field is absent.
    #[error("missing field `{field}`")]
    Missing {
        /// Dotted path of the field, such as `info.piece length`.
        field: String,
    },
    /// A field has the wrong bencode type.
    #[error("field `{field}` at byte {offset} must be {expected}, found {found}")]
    WrongType {
        /// Dotted path of the field.
        field: String,
        /// Byte offset of the value.
        offset: usize,
        /// The expected type.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// A field has a value that is out of range or inconsistent.
    #[error("field `{field}` at byte {offset}: {reason}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// Byte offset of the value (0 when the problem is the document as a whole).
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A file path that could escape the download folder or cannot be stored.
    #[error("file path `{field}` ({shown:?}): {reason}")]
    UnsafePath {
        /// Dotted path of the field.
        field: String,
        /// The path, lossily as text.
        shown: String,
        /// What is wrong with it.
        reason: PathError,
    },
}

impl MetainfoError {
    pub(crate) fn invalid(field: impl Into<String>, offset: usize, reason: impl Into<String>) -> Self {
        MetainfoError::Invalid {
            field: field.into(),
            offset,
            reason: reason.into(),
        }
    }
}
