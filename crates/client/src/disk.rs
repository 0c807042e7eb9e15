//! The disk pool: one thread per core running block writes, block reads and piece hashes for every
//! torrent, so neither disk latency nor hashing ever stalls a socket.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads taking jobs from one queue, plus one writer thread for whole-piece writes (so
/// writes to one file never contend for its lock, while hashing uses every core). Dropping the pool lets
/// the threads finish the queued jobs and exit.
#[derive(Debug)]
pub(crate) struct DiskPool {
    tx: Mutex<mpsc::Sender<Job>>,
    writer: Mutex<mpsc::Sender<Job>>,
}

/// A handle to the pool's writer thread, usable from a job running on the pool.
#[derive(Debug, Clone)]
pub(crate) struct Writer(mpsc::Sender<Job>);

impl Writer {
    /// Run `job` on the writer thread.
    pub(crate) fn submit(&self, job: impl FnOnce() + Send + 'static) {
        if self.0.send(Box::new(job)).is_err() {
            tracing::error!("the disk writer has stopped; a write was dropped");
        }
    }
}

fn spawn_workers(name: &str, threads: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads {
        let rx = Arc::clone(&rx);
        let spawned = thread::Builder::new()
            .name(format!("{name}-{i}"))
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
            tracing::error!("cannot start {name} thread {i}: {e}");
        }
    }
    tx
}

impl DiskPool {
    pub(crate) fn new(threads: usize) -> Self {
        DiskPool {
            tx: Mutex::new(spawn_workers("bitswarm-disk", threads)),
            writer: Mutex::new(spawn_workers("bitswarm-write", 1)),
        }
    }

    /// Run `job` on a disk thread.
    pub(crate) fn submit(&self, job: impl FnOnce() + Send + 'static) {
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        if tx.send(Box::new(job)).is_err() {
            tracing::error!("the disk pool has stopped; a disk job was dropped");
        }
    }

    /// The writer thread.
    pub(crate) fn writer(&self) -> Writer {
        Writer(self.writer.lock().unwrap_or_else(PoisonError::into_inner).clone())
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
