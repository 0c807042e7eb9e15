//! Upload validation: a .torrent is parsed with `metainfo` (whose errors name the field and byte that is
//! wrong, and are shown to the uploader as they are), its facts extracted for the database, and the bytes
//! kept exactly as uploaded: the info dict is never changed, so the info-hash is that of the existing swarm.

use metainfo::Torrent;

/// Why an upload was refused; the message is shown on the upload page and in the API's `error` field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// No file was sent.
    #[error("no .torrent file was sent")]
    Missing,
    /// Larger than the cap.
    #[error("the file is larger than the limit of {max} bytes")]
    TooLarge {
        /// The cap.
        max: usize,
    },
    /// Not a valid torrent; the text is `metainfo`'s error.
    #[error("invalid torrent: {0}")]
    Invalid(String),
    /// Parsed, but has no info-hash the directory can key it by.
    #[error("invalid torrent: no info-hash")]
    NoHash,
    /// The category is not one of the site's.
    #[error("unknown category {0:?}")]
    Category(String),
    /// The description is too long.
    #[error("the description is longer than {max} characters")]
    Description {
        /// The cap.
        max: usize,
    },
    /// A magnet link was sent to a directory that cannot fetch metadata from peers.
    #[error(
        "magnet links cannot be uploaded here: this directory needs the .torrent file (it does not fetch \
         metadata from peers)"
    )]
    MagnetUnsupported,
    /// The magnet link does not parse.
    #[error("invalid magnet link: {0}")]
    BadMagnet(String),
    /// The metadata could not be fetched from the swarm.
    #[error("cannot fetch the magnet link's metadata from peers: {0}")]
    MetadataUnavailable(String),
}

/// Fetches a magnet link's metadata from its swarm (BEP 9), for magnet uploads. The directory itself speaks
/// no peer protocol (it depends on `metainfo` and the tracker only): whoever runs it may hand one in
/// (`bitswarm directory` does, with the peer client).
pub trait MetadataFetcher: Send + Sync {
    /// A complete torrent file for `magnet`: the info dictionary exactly as fetched and verified against
    /// the link's info-hash, with the link's trackers outside it; an error saying why not within `timeout`.
    fn fetch(
        &self,
        magnet: metainfo::Magnet,
        timeout: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, String>> + Send + '_>>;
}

/// What the database keeps of a valid upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The bytes, unchanged.
    pub bytes: Vec<u8>,
    /// The swarm info-hash (v1, or truncated v2).
    pub info_hash: [u8; 20],
    /// v1 info-hash.
    pub info_hash_v1: Option<[u8; 20]>,
    /// v2 info-hash.
    pub info_hash_v2: Option<[u8; 32]>,
    /// Name.
    pub name: String,
    /// Total size (pad files excluded).
    pub size: u64,
    /// Files: `/`-joined path and length (pad files excluded).
    pub files: Vec<(String, u64)>,
    /// Announce tiers.
    pub trackers: Vec<Vec<String>>,
    /// Piece length.
    pub piece_length: u64,
    /// "v1", "v2" or "hybrid".
    pub version: String,
    /// BEP 27 private flag.
    pub private: bool,
    /// Comment.
    pub comment: Option<String>,
    /// Created by.
    pub created_by: Option<String>,
    /// Creation date.
    pub creation_date: Option<i64>,
}

/// Parse and check an uploaded .torrent of at most `max_bytes`.
pub fn validate(bytes: Vec<u8>, max_bytes: usize) -> Result<Validated, UploadError> {
    if bytes.is_empty() {
        return Err(UploadError::Missing);
    }
    if bytes.len() > max_bytes {
        return Err(UploadError::TooLarge { max: max_bytes });
    }
    if bytes.starts_with(b"magnet:") {
        return Err(UploadError::MagnetUnsupported);
    }
    let t = Torrent::from_bytes(bytes).map_err(|e| UploadError::Invalid(e.to_string()))?;
    let info_hash = t.info_hashes.swarm_hash().ok_or(UploadError::NoHash)?.0;
    let files: Vec<(String, u64)> = t
        .info
        .files
        .iter()
        .filter(|f| !f.attr.pad)
        .map(|f| (f.path.join("/"), f.length))
        .collect();
    let size = files.iter().map(|(_, l)| *l).sum();
    let version = match t.info.version {
        metainfo::Version::V1 => "v1",
        metainfo::Version::V2 => "v2",
        metainfo::Version::Hybrid => "hybrid",
    };
    Ok(Validated {
        info_hash,
        info_hash_v1: t.info_hashes.v1.map(|h| h.0),
        info_hash_v2: t.info_hashes.v2.map(|h| h.0),
        name: t.info.name.clone(),
        size,
        files,
        trackers: t.trackers.clone(),
        piece_length: t.info.piece_length,
        version: version.into(),
        private: t.info.private,
        comment: t.comment.clone(),
        created_by: t.created_by.clone(),
        creation_date: t.creation_date,
        bytes: t.bytes().to_vec(),
    })
}

/// Check the form fields that go with a file.
pub fn check_fields(
    category: &str,
    description: &str,
    categories: &[String],
    max_description: usize,
) -> Result<(), UploadError> {
    if !categories.iter().any(|c| c == category) {
        return Err(UploadError::Category(category.chars().take(40).collect()));
    }
    if description.chars().count() > max_description {
        return Err(UploadError::Description { max: max_description });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bytes_give_metainfo_reason() {
        let e = validate(b"d4:infoi3ee".to_vec(), 1000).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("invalid torrent: "), "{text}");
        assert!(text.contains("info"), "{text}");
        assert_eq!(
            validate(vec![b'd'; 2000], 1000).unwrap_err(),
            UploadError::TooLarge { max: 1000 }
        );
    }
}
