//! Rendering a release's templates in a child process with a memory limit and a deadline.
//!
//! A release comes from a registry someone else runs. Its templates render under a fuel
//! budget and an output cap ([`crate::template`]), but one template operation can still
//! allocate hundreds of megabytes (a string repeat, repeated concatenation) before either sees
//! it. So an operator renders through workers: copies of its own binary started in worker mode
//! ([`WORKER_ENV`]), each with its data segment limited (`RLIMIT_DATA`), each request with a
//! deadline. A worker that runs out of memory dies alone; the render is refused naming the
//! budget, and the next request starts a fresh worker.
//!
//! The protocol: length-prefixed JSON frames on the worker's stdin and stdout. A worker keeps
//! the releases it was sent, by digest, so a cluster's reconcile sends only its values.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use api::v1beta1::AddonOverride;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem};
use crate::format::StackFile;
use crate::release::Release;
use crate::template::{ClusterValues, RenderedAddon};

/// The environment variable that starts a binary as a render worker.
pub const WORKER_ENV: &str = "KAAS_RENDER_WORKER";
/// The most one frame may weigh (a release is at most 64 MiB unpacked).
const MAX_FRAME: usize = 96 * 1024 * 1024;
/// Releases a worker keeps.
const KEPT_RELEASES: usize = 16;

/// The bounds of the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A worker's data segment (heap and private mappings), in bytes.
    pub memory: u64,
    /// How long one render may take.
    pub deadline: Duration,
    /// Workers run at once.
    pub workers: usize,
}

impl Default for Limits {
    /// One worker of 160 MiB: with the operator's own ~50 MiB it stays inside the pod's
    /// 256 MiB even while a template tries to take everything.
    fn default() -> Self {
        Limits {
            memory: 160 * 1024 * 1024,
            deadline: Duration::from_secs(20),
            workers: 1,
        }
    }
}

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
    }));
}

/// When this process was started as a render worker: limits its memory, serves renders on
/// stdin and stdout until stdin closes, and exits. Otherwise returns at once.
pub fn serve_if_worker() {
    let Some(memory) = std::env::var(WORKER_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    if let Err(e) = rlimit::setrlimit(rlimit::Resource::DATA, memory, memory) {
        eprintln!("render worker: cannot limit its memory: {e}");
        std::process::exit(2);
    }
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut output = BufWriter::new(std::io::stdout().lock());
    let mut kept: BTreeMap<String, Release> = BTreeMap::new();
    while let Ok(Some(request)) = read_frame::<Request>(&mut input) {
        let answer = answer(request, &mut kept);
        if write_frame(&mut output, &answer).is_err() {
            break;
        }
    }
    std::process::exit(0);
}

fn answer(request: Request, kept: &mut BTreeMap<String, Release>) -> Answer {
    let request = match request {
        Request::Render(r) => *r,
        Request::Syntax { file, source } => {
            return Answer::Syntax(crate::template::check_syntax_in_process(&file, &source));
        }
    };
    let release = match request.release {
        Some(wire) => {
            let release = Release {
                stack: wire.stack,
                files: wire.files,
                digest: wire.digest.clone(),
                base: None,
            };
            if wire.digest.is_empty() {
                release
            } else {
                if kept.len() >= KEPT_RELEASES {
                    kept.clear();
                }
                kept.insert(wire.digest, release.clone());
                release
            }
        }
        None => match kept.get(&request.digest) {
            Some(r) => r.clone(),
            None => return Answer::Failed(format!("release {} not sent", request.digest)),
        },
    };
    let cluster = ClusterValues {
        name: request.cluster.name,
        namespace: request.cluster.namespace,
        provider: request.cluster.provider,
        kubernetes_version: request.cluster.kubernetes_version,
        pod_cidr: request.cluster.pod_cidr,
        service_cidr: request.cluster.service_cidr,
        mtu: request.cluster.mtu,
    };
    match crate::template::render_in_process(&release, &cluster, &request.overrides) {
        Ok(addons) => Answer::Rendered(addons),
        Err(Error::Invalid(problems)) => Answer::Invalid(problems),
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// Renders through a worker, starting one when none runs.
#[derive(Debug)]
pub(crate) struct Sandbox {
    exe: PathBuf,
    limits: Limits,
    workers: Vec<Mutex<Option<Worker>>>,
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

impl crate::template::Isolation for Sandbox {
    /// Renders `release` for `cluster` with `overrides` in a worker.
    fn render(
        &self,
        release: &Release,
        cluster: &ClusterValues,
        overrides: &[AddonOverride],
    ) -> Result<Vec<RenderedAddon>, Error> {
        let mut slot = self.slot();
        if slot.is_none() {
            *slot = Some(self.start()?);
        }
        let worker = slot.as_mut().ok_or_else(|| failed("no worker"))?;
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
                    Answer::Syntax(_) => Err(failed("answered another question")),
                }
            }
            Err(why) => {
                // The worker is gone or stuck: never reuse it.
                *slot = None;
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
        let mut slot = self.slot();
        if slot.is_none() {
            match self.start() {
                Ok(w) => *slot = Some(w),
                Err(e) => return Some(Problem::new(file, "", e.to_string())),
            }
        }
        let worker = slot.as_mut()?;
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
                *slot = None;
                Some(Problem::new(file, "", why))
            }
        }
    }
}

impl Sandbox {
    /// A free worker slot if there is one, else the first once it frees.
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Worker>> {
        self.workers
            .iter()
            .find_map(|w| w.try_lock().ok())
            .unwrap_or_else(|| self.workers[0].lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn start(&self) -> Result<Worker, Error> {
        let mut child = Command::new(&self.exe)
            .env(WORKER_ENV, self.limits.memory.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| failed(&format!("starting a render worker: {e}")))?;
        let stdin = child.stdin.take().ok_or_else(|| failed("worker stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| failed("worker stdout"))?;
        Ok(Worker {
            child,
            stdin: BufWriter::new(stdin),
            stdout: Some(BufReader::new(stdout)),
            releases: HashSet::new(),
        })
    }

    /// Sends `request` and waits for the answer within the deadline; a worker that dies or
    /// overruns is killed, and what happened is said.
    fn exchange(&self, worker: &mut Worker, request: &Request) -> Result<Answer, String> {
        write_frame(&mut worker.stdin, request)
            .map_err(|e| format!("the render worker did not take the request: {e}"))?;
        let mut stdout = worker
            .stdout
            .take()
            .ok_or("the render worker has no output")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let answer = read_frame::<Answer>(&mut stdout);
            let _ = tx.send((answer, stdout));
        });
        match rx.recv_timeout(self.limits.deadline) {
            Ok((Ok(Some(answer)), stdout)) => {
                worker.stdout = Some(stdout);
                Ok(answer)
            }
            Ok(_) => {
                let _ = worker.child.kill();
                let status = worker.child.wait().ok();
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

fn release_name(release: &Release) -> String {
    format!("stack {} {}", release.stack.name, release.stack.version)
}

fn failed(message: &str) -> Error {
    Error::Fetch(format!("render worker: {message}"))
}

#[derive(Serialize, Deserialize)]
enum Request {
    Render(Box<RenderRequest>),
    Syntax { file: String, source: String },
}

#[derive(Serialize, Deserialize)]
struct RenderRequest {
    digest: String,
    release: Option<ReleaseWire>,
    cluster: ClusterWire,
    overrides: Vec<AddonOverride>,
}

#[derive(Serialize, Deserialize)]
struct ReleaseWire {
    stack: StackFile,
    files: BTreeMap<String, String>,
    digest: String,
}

#[derive(Serialize, Deserialize)]
struct ClusterWire {
    name: String,
    namespace: String,
    provider: String,
    kubernetes_version: String,
    pod_cidr: String,
    service_cidr: String,
    mtu: Option<i32>,
}

#[derive(Serialize, Deserialize)]
enum Answer {
    Rendered(Vec<RenderedAddon>),
    Invalid(Vec<Problem>),
    Failed(String),
    Syntax(Option<Problem>),
}

fn write_frame<T: Serialize>(out: &mut impl Write, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(&bytes)?;
    out.flush()
}

/// The next frame, or `None` at the end of the stream.
fn read_frame<T: for<'de> Deserialize<'de>>(input: &mut impl Read) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(std::io::Error::other)
}
