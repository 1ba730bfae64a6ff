//! A `StackRollout` over six clusters in three waves, on the real API server with the Docker
//! operator as a process and the CAPI stand-in (named as such: Cluster API's controllers
//! cannot run here). The waves go in order, one or two clusters at a time, and each soaks
//! before the next; a paused rollout starts nothing; the operator killed meanwhile goes on
//! where it was once resumed; a cluster of the second wave that the stand-in holds not ready
//! halts the rollout, naming it and its failing condition, and the third wave is untouched;
//! once it is fixed, `kaasctl rollout resume` completes the rollout. A cluster no wave selects
//! keeps its release throughout, and `kaasctl plan` shows the waves before anything moves. A
//! second test: an automatic upgrade waits for the cluster's maintenance window. A third:
//! 2,000 paused rollouts in one namespace cost the API server no list of clusters.

use std::time::Duration;

use anyhow::Result;
use api::v1beta1::{KaasCluster, StackRollout};
use kaas_e2e::wait_for;
use kaas_testenv::TestEnv;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

/// One test at a time: each runs a CAPI stand-in over every namespace, and two would hand
/// each other's clusters their own workload API server.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const HOLD: &str = kaas_e2e::stand_in::HOLD_ANNOTATION;

fn release(version: &str, from: &[&str]) -> String {
    format!(
        "provider: docker\nname: rollout-test\nversion: {version}\nkubernetesVersions: [1.33.4]\n\
         upgradeFrom: {from:?}\naddons:\n  - name: app\n    version: 1.0.0\n    health: applied\n    manifests: [app.yaml]\n"
    )
}

const APP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rollout-app, namespace: kube-system}\ndata: {a: b}\n";

fn cluster(name: &str, ring: &str, hold: bool) -> Result<KaasCluster> {
    let mut annotations = json!({});
    if hold {
        annotations[HOLD] = json!("1.0.1");
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": name, "labels": {"ring": ring}, "annotations": annotations},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "rollout-test", "version": "1.0.0"},
                 "kubernetesVersion": "1.33", "controlPlane": {"replicas": 1},
                 "workers": [{"name": "md-0", "replicas": 1, "machineType": "x"}]}}))?)
}

const ROLLOUT: &str = r#"apiVersion: kaas.scs.community/v1beta1
kind: StackRollout
metadata: {name: patch-1-0-1}
spec:
  providerClassName: docker
  clusterStack: {name: rollout-test, version: 1.0.1}
  clusterTimeoutSeconds: 20
  minReadySeconds: 2
  waves:
    - {name: canary, selector: {matchLabels: {ring: "0"}}, maxConcurrent: 1, soakSeconds: 5}
    - {name: early, selector: {matchLabels: {ring: "1"}}, maxConcurrent: 2, soakSeconds: 3}
    - {name: rest, selector: {matchExpressions: [{key: ring, operator: In, values: ["2"]}]}, maxConcurrent: 2}
"#;

/// What both tests stand on: the shared API server with the CRDs, the docker class, the
/// releases 1.0.0 and 1.0.1 (an upgrade edge) of stack `rollout-test`, a stack cache, and the
/// CAPI stand-in handing out a workload API server of its own.
struct World {
    env: &'static TestEnv,
    client: kube::Client,
    releases: tempfile::TempDir,
    cache: tempfile::TempDir,
    _stand_in: tokio::task::JoinHandle<()>,
    _workload: TestEnv,
}

async fn world() -> Result<World> {
    let env = TestEnv::shared().await?;
    let workload = TestEnv::start().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.33.4"]).await?;
    let releases = tempfile::tempdir()?;
    for (version, from) in [("1.0.0", vec![]), ("1.0.1", vec!["1.0.0"])] {
        let dir = releases.path().join(version);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("stack.yaml"), release(version, &from))?;
        std::fs::write(dir.join("app.yaml"), APP)?;
        kaas_e2e::install_local_release(&client, &dir).await?;
    }
    let stand_in = kaas_e2e::stand_in::StandIn {
        management: client.clone(),
        workload_kubeconfig: std::fs::read_to_string(workload.kubeconfig_path())?,
        kubelets: Some(workload.client().await?),
        per_cluster: Default::default(),
    }
    .spawn();
    Ok(World {
        env,
        client,
        releases,
        cache: tempfile::tempdir()?,
        _stand_in: stand_in,
        _workload: workload,
    })
}

#[tokio::test]
async fn a_rollout_goes_wave_by_wave_halts_on_a_failing_cluster_and_resumes() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let World {
        env,
        client,
        releases,
        cache,
        _stand_in,
        _workload,
    } = world().await?;
    let start = || kaas_e2e::docker_operator(env, cache.path(), &[], "rollout-operator");
    let mut operator = start()?;

    let ns = env.namespace(&client, "rollout").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    for i in 0..6 {
        let name = format!("c{i}");
        clusters
            .create(
                &PostParams::default(),
                &cluster(&name, &(i / 2).to_string(), i == 3)?,
            )
            .await?;
    }
    clusters
        .create(&PostParams::default(), &cluster("outsider", "9", false)?)
        .await?;
    let running = |version: &'static str| {
        let clusters = clusters.clone();
        async move {
            let all = clusters.list(&ListParams::default()).await?.items;
            anyhow::Ok(
                all.into_iter()
                    .filter(|c| {
                        let s = c.status.clone().unwrap_or_default();
                        s.phase.as_deref() == Some("Ready")
                            && s.cluster_stack_version.as_deref() == Some(version)
                    })
                    .map(|c| kube::ResourceExt::name_any(&c))
                    .collect::<Vec<_>>(),
            )
        }
    };
    wait_for("seven clusters Ready on 1.0.0", WAIT, || async {
        Ok((running("1.0.0").await?.len() == 7).then_some(()))
    })
    .await?;

    // The plan shows the waves before anything moves.
    let file = releases.path().join("rollout.yaml");
    std::fs::write(&file, ROLLOUT)?;
    let (code, plan) = kaas_e2e::kaasctl(
        &["plan", "-f", file.to_str().unwrap(), "-n", &ns],
        env.kubeconfig_path(),
    )?;
    assert_eq!(code, 0, "{plan}");
    for line in [
        "1. canary (1 at once, then 5 s soak): c0, c1",
        "2. early (2 at once, then 3 s soak): c2, c3",
        "3. rest (2 at once, then 0 s soak): c4, c5",
        "untouched (no wave selects them): outsider",
    ] {
        assert!(plan.contains(line), "{line:?} in:\n{plan}");
    }

    let rollouts: Api<StackRollout> = Api::namespaced(client.clone(), &ns);
    let rollout: StackRollout = serde_saphyr::from_str(ROLLOUT)?;
    rollouts.create(&PostParams::default(), &rollout).await?;
    let status = || async {
        anyhow::Ok(
            rollouts
                .get("patch-1-0-1")
                .await?
                .status
                .unwrap_or_default(),
        )
    };
    let wanted = |name: &'static str| {
        let clusters = clusters.clone();
        async move {
            anyhow::Ok(
                clusters
                    .get(name)
                    .await?
                    .spec
                    .cluster_stack
                    .version
                    .unwrap_or_default(),
            )
        }
    };

    // The canary wave, one at a time: c1 asks for the release only once c0 runs it, Ready.
    let overlap = std::cell::RefCell::new(None);
    let soaking = wait_for("the canary wave done and soaking", WAIT, || async {
        if wanted("c1").await? == "1.0.1" {
            let c0 = clusters.get("c0").await?.status.unwrap_or_default();
            if c0.cluster_stack_version.as_deref() != Some("1.0.1")
                || c0.phase.as_deref() != Some("Ready")
            {
                overlap.borrow_mut().get_or_insert(format!("{c0:?}"));
            }
        }
        let s = status().await?;
        Ok((s.phase.as_deref() == Some("Soaking")).then_some(s))
    })
    .await?;
    assert_eq!(overlap.take(), None, "c1 started before c0 was done");
    let started = |s: &api::v1beta1::StackRolloutStatus, name: &str| {
        s.clusters
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.started_at.clone())
            .map(|t| t.0)
    };
    let canary_done = soaking.waves[0].finished_at.clone().expect("finished").0;
    assert!(started(&soaking, "c1") >= started(&soaking, "c0"));
    assert!(
        running("1.0.1")
            .await?
            .iter()
            .all(|n| n == "c0" || n == "c1")
    );
    assert_eq!(
        wanted("c2").await?,
        "1.0.0",
        "the next wave waits for the soak"
    );

    // Paused: the soak ends, yet nothing starts.
    let (code, text) = kaas_e2e::kaasctl(
        &["rollout", "pause", "patch-1-0-1", "-n", &ns],
        env.kubeconfig_path(),
    )?;
    assert_eq!(code, 0, "{text}");
    wait_for("the rollout paused", WAIT, || async {
        Ok((status().await?.phase.as_deref() == Some("Paused")).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        wanted("c2").await?,
        "1.0.0",
        "a paused rollout starts nothing"
    );

    // The operator killed while the rollout waits: the new one goes on where it was once
    // resumed.
    operator.kill();
    operator = start()?;
    let (code, text) = kaas_e2e::kaasctl(
        &["rollout", "resume", "patch-1-0-1", "-n", &ns],
        env.kubeconfig_path(),
    )?;
    assert_eq!(code, 0, "{text}");
    let early = wait_for("the second wave started", WAIT, || async {
        let s = status().await?;
        Ok(started(&s, "c2").map(|at| (at, s)))
    })
    .await?;
    assert!(
        early.0.duration_since(canary_done) >= k8s_openapi::jiff::SignedDuration::from_secs(5),
        "started {} after the canary wave finished at {canary_done}: no soak",
        early.0
    );
    assert_eq!(
        early.1.waves[0].finished_at.clone().map(|t| t.0),
        Some(canary_done),
        "the restarted operator kept the wave's record"
    );

    // c3 is held not ready on 1.0.1: the rollout halts naming it; the third wave is untouched.
    let halted = match wait_for("the rollout halted", WAIT, || async {
        Ok(status().await?.halted)
    })
    .await
    {
        Ok(h) => h,
        Err(e) => {
            let c3 = clusters.get("c3").await?;
            anyhow::bail!("{e}\nc3: {:?}\nrollout: {:?}", c3.status, status().await?)
        }
    };
    assert_eq!(halted.cluster, "c3");
    assert_eq!(halted.condition.as_deref(), Some("ControlPlaneReady"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(wanted("c4").await?, "1.0.0");
    assert_eq!(wanted("c5").await?, "1.0.0");
    let (code, text) = kaas_e2e::kaasctl(
        &["rollout", "status", "patch-1-0-1", "-n", &ns],
        env.kubeconfig_path(),
    )?;
    assert_eq!(code, 2, "a halted rollout exits 2: {text}");
    assert!(text.contains("HALTED on c3 (ControlPlaneReady)"), "{text}");

    // Fixed, then resumed: the rollout completes; the outsider keeps its release.
    clusters
        .patch(
            "c3",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {HOLD: null}}})),
        )
        .await?;
    let (code, text) = kaas_e2e::kaasctl(
        &["rollout", "resume", "patch-1-0-1", "-n", &ns],
        env.kubeconfig_path(),
    )?;
    assert_eq!(code, 0, "{text}");
    wait_for("the rollout completed", WAIT, || async {
        Ok((status().await?.phase.as_deref() == Some("Completed")).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\noperator log:\n{}", operator.log_tail()))?;
    let mut done = running("1.0.1").await?;
    done.sort();
    assert_eq!(done, ["c0", "c1", "c2", "c3", "c4", "c5"]);
    assert_eq!(wanted("outsider").await?, "1.0.0");

    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("StackRollout"))
        .filter_map(|e| e.reason)
        .collect();
    for reason in [
        "ClusterStarted",
        "WaveDone",
        "Halted",
        "Resumed",
        "Completed",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} in {reasons:?}"
        );
    }
    operator.kill();
    Ok(())
}

/// `HH:MM` (UTC) `minutes` from now.
fn utc_in(minutes: i64) -> String {
    let t = k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_mins(minutes))
        .expect("in range")
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

#[tokio::test]
async fn an_automatic_upgrade_waits_for_the_maintenance_window() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let World {
        env,
        client,
        // Kept: the releases' folder must outlive the test (`_` would drop it at once).
        releases: _releases,
        cache,
        _stand_in,
        _workload,
    } = world().await?;
    let ns = env.namespace(&client, "maintained").await?;
    let mut operator = kaas_e2e::docker_operator(
        env,
        cache.path(),
        &[format!("--namespace={ns}"), "--addon-resync=2".into()],
        "maintenance-operator",
    )?;

    // A window that is not open now: it opens in three hours, for an hour, every day.
    let mut c = cluster("auto", "0", false)?;
    c.spec.maintenance = Some(serde_json::from_value(json!({
        "autoUpgrade": "patch",
        "window": {"start": utc_in(180), "durationMinutes": 60, "timeZone": "UTC"},
    }))?);
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    clusters.create(&PostParams::default(), &c).await?;
    wait_for("the cluster Ready with 1.0.1 offered", WAIT, || async {
        let s = clusters.get("auto").await?.status.unwrap_or_default();
        Ok(
            (s.phase.as_deref() == Some("Ready") && s.available_upgrades == ["1.0.1"])
                .then_some(()),
        )
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\noperator log:\n{}", operator.log_tail()))?;
    // Several reconciles (the add-on resync is 2 s): nothing moves outside the window.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let now = clusters.get("auto").await?;
    assert_eq!(now.spec.cluster_stack.version.as_deref(), Some("1.0.0"));

    // The window opened ten minutes ago: the operator moves the cluster and it upgrades.
    clusters
        .patch(
            "auto",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"maintenance": {"window": {"start": utc_in(-10)}}}})),
        )
        .await?;
    wait_for("the cluster Ready on 1.0.1", WAIT, || async {
        let c = clusters.get("auto").await?;
        let s = c.status.unwrap_or_default();
        Ok((c.spec.cluster_stack.version.as_deref() == Some("1.0.1")
            && s.cluster_stack_version.as_deref() == Some("1.0.1")
            && s.phase.as_deref() == Some("Ready"))
        .then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\noperator log:\n{}", operator.log_tail()))?;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    let said = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("AutoUpgrade")
                && e.message
                    .as_deref()
                    .is_some_and(|n| n.contains("1.0.0 → 1.0.1"))
        });
    assert!(said, "an AutoUpgrade event names the move");
    operator.kill();
    Ok(())
}

/// Lists of `KaasCluster`s the API server has served since it started.
async fn cluster_lists(client: &kube::Client) -> Result<f64> {
    Ok(kaas_e2e::server_requests(client)
        .await?
        .get("LIST kaasclusters")
        .copied()
        .unwrap_or(0.0))
}

#[tokio::test]
async fn two_thousand_paused_rollouts_cost_no_list_of_clusters() -> Result<()> {
    use futures::StreamExt;
    let _one = ONE_AT_A_TIME.lock().await;
    let World {
        env,
        client,
        releases: _releases,
        cache,
        _stand_in,
        _workload,
    } = world().await?;
    // Nothing but the operator reads clusters in this window: the stand-in lists them.
    _stand_in.abort();
    let ns = env.namespace(&client, "many-rollouts").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    for i in 0..20 {
        clusters
            .create(
                &PostParams::default(),
                &cluster(&format!("c{i}"), &(i % 3).to_string(), false)?,
            )
            .await?;
    }
    let mut operator = kaas_e2e::docker_operator(
        env,
        cache.path(),
        &[format!("--namespace={ns}")],
        "many-rollouts-operator",
    )?;
    let rollouts: Api<StackRollout> = Api::namespaced(client.clone(), &ns);
    let mut paused: StackRollout = serde_saphyr::from_str(ROLLOUT)?;
    paused.spec.paused = Some(true);
    let created = futures::stream::iter(0..2000)
        .map(|i| {
            let (rollouts, mut r) = (rollouts.clone(), paused.clone());
            r.metadata.name = Some(format!("paused-{i}"));
            async move { rollouts.create(&PostParams::default(), &r).await }
        })
        .buffer_unordered(16)
        .filter(|r| futures::future::ready(r.is_ok()))
        .count()
        .await;
    assert_eq!(created, 2000);
    wait_for(
        "2,000 rollouts Paused",
        Duration::from_secs(300),
        || async {
            let listed = rollouts.list(&ListParams::default()).await?;
            let done = listed
                .items
                .iter()
                .filter(|r| r.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Paused"))
                .count();
            Ok((done == 2000).then_some(()))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\noperator log:\n{}", operator.log_tail()))?;

    // A minute and more, with clusters changing meanwhile (each change wakes every rollout
    // of the namespace): the API server serves no list of clusters.
    let before = cluster_lists(&client).await?;
    let started = std::time::Instant::now();
    for round in 0..4 {
        for i in 0..5 {
            clusters
                .patch(
                    &format!("c{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {"round": round.to_string()}}})),
                )
                .await?;
        }
        tokio::time::sleep(Duration::from_secs(17)).await;
    }
    let lists = cluster_lists(&client).await? - before;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    println!(
        "{lists} lists of KaasClusters in {:.1} minutes with 2,000 paused rollouts",
        minutes
    );
    // Stated bound: the cluster watches relisting, at most one each a minute.
    assert!(
        lists <= 2.0 * minutes.ceil(),
        "{lists} lists of clusters in {minutes:.1} minutes"
    );
    assert!(operator.is_running(), "{}", operator.log_tail());
    // Every rollout still reports the clusters it would move.
    let one = rollouts.get("paused-1999").await?;
    assert_eq!(one.status.map(|s| s.clusters.len()), Some(20));
    Ok(())
}
