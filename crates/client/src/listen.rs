//! The listen socket: accept, read the first 48 bytes of the handshake (protocol string, reserved bits,
//! info-hash), and hand the connection to the torrent with that info-hash. Unknown torrents, non-BitTorrent
//! bytes and connections over the global limit are closed.

use std::sync::Arc;

use metainfo::InfoHashV1;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::torrent::Inbox;
use crate::Shared;

/// Bytes of a handshake up to and including the info-hash.
const PREFIX_LEN: usize = 48;
const PROTOCOL: &[u8] = b"\x13BitTorrent protocol";

pub(crate) async fn run(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&shared.connections).try_acquire_owned() else {
            tracing::debug!(%addr, "incoming connection refused: connection limit");
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let Some((stream, prefix)) = read_prefix(&shared, stream).await else {
                tracing::debug!(%addr, "incoming connection dropped: no BitTorrent handshake");
                return;
            };
            let Some(hash) = prefix.get(28..48).and_then(|h| <[u8; 20]>::try_from(h).ok()) else {
                return;
            };
            let inbox = shared.torrents().get(&InfoHashV1(hash)).cloned();
            let Some(inbox) = inbox else {
                tracing::debug!(%addr, "incoming connection for an unknown torrent {}", InfoHashV1(hash));
                return;
            };
            let _ = inbox
                .send(Inbox::Incoming {
                    stream,
                    addr,
                    prefix,
                    permit,
                })
                .await;
        });
    }
}

async fn read_prefix(shared: &Shared, mut stream: TcpStream) -> Option<(TcpStream, Vec<u8>)> {
    let mut prefix = vec![0u8; PREFIX_LEN];
    let read = tokio::time::timeout(shared.config.handshake_timeout, stream.read_exact(&mut prefix)).await;
    match read {
        Ok(Ok(_)) if prefix.starts_with(PROTOCOL) => {
            let _ = stream.set_nodelay(true);
            Some((stream, prefix))
        }
        _ => None,
    }
}
