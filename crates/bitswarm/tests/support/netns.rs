//! Where a test's processes run: this machine's loopback ([`Net::Loopback`]) or a private network namespace
//! ([`Netns`], made with `ip netns add`, root only), in which each peer gets its own address on `lo`.
//!
//! Transmission never dials 127.0.0.0/8, so a test with Transmission downloading runs everything (tracker
//! on the namespace's 127.0.0.1, each peer on its own 10.x address) inside one namespace.
#![allow(dead_code)]

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::{run_ok, run_with_timeout, COMMAND_TIMEOUT};

/// Where commands run: loopback, or the network namespace of that name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Net {
    Loopback,
    Netns(String),
}

impl Net {
    /// `program args` in this network. With `background`, the process also gets SIGKILL when the thread
    /// that started it ends (`setpriv --pdeathsig KILL`), so nothing outlives a test even if its guard never
    /// runs.
    pub fn command(&self, background: bool, program: &str) -> Command {
        let mut argv: Vec<OsString> = Vec::new();
        if background {
            argv.extend(["setpriv", "--pdeathsig", "KILL", "--"].map(OsString::from));
        }
        if let Net::Netns(name) = self {
            argv.extend(["ip", "netns", "exec", name].map(OsString::from));
        }
        argv.push(program.into());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }
}

/// A network namespace of the test's own with `lo` up; deleted when dropped. Declare it before the
/// processes that run inside it, so that they are dropped (killed) first.
pub struct Netns {
    name: String,
    addrs: Vec<Ipv4Addr>,
}

impl Netns {
    /// Makes a namespace (named `bsw-it-<pid>-<n>`), brings its `lo` up and puts `addrs` on it (as /32).
    /// Fails the test, saying why, when namespaces cannot be made (not root, no iproute2).
    pub fn create(addrs: &[Ipv4Addr]) -> Netns {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "bsw-it-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let out = run_with_timeout(Command::new("ip").args(["netns", "add", &name]), COMMAND_TIMEOUT);
        assert!(
            out.status.success(),
            "cannot make a network namespace (`ip netns add {name}`: {}): the test needs network \
             namespaces (root, iproute2, a kernel with CONFIG_NET_NS)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let mut ns = Netns {
            name,
            addrs: Vec::new(),
        };
        run_ok(ns.command("ip").args(["link", "set", "lo", "up"]));
        for &ip in addrs {
            ns.add_addr(ip);
        }
        ns
    }

    /// Puts `ip`/32 on the namespace's `lo` (once).
    pub fn add_addr(&mut self, ip: Ipv4Addr) {
        if self.addrs.contains(&ip) || ip.is_loopback() {
            return;
        }
        run_ok(
            self.command("ip")
                .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"]),
        );
        self.addrs.push(ip);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.addrs
    }

    pub fn net(&self) -> Net {
        Net::Netns(self.name.clone())
    }

    /// `ip netns exec NAME program`, for a one-shot command.
    pub fn command(&self, program: &str) -> Command {
        self.net().command(false, program)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: `ip netns del {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: cannot run `ip netns del {}`: {e}", self.name),
        }
    }
}
