//! Fetch a small document (a .torrent file) over HTTP(S), with a size cap and a deadline.

use std::time::Duration;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request could not be made or the connection failed.
    #[error("{url}: {source}")]
    Request {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body is larger than allowed.
    #[error("{url}: larger than {max} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        max: usize,
    },
}

/// GET `url` and return its body, refusing bodies over `max` bytes; the whole request is bounded by
/// `timeout`.
pub async fn get_bytes(url: &str, max: usize, timeout: Duration) -> Result<Vec<u8>, FetchError> {
    let req_err = |source| FetchError::Request {
        url: url.to_string(),
        source,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("bitswarm/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(req_err)?;
    let mut resp = client.get(url).send().await.map_err(req_err)?;
    if !resp.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(req_err)? {
        if body.len().saturating_add(chunk.len()) > max {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                max,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
