//! A binary under test as a child process: its stdout and stderr kept (for the failure message),
//! readiness polled over HTTP, SIGTERM on demand, killed when dropped.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running child whose output is collected in the background (so a chatty child never blocks on a
/// full pipe) and printed in every panic this type raises.
pub struct Spawned {
    child: Child,
    program: String,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Spawned {
    /// Starts `command` with stdin closed and stdout/stderr collected; panics naming the program if it
    /// cannot start.
    pub fn spawn(mut command: Command) -> Spawned {
        let program = format!("{:?}", command.get_program());
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} did not start: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let readers = vec![collect(stdout, output.clone()), collect(stderr, output.clone())];
        Spawned {
            child,
            program,
            output,
            readers,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What the child wrote to stdout and stderr so far, interleaved as it arrived.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("output lock")).into_owned()
    }

    /// Polls `GET path` on `addr` until it answers 200. Panics, with the child's output, when the child
    /// exits first or `timeout` passes.
    pub fn wait_ready(&mut self, addr: &str, path: &str, timeout: Duration) {
        let what = format!("http://{addr}{path} answered 200");
        self.wait_until(
            &what,
            timeout,
            Duration::from_millis(50),
            |_| match crate::net::get_status(addr, path, Duration::from_secs(2)) {
                Ok(200) => Ok(()),
                last => Err(format!(
                    "http://{addr}{path} did not answer 200 within {timeout:?} (last: {last:?})"
                )),
            },
        );
    }

    /// Waits until the child has written `line` as a whole line (stdout or stderr), e.g. a test hook's
    /// `paused at POINT`. Panics, with the output, when the child exits first or `timeout` passes.
    pub fn wait_for_line(&mut self, line: &str, timeout: Duration) {
        let what = format!("printing `{line}`");
        self.wait_until(&what, timeout, Duration::from_millis(10), |child| {
            if child.output().lines().any(|l| l == line) {
                Ok(())
            } else {
                Err(format!("printed no `{line}` within {timeout:?}"))
            }
        });
    }

    /// Polls `check` every `interval` until it answers `Ok`. Panics, with the child's output, when the
    /// child exits first (`exited (STATUS) before WHAT`; checked once more on what it printed last) or
    /// `timeout` passes (with `check`'s last `Err`).
    fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        interval: Duration,
        mut check: impl FnMut(&Self) -> Result<(), String>,
    ) {
        let started = Instant::now();
        loop {
            let last = check(self);
            if last.is_ok() {
                return;
            }
            if let Some(status) = self.try_wait() {
                self.finish_output();
                if check(self).is_ok() {
                    return;
                }
                panic!(
                    "{} exited ({status}) before {what}; its output:\n{}",
                    self.program,
                    self.output()
                );
            }
            if started.elapsed() > timeout {
                let last = last.unwrap_err();
                panic!("{last}; {} output:\n{}", self.program, self.output());
            }
            std::thread::sleep(interval);
        }
    }

    /// SIGKILL (a crash, as a test simulates one), then the exit status once the child is gone.
    pub fn kill(&mut self) -> ExitStatus {
        if self.try_wait().is_none() {
            self.child.kill().expect("SIGKILL the child");
        }
        let status = self.child.wait().expect("reap the child");
        self.finish_output();
        status
    }

    /// Sends SIGTERM (what an orchestrator sends to stop a service).
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}: {status}");
    }

    /// The exit status if the child has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("query the child")
    }

    /// Waits up to `timeout` for the child to exit; panics with its output if it has not.
    pub fn wait_timeout(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                self.finish_output();
                return status;
            }
            if started.elapsed() > timeout {
                panic!(
                    "{} still running after {timeout:?}; its output:\n{}",
                    self.program,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Spawned {
    /// After the child exited: lets the readers take in what is still in the pipes (they end when the
    /// pipes close; a grandchild holding them open costs at most a second).
    fn finish_output(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Spawned {
    /// A test that fails half-way must not leave its service running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().expect("output lock").extend_from_slice(&buf[..n]);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn output_of_both_streams_is_kept() {
        let mut p = Spawned::spawn(sh("echo to-stdout; echo to-stderr >&2; exit 3"));
        let status = p.wait_timeout(Duration::from_secs(10));
        assert_eq!(status.code(), Some(3));
        let out = p.output();
        assert!(out.contains("to-stdout") && out.contains("to-stderr"), "{out:?}");
    }

    #[test]
    fn a_child_that_exits_before_ready_fails_with_its_output() {
        let mut p = Spawned::spawn(sh("echo 'cannot bind: address in use' >&2; exit 1"));
        let addr = crate::net::free_addr();
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.wait_ready(&addr, "/readyz", Duration::from_secs(10))
        }))
        .expect_err("wait_ready returned for a dead child");
        let message = panic.downcast_ref::<String>().expect("a formatted panic");
        assert!(message.contains("exited"), "{message}");
        assert!(message.contains("cannot bind: address in use"), "{message}");
    }

    #[test]
    fn a_child_that_never_listens_times_out_with_its_output() {
        let mut p = Spawned::spawn(sh("echo still-loading; exec sleep 30"));
        let addr = crate::net::free_addr();
        let started = Instant::now();
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.wait_ready(&addr, "/readyz", Duration::from_millis(500))
        }))
        .expect_err("wait_ready returned without a listener");
        assert!(started.elapsed() < Duration::from_secs(5));
        let message = panic.downcast_ref::<String>().expect("a formatted panic");
        assert!(
            message.contains("did not answer 200") && message.contains("still-loading"),
            "{message}"
        );
    }

    #[test]
    fn a_line_is_awaited_whole_and_a_missing_one_fails_with_the_output() {
        let mut p = Spawned::spawn(sh(
            "echo 'paused at x-longer'; sleep 0.2; echo 'paused at x' >&2; exec sleep 30",
        ));
        p.wait_for_line("paused at x", Duration::from_secs(10));
        assert!(p.output().contains("paused at x-longer"));
        let status = p.kill();
        assert!(!status.success(), "{status}");
        let mut q = Spawned::spawn(sh("echo 'paused at y-other'; exit 0"));
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.wait_for_line("paused at y", Duration::from_secs(10))
        }))
        .expect_err("a line that never came was found");
        let message = panic.downcast_ref::<String>().expect("a formatted panic");
        assert!(
            message.contains("exited") && message.contains("paused at y-other"),
            "{message}"
        );
    }

    #[test]
    fn sigterm_ends_the_child_and_drop_kills_a_survivor() {
        let mut p = Spawned::spawn(sh("exec sleep 30"));
        p.terminate();
        let status = p.wait_timeout(Duration::from_secs(10));
        assert!(!status.success(), "{status}");
        // A child that ignores SIGTERM is still killed on drop.
        let stubborn = Spawned::spawn(sh("trap '' TERM; exec sleep 30"));
        let pid = stubborn.id();
        drop(stubborn);
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .unwrap();
        assert!(!alive.success(), "pid {pid} outlived its Spawned");
    }
}
