//! The render workers as the operators run them: copies of `kaas-operator-docker` in worker
//! mode, installed as this process's template isolation. A worker sees no environment but
//! its own variable, can open no file (the service-account token among them) and make no
//! socket, as the kernel reports from outside (seccomp mode, no_new_privs, environ); a release
//! whose templates run near the bounds, rendered for two clusters at once, delays a render of
//! another release by no more than a worker start; templates past the CPU budget are refused
//! naming it.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Result;
use kaas_stack::release::Release;
use kaas_stack::sandbox::{self, Limits};
use kaas_stack::template::ClusterValues;

/// CPU a render may use here: the heavy release below takes about half of it.
const CPU: Duration = Duration::from_secs(4);
/// What a render of another release may wait for while the heavy one runs twice (stated in
/// docs/security.md): a worker start and its render.
const OTHER_RELEASE_BOUND: Duration = Duration::from_secs(2);

/// One test at a time: they share the pool and read the last worker's report.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn install() -> Result<()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let exe = kaas_e2e::binary("kaas-operator-docker")?;
    INSTALLED.get_or_init(|| {
        sandbox::install(
            exe,
            Limits {
                cpu: CPU,
                ..Limits::default()
            },
        )
    });
    Ok(())
}

/// A release `name` with one add-on of `files` (name, template).
fn release(name: &str, files: &[(String, String)]) -> Result<Release> {
    let manifests: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
    let stack = format!(
        "provider: docker\nname: {name}\nversion: 1.0.0\nkubernetesVersions: [1.33.4]\naddons:\n  - name: app\n    version: 1.0.0\n    health: applied\n    manifests: {manifests:?}\n"
    );
    let mut all: BTreeMap<String, String> = files.iter().cloned().collect();
    all.insert("stack.yaml".into(), stack.clone());
    Ok(Release {
        stack: serde_saphyr::from_str(&stack)?,
        digest: kaas_stack::release::digest(&all),
        files: all,
        base: None,
    })
}

/// A ConfigMap after `loops` × 900 turns of an empty loop (800: 1.6 million of the 2 million
/// steps a file may take).
fn busy_file(i: usize, loops: usize) -> (String, String) {
    (
        format!("f{i}.yaml"),
        format!(
            "{{% for a in range({loops}) %}}{{% for b in range(900) %}}{{% endfor %}}{{% endfor %}}\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: default}}\n"
        ),
    )
}

fn render(release: &Release) -> Result<Vec<kaas_stack::RenderedAddon>, String> {
    let cluster = ClusterValues::sample("docker", "1.33.4");
    kaas_stack::template::render_addons(release, &cluster, &[]).map_err(|e| e.to_string())
}

fn proc_field(pid: u32, field: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}

#[test]
fn a_worker_sees_no_environment_no_file_and_no_network() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock();
    install()?;
    let light = release("light", &[busy_file(0, 1)])?;
    assert_eq!(render(&light).map(|a| a[0].objects.len()), Ok(1));
    let report = sandbox::last_report().ok_or_else(|| anyhow::anyhow!("no worker report"))?;
    println!("worker report: {report:?}");
    assert_eq!(report.environment, [sandbox::WORKER_ENV]);
    for holds in [
        "seccomp filter",
        "no file can be opened",
        "no socket can be made",
    ] {
        assert!(report.applied.iter().any(|a| a == holds), "{report:?}");
    }
    assert!(report.missing.is_empty(), "{report:?}");
    // From outside, as the kernel has it.
    assert_eq!(proc_field(report.pid, "Seccomp:").as_deref(), Some("2"));
    assert_eq!(proc_field(report.pid, "NoNewPrivs:").as_deref(), Some("1"));
    let environ = std::fs::read(format!("/proc/{}/environ", report.pid))?;
    assert_eq!(
        String::from_utf8_lossy(&environ),
        format!("{}={}\0", sandbox::WORKER_ENV, Limits::default().memory)
    );
    Ok(())
}

#[test]
fn a_slow_release_rendered_twice_does_not_stall_another() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock();
    install()?;
    let heavy = release(
        "heavy",
        &(0..16).map(|i| busy_file(i, 600)).collect::<Vec<_>>(),
    )?;
    let light = release("light", &[busy_file(0, 1)])?;
    // Warm: a worker knows each release.
    let took = Instant::now();
    render(&heavy).map_err(anyhow::Error::msg)?;
    println!("the heavy release renders in {:?}", took.elapsed());
    render(&light).map_err(anyhow::Error::msg)?;

    let heavies: Vec<_> = (0..2)
        .map(|_| {
            let heavy = heavy.clone();
            std::thread::spawn(move || {
                let took = Instant::now();
                (render(&heavy).map(|a| a.len()), took.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let took = Instant::now();
    assert_eq!(render(&light).map(|a| a.len()), Ok(1));
    let waited = took.elapsed();
    for h in heavies {
        let (rendered, took) = h.join().map_err(|_| anyhow::anyhow!("a render panicked"))?;
        println!("a heavy render took {took:?}");
        assert_eq!(rendered, Ok(1));
    }
    println!("the light release rendered in {waited:?} while the heavy one rendered twice");
    assert!(
        waited <= OTHER_RELEASE_BOUND,
        "the light release waited {waited:?}"
    );
    Ok(())
}

#[test]
fn templates_past_the_cpu_budget_are_refused_naming_it() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock();
    install()?;
    let endless = release(
        "endless",
        &(0..60).map(|i| busy_file(i, 600)).collect::<Vec<_>>(),
    )?;
    let took = Instant::now();
    let refused = render(&endless).err().unwrap_or_default();
    println!("refused after {:?}: {refused}", took.elapsed());
    assert!(
        refused.contains(&format!(
            "the templates took more than {} s of CPU to render",
            CPU.as_secs()
        )),
        "{refused}"
    );
    // The next render starts a fresh worker.
    let light = release("light", &[busy_file(0, 1)])?;
    assert_eq!(render(&light).map(|a| a.len()), Ok(1));
    Ok(())
}
