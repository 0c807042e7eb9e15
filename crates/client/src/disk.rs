//! The disk pool: one thread per core running block writes, block reads and piece hashes for every
//! torrent, so neither disk latency nor hashing ever stalls a socket.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads taking jobs from one queue. Dropping the pool lets the threads finish the
/// queued jobs and exit.
#[derive(Debug)]
pub(crate) struct DiskPool {
    tx: Mutex<mpsc::Sender<Job>>,
}

impl DiskPool {
    pub(crate) fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let spawned = thread::Builder::new()
                .name(format!("bitswarm-disk-{i}"))
                .spawn(move || loop {
                    let job = {
                        let guard = rx.lock().unwrap_or_else(PoisonError::into_inner);
                        guard.recv()
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start disk thread {i}: {e}");
            }
        }
        DiskPool { tx: Mutex::new(tx) }
    }

    /// Run `job` on a disk thread.
    pub(crate) fn submit(&self, job: impl FnOnce() + Send + 'static) {
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        if tx.send(Box::new(job)).is_err() {
            tracing::error!("the disk pool has stopped; a disk job was dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_the_pool() {
        let pool = DiskPool::new(2);
        let (tx, rx) = mpsc::channel();
        for i in 0..100u32 {
            let tx = tx.clone();
            pool.submit(move || tx.send(i).unwrap());
        }
        let mut got: Vec<u32> = (0..100).map(|_| rx.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }
}
