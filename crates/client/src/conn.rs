//! One peer connection's two tasks: the reader moves socket bytes to the torrent task, the writer
//! batches the torrent's messages onto the socket. Both pace themselves with the bandwidth limiters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use engine::PeerKey;
use std::io::IoSlice;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    /// Notified after a write of blocks that leaves `queued` under `low`.
    pub(crate) drained: Arc<Notify>,
    /// The queue's bound.
    pub(crate) low: usize,
}

/// Messages written per `writev` at most, and their bytes (smaller under a rate limit, so the limit
/// paces the stream smoothly).
const MAX_BATCH_ITEMS: usize = 256;
const MAX_BATCH_BYTES: usize = 1 << 20;
const MAX_BATCH_BYTES_LIMITED: usize = 64 << 10;

impl Outgoing {
    fn bytes(&self) -> &[u8] {
        match self {
            Outgoing::Bytes(b) | Outgoing::Block(b) => b,
        }
    }
}

/// Write the torrent's messages until it drops the sender (then close) or the socket fails. Whatever is
/// queued is written in batches with one vectored write each: blocks go from their buffers to the
/// socket without another copy.
pub(crate) async fn writer(
    key: PeerKey,
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    inbox: mpsc::Sender<Inbox>,
    limiter: Limiter,
    queue: UploadQueue,
) {
    let UploadQueue { queued, drained, low } = queue;
    let mut batch: Vec<Outgoing> = Vec::with_capacity(MAX_BATCH_ITEMS);
    let result: std::io::Result<()> = async {
        while let Some(first) = rx.recv().await {
            let limited = limiter.is_limited();
            let max_bytes = if limited {
                MAX_BATCH_BYTES_LIMITED
            } else {
                MAX_BATCH_BYTES
            };
            let mut total = first.bytes().len();
            batch.push(first);
            while total < max_bytes && batch.len() < MAX_BATCH_ITEMS {
                match rx.try_recv() {
                    Ok(m) => {
                        total = total.saturating_add(m.bytes().len());
                        batch.push(m);
                    }
                    Err(_) => break,
                }
            }
            if limited {
                let mut need = total;
                while need > 0 {
                    need = need.saturating_sub(limiter.acquire(need).await);
                }
            }
            let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|m| IoSlice::new(m.bytes())).collect();
            let mut rest: &mut [IoSlice<'_>] = &mut slices;
            while !rest.is_empty() {
                let n = wr.write_vectored(rest).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                IoSlice::advance_slices(&mut rest, n);
            }
            let mut wrote_block = false;
            for m in batch.drain(..) {
                if let Outgoing::Block(b) = m {
                    queued.fetch_sub(b.len(), Ordering::AcqRel);
                    wrote_block = true;
                }
            }
            // Every batch of blocks that leaves the queue under its bound wakes the torrent task, not
            // only the one that crosses it: the torrent task takes bytes away too (between a piece read
            // and the blocks framed from it), and a crossing there waited for its one-second tick.
            if wrote_block && queued.load(Ordering::Acquire) < low {
                drained.notify_one();
            }
        }
        wr.shutdown().await
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(?key, "write: {e}");
        let _ = inbox.send(Inbox::Gone { key }).await;
    }
}
