//! One peer connection's two tasks: the reader moves socket bytes to the torrent task, the writer
//! batches the torrent's messages onto the socket. Both pace themselves with the bandwidth limiters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use engine::PeerKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, Notify};

use crate::limit::Limiter;
use crate::torrent::Inbox;

/// What the writer writes: a message, or a block read from disk (counted in the upload queue).
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Protocol bytes.
    Bytes(Vec<u8>),
    /// A `piece` message (header and block) of this many queued bytes.
    Block(Vec<u8>),
}

/// Read from the peer until the connection ends, then report it gone.
pub(crate) async fn reader(
    key: PeerKey,
    mut rd: OwnedReadHalf,
    inbox: mpsc::Sender<Inbox>,
    limiter: Limiter,
    chunk: usize,
) {
    let chunk = chunk.max(4096);
    let mut buf = BytesMut::with_capacity(chunk);
    loop {
        let grant = limiter.acquire(chunk).await;
        buf.reserve(grant);
        let n = {
            let mut limited = (&mut buf).limit(grant);
            rd.read_buf(&mut limited).await
        };
        let n = match n {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(?key, "read: {e}");
                break;
            }
        };
        limiter.give_back(grant.saturating_sub(n));
        let data: Bytes = buf.split().freeze();
        if inbox.send(Inbox::Data { key, data }).await.is_err() {
            return;
        }
    }
    let _ = inbox.send(Inbox::Gone { key }).await;
}

/// The upload queue of one connection, shared by the torrent task (which adds) and the writer (which
/// takes away).
#[derive(Debug, Clone)]
pub(crate) struct UploadQueue {
    /// Block bytes read or being read for the peer and not yet written to its socket.
    pub(crate) queued: Arc<AtomicUsize>,
    /// Notified when `queued` falls under `low`.
    pub(crate) drained: Arc<Notify>,
    /// The queue's bound.
    pub(crate) low: usize,
}

/// Write the torrent's messages until it drops the sender (then flush and close) or the socket fails.
pub(crate) async fn writer(
    key: PeerKey,
    wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    inbox: mpsc::Sender<Inbox>,
    limiter: Limiter,
    queue: UploadQueue,
) {
    let UploadQueue { queued, drained, low } = queue;
    let mut out = BufWriter::with_capacity(256 << 10, wr);
    let result: std::io::Result<()> = async {
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(item) = next.take() {
                let (bytes, block) = match item {
                    Outgoing::Bytes(b) => (b, false),
                    Outgoing::Block(b) => (b, true),
                };
                let mut off = 0;
                while off < bytes.len() {
                    let want = bytes.len().saturating_sub(off);
                    let grant = limiter.acquire(want).await;
                    let end = off.saturating_add(grant).min(bytes.len());
                    out.write_all(bytes.get(off..end).unwrap_or_default()).await?;
                    off = end;
                }
                if block {
                    let before = queued.fetch_sub(bytes.len(), Ordering::AcqRel);
                    if before >= low && before.saturating_sub(bytes.len()) < low {
                        drained.notify_one();
                    }
                }
                next = rx.try_recv().ok();
            }
            out.flush().await?;
        }
        out.shutdown().await
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(?key, "write: {e}");
        let _ = inbox.send(Inbox::Gone { key }).await;
    }
}
