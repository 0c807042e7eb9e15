//! A background process for the interop tests: its stdout lines arrive through a channel, its stderr goes to
//! a file (shown when something fails), and it is killed, with its whole process group, when dropped.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// A background process, killed (by its PID and process group) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line read so far (see [`Proc::drain`]).
    pub seen: Vec<String>,
    stderr_path: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdin closed, in a process group of its own; its stderr goes to
    /// `logs/<name>.stderr`.
    pub fn spawn(name: &str, cmd: Command, logs: &Path) -> Proc {
        Proc::spawn_inner(name, cmd, logs, false)
    }

    /// As [`Proc::spawn`], with stdin a pipe that [`Proc::send_line`] writes to.
    pub fn spawn_with_stdin(name: &str, cmd: Command, logs: &Path) -> Proc {
        Proc::spawn_inner(name, cmd, logs, true)
    }

    fn spawn_inner(name: &str, mut cmd: Command, logs: &Path, with_stdin: bool) -> Proc {
        let file_name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stderr_path = logs.join(format!("{file_name}.stderr"));
        let desc = format!("{cmd:?}");
        let mut child = cmd
            .stdin(if with_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr_path).unwrap())
            // Its own process group, so that whatever it starts is killed with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({desc}): {e}"));
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_string(),
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
            stderr_path,
        }
    }

    /// Writes one line to its stdin (started with [`Proc::spawn_with_stdin`]).
    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{}: started without a stdin pipe", self.name))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: cannot write to stdin: {e}", self.name))
    }

    pub fn stderr_tail(&self) -> String {
        super::file_tail(&self.stderr_path, 40)
    }

    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// What went wrong, for a failure message: the last stdout lines read so far and the end of stderr.
    pub fn report(&mut self) -> String {
        self.drain();
        let from = self.seen.len().saturating_sub(40);
        format!(
            "{} stdout (last {} lines):\n{}\n{} stderr (end):\n{}",
            self.name,
            self.seen.len() - from,
            self.seen[from..].join("\n"),
            self.name,
            self.stderr_tail()
        )
    }

    /// Moves every stdout line read so far into `seen`.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Waits until a stdout line satisfies `pick`; returns what `pick` made of it. Fails after `timeout`
    /// or when stdout closes first.
    pub fn wait_line<T>(&mut self, what: &str, timeout: Duration, pick: impl FnMut(&str) -> Option<T>) -> T {
        match self.try_wait_line(what, timeout, pick) {
            Ok(found) => found,
            Err(e) => panic!("{e}"),
        }
    }

    /// As [`Proc::wait_line`], returning the failure (with a report) instead of panicking.
    pub fn try_wait_line<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, String> {
        if let Some(found) = self.seen.iter().find_map(|l| pick(l)) {
            return Ok(found);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = pick(&line);
                    self.seen.push(line);
                    if let Some(found) = found {
                        return Ok(found);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let report = self.report();
                    return Err(format!("{}: no {what} within {timeout:?}\n{report}", self.name));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Its stdout closed: it has ended, or is about to.
                    thread::sleep(Duration::from_millis(200));
                    let status = self.child.try_wait().ok().flatten();
                    let report = self.report();
                    return Err(format!(
                        "{} closed its stdout (exit status {status:?}) before {what}\n{report}",
                        self.name
                    ));
                }
            }
        }
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process group and the process (SIGKILL) and reaps it; harmless when it has ended.
    pub fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // The group first, while the leader (not yet reaped) still holds the group id.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
