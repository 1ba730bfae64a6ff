//! The child processes: each server logs to a file in the test folder and is killed on drop;
//! the guardian kills them all and removes the folder when the test binary goes away without
//! dropping them (a static shared environment, a SIGKILL).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result, bail};

/// A server process whose output goes to `<dir>/<name>.log`.
#[derive(Debug)]
pub(crate) struct Server {
    name: &'static str,
    child: Child,
    log: std::path::PathBuf,
}

impl Server {
    pub(crate) fn spawn(
        name: &'static str,
        bin: &Path,
        args: &[String],
        dir: &Path,
    ) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Server { name, child, log })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the log's tail when the process has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its log:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A shell that reads process ids on its stdin; when stdin closes (this process dropped it
/// or died), it kills them and removes the test folder.
#[derive(Debug)]
pub(crate) struct Guardian {
    child: Child,
    stdin: std::sync::Mutex<Option<ChildStdin>>,
}

const GUARDIAN: &str = r#"
pids=""
while read -r pid; do pids="$pids $pid"; done
[ -n "$pids" ] && kill $pids 2>/dev/null
sleep 1
[ -n "$pids" ] && kill -9 $pids 2>/dev/null
rm -rf "$1"
"#;

impl Guardian {
    pub(crate) fn start(dir: &Path) -> Result<Self> {
        let mut child = Command::new("sh")
            .args(["-c", GUARDIAN, "guardian"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the guardian shell")?;
        let stdin = std::sync::Mutex::new(child.stdin.take());
        Ok(Guardian { child, stdin })
    }

    pub(crate) fn watch(&self, pid: u32) -> Result<()> {
        let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let stdin = stdin.as_mut().context("guardian already released")?;
        writeln!(stdin, "{pid}")?;
        stdin.flush()?;
        Ok(())
    }
}

impl Drop for Guardian {
    fn drop(&mut self) {
        drop(self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardian_kills_what_it_watches_and_removes_the_folder() {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let mut sleeper = Command::new("sleep").arg("60").spawn().expect("sleep");
        let guardian = Guardian::start(&dir).expect("guardian");
        guardian.watch(sleeper.id()).expect("watch");
        drop(guardian);
        let status = sleeper.wait().expect("wait");
        assert!(!status.success(), "the watched process was killed");
        assert!(!dir.exists(), "the folder was removed");
    }

    #[test]
    fn a_server_that_exits_reports_its_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Server::spawn(
            "false",
            Path::new("sh"),
            &["-c".into(), "echo boom; exit 3".into()],
            dir.path(),
        )
        .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let err = server.check_running().expect_err("exited").to_string();
        assert!(err.contains("boom"), "{err}");
    }
}
