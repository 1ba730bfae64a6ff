//! Rendering a release's templates in child processes, confined and bounded.
//!
//! A release comes from a registry someone else runs. Its templates render under a fuel
//! budget and output caps ([`crate::template`]), but one template operation can still
//! allocate hundreds of megabytes before either sees it, and a memory-safety bug in the
//! template engine would run with whatever the process holds. So an operator renders through
//! a pool of workers: copies of its own binary started in worker mode ([`WORKER_ENV`]) with an
//! empty environment, each confined as [`worker`] says (memory limit, a seccomp filter: no
//! files, no sockets, no programs, no other processes), each render with a wall deadline and
//! a CPU budget (`RLIMIT_CPU`, set by the operator before each request). A worker that passes
//! a bound dies alone; the render is refused naming the bound, and the next request starts a
//! fresh worker.
//!
//! The pool is shared fairly: the renders of one release hold at most all workers but one,
//! so a release whose templates run near the bounds delays a cluster on another release by
//! one worker start at most. Answers are read up to [`wire::MAX_ANSWER`].
//!
//! The protocol ([`wire`]): length-prefixed JSON frames on the worker's stdin and stdout. A
//! worker keeps the releases it was sent, by digest, so a cluster's reconcile sends only its
//! values.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, BufWriter};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use api::v1beta1::AddonOverride;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem};
use crate::release::Release;
use crate::template::{ClusterValues, RenderedAddon};

mod wire;
mod worker;

use wire::{Answer, ClusterWire, ReleaseWire, RenderRequest, Request};
pub use worker::serve_if_worker;

/// The environment variable that starts a binary as a render worker.
pub const WORKER_ENV: &str = "KAAS_RENDER_WORKER";
/// The signal the kernel sends a process past its CPU limit.
const SIGXCPU: i32 = 24;
/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS: u64 = 100;

/// MiB a worker's data segment may take unless told otherwise.
pub const DEFAULT_MEMORY_MIB: u64 = 128;
/// Workers in the pool unless told otherwise.
pub const DEFAULT_WORKERS: usize = 2;

/// The bounds of the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A worker's data segment (heap and private mappings), in bytes.
    pub memory: u64,
    /// How long one render may take.
    pub deadline: Duration,
    /// CPU time one render may use.
    pub cpu: Duration,
    /// Workers run at once.
    pub workers: usize,
}

impl Default for Limits {
    /// Two workers of 128 MiB: with the operator's own memory they stay inside the pod's
    /// limit (deploy/) even while templates in both try to take everything.
    fn default() -> Self {
        Limits {
            memory: DEFAULT_MEMORY_MIB * 1024 * 1024,
            deadline: Duration::from_secs(20),
            cpu: Duration::from_secs(10),
            workers: DEFAULT_WORKERS,
        }
    }
}

/// What confines a worker, as the worker found it after confining itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The worker's process id.
    pub pid: u32,
    /// The names of the environment variables it sees.
    pub environment: Vec<String>,
    /// What holds (`"no file can be opened"`).
    pub applied: Vec<String>,
    /// What the platform refused, and why.
    pub missing: Vec<String>,
}

/// The report of the worker started last, if any.
pub fn last_report() -> Option<Report> {
    LAST_REPORT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

static LAST_REPORT: Mutex<Option<Report>> = Mutex::new(None);

/// From now on, every render of this process goes through workers started from `exe` (the
/// running binary, which must call [`serve_if_worker`] first thing): the sandbox becomes the
/// templates' [`crate::template::Isolation`].
pub fn install(exe: PathBuf, limits: Limits) {
    crate::template::isolate(Box::new(Sandbox {
        exe,
        limits,
        workers: (0..limits.workers.max(1))
            .map(|_| Mutex::new(None))
            .collect(),
        busy: Mutex::new(HashMap::new()),
        freed: Condvar::new(),
    }));
}

/// Renders through a pool of workers, starting one when a slot has none.
#[derive(Debug)]
pub(crate) struct Sandbox {
    exe: PathBuf,
    limits: Limits,
    workers: Vec<Mutex<Option<Worker>>>,
    /// Renders in flight per release (digest, or name and version).
    busy: Mutex<HashMap<String, usize>>,
    freed: Condvar,
}

#[derive(Debug)]
struct Worker {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    releases: HashSet<String>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A worker slot held for one request of one release; given back when dropped.
struct Lease<'a> {
    slot: Option<MutexGuard<'a, Option<Worker>>>,
    key: String,
    sandbox: &'a Sandbox,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        drop(self.slot.take());
        let mut busy = self.sandbox.lock_busy();
        if let Some(n) = busy.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.key);
            }
        }
        self.sandbox.freed.notify_all();
    }
}

impl Lease<'_> {
    fn worker(&mut self) -> Result<&mut Worker, Error> {
        let slot = self.slot.as_mut().ok_or_else(|| failed("no worker slot"))?;
        if slot.is_none() {
            **slot = Some(self.sandbox.start()?);
        }
        slot.as_mut().ok_or_else(|| failed("no worker"))
    }

    /// The worker is gone or stuck: never reuse it.
    fn discard(&mut self) {
        if let Some(slot) = self.slot.as_mut() {
            **slot = None;
        }
    }
}

impl crate::template::Isolation for Sandbox {
    /// Renders `release` for `cluster` with `overrides` in a worker.
    fn render(
        &self,
        release: &Release,
        cluster: &ClusterValues,
        overrides: &[AddonOverride],
    ) -> Result<Vec<RenderedAddon>, Error> {
        let mut lease = self.lease(&release_name(release));
        let worker = lease.worker()?;
        let known = !release.digest.is_empty() && worker.releases.contains(&release.digest);
        let request = Request::Render(Box::new(RenderRequest {
            digest: release.digest.clone(),
            release: (!known).then(|| ReleaseWire {
                stack: release.stack.clone(),
                files: release.files.clone(),
                digest: release.digest.clone(),
            }),
            cluster: ClusterWire {
                name: cluster.name.clone(),
                namespace: cluster.namespace.clone(),
                provider: cluster.provider.clone(),
                kubernetes_version: cluster.kubernetes_version.clone(),
                pod_cidr: cluster.pod_cidr.clone(),
                service_cidr: cluster.service_cidr.clone(),
                mtu: cluster.mtu,
            },
            overrides: overrides.to_vec(),
        }));
        match self.exchange(worker, &request) {
            Ok(answer) => {
                if !release.digest.is_empty() {
                    worker.releases.insert(release.digest.clone());
                }
                match answer {
                    Answer::Rendered(addons) => Ok(addons),
                    Answer::Invalid(problems) => Err(Error::Invalid(problems)),
                    Answer::Failed(message) => Err(failed(&message)),
                    Answer::Syntax(_) | Answer::Hello(_) => {
                        Err(failed("answered another question"))
                    }
                }
            }
            Err(why) => {
                lease.discard();
                Err(Error::Invalid(vec![Problem::new(
                    &release_name(release),
                    "",
                    why,
                )]))
            }
        }
    }

    /// [`crate::template::check_syntax`] in a worker: compiling a template folds its constant
    /// expressions, which can allocate without bound.
    fn check_syntax(&self, file: &str, source: &str) -> Option<Problem> {
        let mut lease = self.lease("syntax checks");
        let worker = match lease.worker() {
            Ok(w) => w,
            Err(e) => return Some(Problem::new(file, "", e.to_string())),
        };
        let request = Request::Syntax {
            file: file.to_string(),
            source: source.to_string(),
        };
        match self.exchange(worker, &request) {
            Ok(Answer::Syntax(problem)) => problem,
            Ok(_) => Some(Problem::new(
                file,
                "",
                "the render worker answered another question",
            )),
            Err(why) => {
                lease.discard();
                Some(Problem::new(file, "", why))
            }
        }
    }
}

impl Sandbox {
    /// A free worker slot for a request of `key`, waiting while every slot is taken or `key`
    /// holds its share already (all workers but one).
    fn lease(&self, key: &str) -> Lease<'_> {
        let share = self.workers.len().saturating_sub(1).max(1);
        let mut busy = self.lock_busy();
        loop {
            if busy.get(key).copied().unwrap_or(0) < share
                && let Some(slot) = self.workers.iter().find_map(free)
            {
                *busy.entry(key.to_string()).or_default() += 1;
                return Lease {
                    slot: Some(slot),
                    key: key.to_string(),
                    sandbox: self,
                };
            }
            busy = self
                .freed
                .wait_timeout(busy, Duration::from_millis(100))
                .map_or_else(|e| e.into_inner().0, |(b, _)| b);
        }
    }

    fn lock_busy(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(&self) -> Result<Worker, Error> {
        let mut child = Command::new(&self.exe)
            .env_clear()
            .env(WORKER_ENV, self.limits.memory.to_string())
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| failed(&format!("starting a render worker: {e}")))?;
        let stdin = child.stdin.take().ok_or_else(|| failed("worker stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| failed("worker stdout"))?;
        let mut worker = Worker {
            child,
            stdin: BufWriter::new(stdin),
            stdout: Some(BufReader::new(stdout)),
            releases: HashSet::new(),
        };
        match self.receive(&mut worker) {
            Ok(Answer::Hello(report)) => {
                let mut last = LAST_REPORT.lock().unwrap_or_else(|e| e.into_inner());
                if last.as_ref().map(|r| (&r.applied, &r.missing))
                    != Some((&report.applied, &report.missing))
                {
                    tracing::info!(
                        applied = ?report.applied,
                        missing = ?report.missing,
                        "render worker confined"
                    );
                }
                *last = Some(report);
                Ok(worker)
            }
            Ok(_) => Err(failed("the worker did not introduce itself")),
            Err(why) => Err(failed(&why)),
        }
    }

    /// Sends `request` and waits for the answer within the deadline and the CPU budget; a
    /// worker that dies or overruns is killed, and what happened is said.
    fn exchange(&self, worker: &mut Worker, request: &Request) -> Result<Answer, String> {
        self.budget_cpu(worker);
        wire::write_frame(&mut worker.stdin, request, wire::MAX_REQUEST)
            .map_err(|e| format!("the render worker did not take the request: {e}"))?;
        self.receive(worker)
    }

    /// Lets the worker use [`Limits::cpu`] more CPU time from now: the soft `RLIMIT_CPU`, set
    /// from here (the kernel sends `SIGXCPU` past it, which ends the worker). Only the soft
    /// limit moves: raising a hard one takes a privilege the operator need not have, and the
    /// worker's filter refuses it every change of its own limits.
    fn budget_cpu(&self, worker: &Worker) {
        let pid = worker.child.id();
        let used = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| cpu_seconds(&stat))
            .unwrap_or(0);
        let soft = used + self.limits.cpu.as_secs().max(1);
        if let Ok(pid) = i32::try_from(pid)
            && let Err(e) = rlimit::prlimit(
                pid,
                rlimit::Resource::CPU,
                Some((soft, rlimit::INFINITY)),
                None,
            )
        {
            tracing::debug!(error = %e, "render worker CPU budget not set");
        }
    }

    /// The worker's next frame within the deadline.
    fn receive(&self, worker: &mut Worker) -> Result<Answer, String> {
        let mut stdout = worker
            .stdout
            .take()
            .ok_or("the render worker has no output")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let answer = wire::read_frame::<Answer>(&mut stdout, wire::MAX_ANSWER);
            let _ = tx.send((answer, stdout));
        });
        match rx.recv_timeout(self.limits.deadline) {
            Ok((Ok(Some(answer)), stdout)) => {
                worker.stdout = Some(stdout);
                Ok(answer)
            }
            Ok((Err(e), _)) if e.kind() == std::io::ErrorKind::FileTooLarge => {
                let _ = worker.child.kill();
                let _ = worker.child.wait();
                Err(format!("the render worker's answer is refused: {e}"))
            }
            Ok(_) => {
                let _ = worker.child.kill();
                let status = worker.child.wait().ok();
                if status.and_then(|s| s.signal()) == Some(SIGXCPU) {
                    return Err(format!(
                        "the templates took more than {} s of CPU to render",
                        self.limits.cpu.as_secs()
                    ));
                }
                Err(format!(
                    "the templates stopped the render worker ({}): a template needs more than the {} MiB rendering may use",
                    status.map_or_else(|| "gone".to_string(), |s| s.to_string()),
                    self.limits.memory >> 20
                ))
            }
            Err(_) => {
                let _ = worker.child.kill();
                let _ = worker.child.wait();
                Err(format!(
                    "the templates took more than {} s to render",
                    self.limits.deadline.as_secs()
                ))
            }
        }
    }
}

/// The slot when no request holds it (one whose holder panicked is taken back).
fn free(slot: &Mutex<Option<Worker>>) -> Option<MutexGuard<'_, Option<Worker>>> {
    match slot.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// User and system CPU time, in whole seconds rounded up, from a `/proc/<pid>/stat` line.
fn cpu_seconds(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system).div_ceil(TICKS))
}

fn release_name(release: &Release) -> String {
    format!("stack {} {}", release.stack.name, release.stack.version)
}

fn failed(message: &str) -> Error {
    Error::Fetch(format!("render worker: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "4242 (kaas op (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 51 0 0 20 0 3 0";
        assert_eq!(cpu_seconds(stat), Some(4));
        assert_eq!(cpu_seconds("garbage"), None);
    }
}
