//! Programs the tests run (redis-server, chromium, chromedriver), found on the PATH or installed
//! from Debian's packages with apt-get, once per test process, under a lock shared by all test
//! processes; a test that cannot have one fails and says how to install it. Nothing is skipped.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The path of `program`, installing `packages` (`apt-get install -y`) first when it is not on
/// the PATH; panics with the command to run by hand when that fails. `needed_by` names the
/// tests, for that message. Call it once per process (behind a `OnceLock`): it may take minutes.
pub fn program(program: &str, packages: &[&str], needed_by: &str) -> PathBuf {
    let find = || {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        })
    };
    if let Some(found) = find() {
        return found;
    }
    // Several test processes may get here at once, and apt-get runs one at a time: one
    // installs, the others wait on the lock and then find it.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("a-chat-apt-install.lock"))
        .ok();
    let _guard = lock
        .as_ref()
        .map(|file| rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive));
    if let Some(found) = find() {
        return found;
    }
    let apt_get = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let install: Vec<&str> = ["install", "-y"].iter().chain(packages).copied().collect();
    // A fresh machine may have no package lists yet.
    let installed = apt_get(&install) || (apt_get(&["update"]) && apt_get(&install));
    find().filter(|_| installed).unwrap_or_else(|| {
        panic!(
            "{program} is needed by {needed_by} and could not be installed here: install it \
             with `sudo apt-get install -y {}` (Debian's packages)",
            packages.join(" ")
        )
    })
}
