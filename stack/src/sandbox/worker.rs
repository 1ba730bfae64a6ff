//! The worker's side: confine this process, say what holds, then render on stdin and stdout.
//!
//! Confinement, in order: the data segment is limited (`RLIMIT_DATA`); a seccomp filter
//! (applied to every thread, with `no_new_privs`) makes the calls that reach anything outside
//! the process fail with `EPERM`: opening files (so the service-account token and every other
//! file stay closed), sockets (no network), running programs, and signals or debugging calls
//! aimed at other processes, and changes of its own limits. The environment is cleared by the parent. The worker then checks
//! from inside that a file cannot be opened and a socket cannot be made, and reports what it
//! found in its first frame ([`super::Report`]); where the platform refuses the filter the
//! report says so, and the worker still serves under its memory limit.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter};

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use super::wire::{self, Answer, Request};
use super::{Report, WORKER_ENV};
use crate::error::Error;
use crate::release::Release;
use crate::template::ClusterValues;

/// Releases a worker keeps.
const KEPT_RELEASES: usize = 16;

/// When this process was started as a render worker: confines itself, serves renders on
/// stdin and stdout until stdin closes, and exits. Otherwise returns at once.
pub fn serve_if_worker() {
    let Some(memory) = std::env::var(WORKER_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let report = confine(memory);
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut output = BufWriter::new(std::io::stdout().lock());
    if wire::write_frame(&mut output, &Answer::Hello(report), wire::MAX_ANSWER).is_err() {
        std::process::exit(2);
    }
    let mut kept: BTreeMap<String, Release> = BTreeMap::new();
    while let Ok(Some(request)) = wire::read_frame::<Request>(&mut input, wire::MAX_REQUEST) {
        let answer = answer(request, &mut kept);
        let sent = match wire::write_frame(&mut output, &answer, wire::MAX_ANSWER) {
            // Past the operator's bound: say so instead (a small frame).
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => wire::write_frame(
                &mut output,
                &Answer::Failed(format!(
                    "the add-ons render to more than the {} MiB a render may send",
                    wire::MAX_ANSWER >> 20
                )),
                wire::MAX_ANSWER,
            ),
            other => other,
        };
        if sent.is_err() {
            break;
        }
    }
    std::process::exit(0);
}

/// Limits memory, applies the filter, and checks from inside what holds.
fn confine(memory: u64) -> Report {
    let mut report = Report {
        pid: std::process::id(),
        environment: std::env::vars_os()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect(),
        ..Report::default()
    };
    if let Err(e) = rlimit::setrlimit(rlimit::Resource::DATA, memory, memory) {
        eprintln!("render worker: cannot limit its memory: {e}");
        std::process::exit(2);
    }
    report.applied.push(format!("memory {} MiB", memory >> 20));
    match filter()
        .and_then(|p| seccompiler::apply_filter_all_threads(&p).map_err(|e| e.to_string()))
    {
        Ok(()) => report.applied.push("seccomp filter".into()),
        Err(e) => report.missing.push(format!("seccomp filter: {e}")),
    }
    match std::fs::File::open("/proc/self/status") {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            report.applied.push("no file can be opened".into());
        }
        Err(e) => report
            .missing
            .push(format!("files: opening one failed otherwise: {e}")),
        Ok(_) => report.missing.push("files: a file can be opened".into()),
    }
    match std::net::TcpStream::connect(("127.0.0.1", 9)) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            report.applied.push("no socket can be made".into());
        }
        _ => report.missing.push("network: a socket can be made".into()),
    }
    report
}

/// The filter: the listed calls fail with `EPERM`; signals only at itself.
fn filter() -> Result<seccompiler::BpfProgram, String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    let own = u64::from(std::process::id());
    let not_own = |arg: u8| -> Result<Vec<SeccompRule>, String> {
        let condition = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, own)
            .map_err(|e| e.to_string())?;
        Ok(vec![
            SeccompRule::new(vec![condition]).map_err(|e| e.to_string())?,
        ])
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&call| (call, Vec::new())).collect();
    for call in [libc::SYS_kill, libc::SYS_tgkill] {
        rules.insert(call, not_own(0)?);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

/// Calls that always fail: files, sockets, programs, other processes, its own limits (the
/// operator sets its CPU budget), the kernel's own surfaces. Memory, time, futexes and the
/// worker's pipes stay.
const DENIED: &[i64] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_creat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_fork,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_vfork,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_sendmmsg,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_setrlimit,
    libc::SYS_prlimit64,
    libc::SYS_tkill,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_getfd,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_chroot,
    libc::SYS_pivot_root,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_io_uring_setup,
];

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
