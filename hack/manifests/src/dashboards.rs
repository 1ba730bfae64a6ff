//! The Grafana dashboards (`deploy/monitoring/dashboards/*.json`, Grafana's JSON model), written
//! from the short tables below: the fleet, one cluster, the control loop and admission. Every
//! query names only metrics of docs/metrics.md; `hack/manifests/tests/monitoring.rs` checks that
//! against the binaries' registries, and `e2e/tests/system.rs` runs every query against a real
//! Prometheus scraping the running system. The chart ships them as ConfigMaps for Grafana's
//! dashboard sidecar (`metrics.dashboards.enabled`).

use serde_json::{Value, json};

/// One panel: title, what it shows, its unit, its queries (PromQL, legend).
struct Panel {
    title: &'static str,
    description: &'static str,
    unit: &'static str,
    kind: &'static str,
    queries: &'static [(&'static str, &'static str)],
}

const fn panel(
    title: &'static str,
    description: &'static str,
    unit: &'static str,
    queries: &'static [(&'static str, &'static str)],
) -> Panel {
    Panel {
        title,
        description,
        unit,
        kind: "timeseries",
        queries,
    }
}

const fn stat(
    title: &'static str,
    description: &'static str,
    queries: &'static [(&'static str, &'static str)],
) -> Panel {
    Panel {
        title,
        description,
        unit: "short",
        kind: "stat",
        queries,
    }
}

/// One dashboard: file name, uid, title, description, template variables (name, label query),
/// panels.
struct Dashboard {
    file: &'static str,
    uid: &'static str,
    title: &'static str,
    description: &'static str,
    variables: &'static [(&'static str, &'static str)],
    panels: &'static [Panel],
}

const DASHBOARDS: &[Dashboard] = &[
    Dashboard {
        file: "kaas-fleet.json",
        uid: "kaas-fleet",
        title: "kaas / fleet",
        description: "Every KaasCluster of every provider operator: phases, providers, versions, stacks, upgrades and rollouts in flight, SCS standards.",
        variables: &[],
        panels: &[
            stat(
                "Clusters",
                "KaasClusters served by all operators.",
                &[("sum(kaas_clusters)", "clusters")],
            ),
            stat(
                "Not Ready",
                "KaasClusters whose Ready condition is not True.",
                &[("count(kaas_cluster_ready == 0) or vector(0)", "not Ready")],
            ),
            stat(
                "Upgrades in flight",
                "KaasClusters in an upgrade stage.",
                &[(
                    "count(kaas_cluster_upgrade_stage == 1) or vector(0)",
                    "upgrading",
                )],
            ),
            stat(
                "Stack releases unusable",
                "ClusterStacks whose content could not be fetched or verified.",
                &[("sum(kaas_stack_releases_unusable) or vector(0)", "unusable")],
            ),
            panel(
                "Clusters by phase",
                "KaasClusters by status.phase.",
                "short",
                &[("sum by (phase) (kaas_clusters)", "{{phase}}")],
            ),
            panel(
                "Clusters by provider",
                "KaasClusters per provider operator (scrape job).",
                "short",
                &[("sum by (job) (kaas_clusters)", "{{job}}")],
            ),
            panel(
                "Clusters by Kubernetes version",
                "What the clusters run (during an upgrade, the version they move from).",
                "short",
                &[(
                    "count by (kubernetes_version) (kaas_cluster_info)",
                    "{{kubernetes_version}}",
                )],
            ),
            panel(
                "Clusters by cluster stack",
                "The stack and release each cluster asks for.",
                "short",
                &[(
                    "count by (stack, stack_version) (kaas_cluster_info)",
                    "{{stack}} {{stack_version}}",
                )],
            ),
            panel(
                "Upgrades by stage",
                "KaasClusters in each upgrade stage.",
                "short",
                &[(
                    "count by (stage) (kaas_cluster_upgrade_stage == 1) or vector(0)",
                    "{{stage}}",
                )],
            ),
            panel(
                "Stack rollouts by phase",
                "StackRollouts of every provider by phase (Halted ones page: KaasStackRolloutHalted).",
                "short",
                &[("sum by (phase) (kaas_stack_rollouts)", "{{phase}}")],
            ),
            panel(
                "SCS standards",
                "Clusters by SCS standard and result.",
                "short",
                &[(
                    "sum by (standard, result) (kaas_cluster_standards)",
                    "{{standard}} {{result}}",
                )],
            ),
        ],
    },
    Dashboard {
        file: "kaas-cluster.json",
        uid: "kaas-cluster",
        title: "kaas / cluster",
        description: "One KaasCluster: Ready and upgrade stage over time, its versions, and the reconcile latency and errors of the operator serving it.",
        variables: &[
            ("namespace", "label_values(kaas_cluster_info, namespace)"),
            (
                "name",
                "label_values(kaas_cluster_info{namespace=\"$namespace\"}, name)",
            ),
            (
                "job",
                "label_values(kaas_cluster_info{namespace=\"$namespace\", name=\"$name\"}, job)",
            ),
        ],
        panels: &[
            panel(
                "Ready",
                "1 while the cluster's Ready condition is True.",
                "short",
                &[(
                    "kaas_cluster_ready{namespace=\"$namespace\", name=\"$name\"}",
                    "Ready",
                )],
            ),
            panel(
                "Upgrade stage",
                "The upgrade stage the cluster is in (none outside an upgrade).",
                "short",
                &[(
                    "kaas_cluster_upgrade_stage{namespace=\"$namespace\", name=\"$name\"} or on() vector(0)",
                    "{{stage}}",
                )],
            ),
            panel(
                "Versions",
                "Kubernetes version and stack release over time.",
                "short",
                &[(
                    "kaas_cluster_info{namespace=\"$namespace\", name=\"$name\"}",
                    "{{kubernetes_version}} {{stack}} {{stack_version}}",
                )],
            ),
            panel(
                "Control plane certificates",
                "Days until the earliest control plane certificate expires.",
                "d",
                &[(
                    "(kaas_cluster_certificates_expiry_timestamp_seconds{namespace=\"$namespace\", name=\"$name\"} - time()) / 86400 or on() vector(0)",
                    "days left",
                )],
            ),
            panel(
                "Reconcile latency",
                "The operator's reconcile duration, 50th and 99th percentile.",
                "s",
                &[
                    (
                        "histogram_quantile(0.5, sum by (le) (rate(kaas_reconcile_duration_seconds_bucket{job=\"$job\"}[$__rate_interval])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (le) (rate(kaas_reconcile_duration_seconds_bucket{job=\"$job\"}[$__rate_interval])))",
                        "p99",
                    ),
                ],
            ),
            panel(
                "Reconcile errors",
                "The operator's reconcile errors by category.",
                "ops",
                &[(
                    "sum by (category) (rate(kaas_reconcile_errors_total{job=\"$job\"}[$__rate_interval])) or on() vector(0)",
                    "{{category}}",
                )],
            ),
        ],
    },
    Dashboard {
        file: "kaas-control-loop.json",
        uid: "kaas-control-loop",
        title: "kaas / control loop",
        description: "The operators and the installer as controllers: queue depth, reconcile rate and duration, writes to the API servers, leadership, memory and CPU.",
        variables: &[],
        panels: &[
            panel(
                "Queue depth",
                "KaasClusters waiting for a reconcile.",
                "short",
                &[("sum by (job) (kaas_reconcile_queue_depth)", "{{job}}")],
            ),
            panel(
                "Reconciles",
                "Reconciles per second by result.",
                "ops",
                &[
                    (
                        "sum by (job, result) (rate(kaas_reconcile_total[$__rate_interval]))",
                        "{{job}} {{result}}",
                    ),
                    (
                        "sum by (job, result) (rate(kaas_installer_reconcile_total[$__rate_interval]))",
                        "{{job}} {{result}}",
                    ),
                ],
            ),
            panel(
                "Reconcile duration",
                "99th percentile per controller.",
                "s",
                &[
                    (
                        "histogram_quantile(0.99, sum by (job, le) (rate(kaas_reconcile_duration_seconds_bucket[$__rate_interval])))",
                        "{{job}}",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (job, le) (rate(kaas_installer_reconcile_duration_seconds_bucket[$__rate_interval])))",
                        "{{job}}",
                    ),
                ],
            ),
            panel(
                "API writes",
                "Applies, patches and deletes sent to the management API server, and add-on writes to workload clusters.",
                "ops",
                &[
                    (
                        "sum by (job) (rate(kaas_operator_writes_total[$__rate_interval]))",
                        "{{job}} management",
                    ),
                    (
                        "sum by (job) (rate(kaas_addon_writes_total[$__rate_interval]))",
                        "{{job}} workload",
                    ),
                ],
            ),
            panel(
                "Reconcile errors",
                "By category.",
                "ops",
                &[(
                    "sum by (job, category) (rate(kaas_reconcile_errors_total[$__rate_interval])) or on() vector(0)",
                    "{{job}} {{category}}",
                )],
            ),
            panel(
                "Leader",
                "Replicas holding their leader Lease (1 per controller).",
                "short",
                &[
                    ("sum by (job) (kaas_leader)", "{{job}}"),
                    ("sum by (job) (kaas_installer_leader)", "{{job}}"),
                ],
            ),
            panel(
                "Memory",
                "Resident memory per replica.",
                "bytes",
                &[(
                    "process_resident_memory_bytes{job=~\"kaas-.*\"}",
                    "{{job}} {{instance}}",
                )],
            ),
            panel(
                "CPU",
                "CPU seconds per second per replica.",
                "short",
                &[(
                    "rate(process_cpu_seconds_total{job=~\"kaas-.*\"}[$__rate_interval])",
                    "{{job}} {{instance}}",
                )],
            ),
        ],
    },
    Dashboard {
        file: "kaas-admission.json",
        uid: "kaas-admission",
        title: "kaas / admission",
        description: "kaas-webhooks: requests, latency, refusals by reason, tenants' usage against their limits.",
        variables: &[],
        panels: &[
            panel(
                "Requests",
                "Admission and conversion requests per second by endpoint and outcome.",
                "reqps",
                &[(
                    "sum by (endpoint, outcome) (rate(kaas_webhook_requests_total[$__rate_interval]))",
                    "{{endpoint}} {{outcome}}",
                )],
            ),
            panel(
                "Latency",
                "99th and 50th percentile per endpoint (the API server waits 3 s).",
                "s",
                &[
                    (
                        "histogram_quantile(0.99, sum by (endpoint, le) (rate(kaas_webhook_request_duration_seconds_bucket[$__rate_interval])))",
                        "p99 {{endpoint}}",
                    ),
                    (
                        "histogram_quantile(0.5, sum by (endpoint, le) (rate(kaas_webhook_request_duration_seconds_bucket[$__rate_interval])))",
                        "p50 {{endpoint}}",
                    ),
                ],
            ),
            panel(
                "Refusals by reason",
                "Refused requests per second: invalid and forbidden are users' mistakes, failed is this server's.",
                "reqps",
                &[(
                    "sum by (reason, kind) (rate(kaas_webhook_refusals_total[$__rate_interval]))",
                    "{{reason}} {{kind}}",
                )],
            ),
            panel(
                "Tenant usage",
                "What each TenantPolicy's namespaces use, as a share of its limit.",
                "percentunit",
                &[(
                    "kaas_tenant_usage / on(policy, resource) kaas_tenant_limit or on() vector(0)",
                    "{{policy}} {{resource}}",
                )],
            ),
            panel(
                "Certificate reloads",
                "Serving certificate reloads by result.",
                "short",
                &[(
                    "sum by (result) (kaas_webhook_certificate_reloads_total) or on() vector(0)",
                    "{{result}}",
                )],
            ),
            panel(
                "Memory",
                "Resident memory per replica.",
                "bytes",
                &[(
                    "process_resident_memory_bytes{job=\"kaas-webhooks\"}",
                    "{{instance}}",
                )],
            ),
        ],
    },
];

/// Every dashboard: (file name, Grafana JSON).
pub fn files() -> anyhow::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for d in DASHBOARDS {
        files.push((
            d.file.to_string(),
            format!("{}\n", serde_json::to_string_pretty(&model(d))?),
        ));
    }
    Ok(files)
}

/// Every query of every dashboard, with its dashboard and panel.
pub fn queries() -> Vec<(&'static str, &'static str, &'static str)> {
    DASHBOARDS
        .iter()
        .flat_map(|d| {
            d.panels
                .iter()
                .flat_map(move |p| p.queries.iter().map(move |(q, _)| (d.uid, p.title, *q)))
        })
        .collect()
}

fn model(d: &Dashboard) -> Value {
    let datasource = json!({"type": "prometheus", "uid": "${datasource}"});
    let mut variables = vec![json!({
        "name": "datasource", "label": "Prometheus", "type": "datasource",
        "query": "prometheus", "current": {}, "hide": 0,
    })];
    for (name, query) in d.variables {
        variables.push(json!({
            "name": name, "label": name, "type": "query", "datasource": datasource,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "definition": query, "refresh": 2, "current": {}, "hide": 0, "sort": 1,
        }));
    }
    let mut panels = Vec::new();
    let (mut x, mut y) = (0, 0);
    for (i, p) in d.panels.iter().enumerate() {
        let (w, h) = if p.kind == "stat" { (6, 4) } else { (12, 8) };
        if x + w > 24 {
            x = 0;
            y += h;
        }
        let targets: Vec<Value> = p
            .queries
            .iter()
            .zip('A'..)
            .map(|((expr, legend), id)| {
                json!({"datasource": datasource, "expr": expr, "legendFormat": legend,
                       "refId": id.to_string(), "range": true})
            })
            .collect();
        panels.push(json!({
            "id": i + 1, "type": p.kind, "title": p.title, "description": p.description,
            "datasource": datasource, "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": true}},
            "targets": targets,
        }));
        x += w;
    }
    json!({
        "uid": d.uid, "title": d.title, "description": d.description,
        "tags": ["kaas"], "timezone": "browser", "editable": true,
        "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "panels": panels,
    })
}
