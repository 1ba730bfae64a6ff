//! A provider operator's objects, rendered from its bundle and a `KaasOperator`: ServiceAccount,
//! RBAC, Deployment, metrics Service, NetworkPolicy and PodDisruptionBudget, all in
//! `kaas-system`, named `<provider>-kaas-operator...`. This is the one source of the operator
//! manifests: `make manifests` writes `deploy/operators/<provider>/` from [`render`] with a
//! default `KaasOperator`, and the installer applies the same objects (plus its ownership
//! labels).

use std::collections::BTreeMap;

use api::install::NAMESPACE;
use api::install::bundles::{Bundle, LEADER_ELECTION_RULES, Rule};
use api::install::v1alpha1::{KaasOperator, KaasOperatorSpec};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use serde_json::Value;

/// The label naming the `KaasOperator` an installed object belongs to.
pub const OWNER_LABEL: &str = "operator.kaas.scs.community/name";
/// The field manager and `managed-by` label of the installer.
pub const MANAGER: &str = "kaas-installer";

/// Replicas when a `KaasOperator` names none: two, with leader election.
const DEFAULT_REPLICAS: i32 = 2;

/// Where `spec.stackSigningKeys` are mounted in the operator's container, one folder each.
pub const SIGNING_KEYS_DIR: &str = "/etc/kaas/stack-signing-keys";
/// The file name of a signing key in its folder.
pub const SIGNING_KEY_FILE: &str = "key.pem";

/// `<provider>-kaas-operator`: the ServiceAccount, Deployment and main ClusterRole.
pub fn base_name(provider: &str) -> String {
    format!("{provider}-kaas-operator")
}

/// The names of the ClusterRoles an operator of `provider` gets: what the installer may bind
/// and escalate (`deploy/installer`).
pub fn cluster_role_names(provider: &str) -> [String; 2] {
    let base = base_name(provider);
    [base.clone(), format!("{base}-infrastructure")]
}

/// Whether an object is rendered for `deploy/` or applied by the installer for a
/// `KaasOperator` (which adds its ownership labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode<'a> {
    /// `deploy/operators/<provider>/`.
    Deploy,
    /// Applied for the `KaasOperator` of this name.
    Installed(&'a str),
}

/// A default `KaasOperator` for `bundle`: what `deploy/operators/` holds.
pub fn default_operator(bundle: &Bundle) -> KaasOperator {
    KaasOperator::new(
        bundle.provider,
        KaasOperatorSpec {
            provider: bundle.provider.into(),
            version: bundle.version.into(),
            ..Default::default()
        },
    )
}

/// The operator's objects, in apply order, each with `apiVersion` and `kind`.
pub fn render(op: &KaasOperator, bundle: &Bundle, mode: Mode<'_>) -> Vec<Value> {
    let r = Renderer { op, bundle, mode };
    let base = base_name(bundle.provider);
    let [main_role, infra_role] = cluster_role_names(bundle.provider);
    let leader = format!("{base}-leader-election");
    let objects = [
        to_value(&ServiceAccount {
            metadata: r.meta(&base, true),
            ..Default::default()
        }),
        to_value(&ClusterRole {
            metadata: r.meta(&main_role, false),
            rules: Some(rules(bundle.operator_rules)),
            ..Default::default()
        }),
        to_value(&r.cluster_binding(&main_role)),
        to_value(&ClusterRole {
            metadata: r.meta(&infra_role, false),
            rules: Some(rules(bundle.infrastructure_rules)),
            ..Default::default()
        }),
        to_value(&r.cluster_binding(&infra_role)),
        to_value(&Role {
            metadata: r.meta(&leader, true),
            rules: Some(rules(LEADER_ELECTION_RULES)),
        }),
        to_value(&RoleBinding {
            metadata: r.meta(&leader, true),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: leader.clone(),
            },
            subjects: Some(vec![r.subject()]),
        }),
        to_value(&r.service()),
        to_value(&r.network_policy()),
        to_value(&r.disruption_budget()),
        to_value(&r.deployment()),
    ];
    objects.into_iter().collect()
}

fn to_value<T: serde::Serialize>(object: &T) -> Value {
    // Typed objects from k8s-openapi always serialize.
    serde_json::to_value(object).unwrap_or(Value::Null)
}

fn rules(rules: &[Rule]) -> Vec<PolicyRule> {
    rules
        .iter()
        .map(|r| PolicyRule {
            api_groups: Some(r.api_groups.iter().map(|s| s.to_string()).collect()),
            resources: Some(r.resources.iter().map(|s| s.to_string()).collect()),
            verbs: r.verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .collect()
}

struct Renderer<'a> {
    op: &'a KaasOperator,
    bundle: &'a Bundle,
    mode: Mode<'a>,
}

impl Renderer<'_> {
    fn spec(&self) -> &KaasOperatorSpec {
        &self.op.spec
    }

    /// The pods' labels, also the selectors.
    fn selector(&self) -> BTreeMap<String, String> {
        [
            ("app.kubernetes.io/name", "kaas-operator".to_string()),
            (
                "app.kubernetes.io/instance",
                format!("kaas-operator-{}", self.bundle.provider),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector();
        labels.insert("app.kubernetes.io/part-of".into(), "kaas".into());
        labels.insert(
            "app.kubernetes.io/version".into(),
            self.bundle.version.into(),
        );
        if let Mode::Installed(owner) = self.mode {
            labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
            labels.insert(OWNER_LABEL.into(), owner.into());
        }
        labels
    }

    fn meta(&self, name: &str, namespaced: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: namespaced.then(|| NAMESPACE.to_string()),
            labels: Some(self.labels()),
            ..Default::default()
        }
    }

    fn subject(&self) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: base_name(self.bundle.provider),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        }
    }

    fn cluster_binding(&self, role: &str) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: self.meta(role, false),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: role.into(),
            },
            subjects: Some(vec![self.subject()]),
        }
    }

    fn service(&self) -> Service {
        Service {
            metadata: self.meta(
                &format!("{}-metrics", base_name(self.bundle.provider)),
                true,
            ),
            spec: Some(ServiceSpec {
                selector: Some(self.selector()),
                ports: Some(vec![ServicePort {
                    name: Some("metrics".into()),
                    port: 8080,
                    // Server-side apply keys the list by port and protocol: both are set.
                    protocol: Some("TCP".into()),
                    target_port: Some(IntOrString::String("metrics".into())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// No connections but scrapes of the metrics port (kubelet probes come from the node,
    /// which CNIs allow whatever the policy); egress stays open: the API server, stack
    /// registries and cloud APIs differ per installation.
    fn network_policy(&self) -> NetworkPolicy {
        NetworkPolicy {
            metadata: self.meta(&base_name(self.bundle.provider), true),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(self.selector()),
                    ..Default::default()
                }),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    ports: Some(vec![NetworkPolicyPort {
                        protocol: Some("TCP".into()),
                        port: Some(IntOrString::Int(8080)),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    /// Two replicas with leader election: a drain never takes both at once.
    fn disruption_budget(&self) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: self.meta(&base_name(self.bundle.provider), true),
            spec: Some(PodDisruptionBudgetSpec {
                min_available: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector {
                    match_labels: Some(self.selector()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn image(&self) -> String {
        let over = self.spec().image.as_ref();
        let repository = over
            .and_then(|i| i.repository.as_deref())
            .unwrap_or(self.bundle.image_repository);
        match over.and_then(|i| i.digest.as_deref()) {
            Some(digest) => format!("{repository}@{digest}"),
            None => format!("{repository}:{}", self.bundle.version),
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--leader-elect",
            "--metrics-bind-address=0.0.0.0:8080",
            "--health-probe-bind-address=0.0.0.0:8081",
            "--log-json",
            "--install-shipped-stacks",
            "--stack-cache-dir=/var/cache/kaas-stacks",
        ]
        .map(String::from)
        .to_vec();
        args.extend(
            self.signing_keys()
                .map(|(_, dir)| format!("--stack-signing-key={dir}/{SIGNING_KEY_FILE}")),
        );
        args.extend(
            self.spec()
                .additional_args
                .iter()
                .map(|(flag, value)| format!("{flag}={value}")),
        );
        args
    }

    /// `spec.stackSigningKeys`: each one's volume name and the folder it is mounted at.
    fn signing_keys(&self) -> impl Iterator<Item = (String, String)> + '_ {
        (0..self.spec().stack_signing_keys.len()).map(|i| {
            (
                format!("stack-signing-key-{i}"),
                format!("{SIGNING_KEYS_DIR}/{i}"),
            )
        })
    }

    fn resources(&self) -> ResourceRequirements {
        self.spec().resources.clone().unwrap_or_else(|| {
            let q = |pairs: [(&str, &str); 2]| {
                Some(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), Quantity(v.into())))
                        .collect(),
                )
            };
            ResourceRequirements {
                requests: q([("cpu", "100m"), ("memory", "64Mi")]),
                limits: q([("cpu", "1"), ("memory", "384Mi")]),
                ..Default::default()
            }
        })
    }

    fn deployment(&self) -> Deployment {
        let field = |path: &str| EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let probe = |path: &str, period: i32| Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.into()),
                port: IntOrString::String("probes".into()),
                ..Default::default()
            }),
            period_seconds: Some(period),
            ..Default::default()
        };
        let mut pod_labels = self.selector();
        pod_labels.insert("app.kubernetes.io/part-of".into(), "kaas".into());
        let container = Container {
            name: "operator".into(),
            image: Some(self.image()),
            args: Some(self.args()),
            env: Some(vec![
                EnvVar {
                    name: "POD_NAME".into(),
                    value_from: Some(field("metadata.name")),
                    ..Default::default()
                },
                EnvVar {
                    name: "POD_NAMESPACE".into(),
                    value_from: Some(field("metadata.namespace")),
                    ..Default::default()
                },
            ]),
            ports: Some(vec![
                ContainerPort {
                    name: Some("metrics".into()),
                    container_port: 8080,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
                ContainerPort {
                    name: Some("probes".into()),
                    container_port: 8081,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
            ]),
            readiness_probe: Some(probe("/readyz", 5)),
            liveness_probe: Some(probe("/healthz", 10)),
            resources: Some(self.resources()),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            // Fetched stack releases, by content hash (the root file system is read-only),
            // and the keys releases must be signed with.
            volume_mounts: Some(
                std::iter::once(VolumeMount {
                    name: "stack-cache".into(),
                    mount_path: "/var/cache/kaas-stacks".into(),
                    ..Default::default()
                })
                .chain(self.signing_keys().map(|(name, dir)| VolumeMount {
                    name,
                    mount_path: dir,
                    read_only: Some(true),
                    ..Default::default()
                }))
                .collect(),
            ),
            ..Default::default()
        };
        Deployment {
            metadata: self.meta(&base_name(self.bundle.provider), true),
            spec: Some(DeploymentSpec {
                replicas: Some(self.spec().replicas.unwrap_or(DEFAULT_REPLICAS)),
                selector: LabelSelector {
                    match_labels: Some(self.selector()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pod_labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        service_account_name: Some(base_name(self.bundle.provider)),
                        security_context: Some(PodSecurityContext {
                            run_as_non_root: Some(true),
                            run_as_user: Some(65532),
                            run_as_group: Some(65532),
                            seccomp_profile: Some(SeccompProfile {
                                type_: "RuntimeDefault".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        containers: vec![container],
                        volumes: Some(
                            std::iter::once(Volume {
                                name: "stack-cache".into(),
                                empty_dir: Some(EmptyDirVolumeSource {
                                    size_limit: Some(Quantity("256Mi".into())),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            })
                            .chain(
                                self.spec()
                                    .stack_signing_keys
                                    .iter()
                                    .zip(self.signing_keys())
                                    .map(|(key, (name, _))| Volume {
                                        name,
                                        config_map: Some(ConfigMapVolumeSource {
                                            name: key.name.clone(),
                                            items: Some(vec![KeyToPath {
                                                key: key.key.clone(),
                                                path: SIGNING_KEY_FILE.into(),
                                                ..Default::default()
                                            }]),
                                            ..Default::default()
                                        }),
                                        ..Default::default()
                                    }),
                            )
                            .collect(),
                        ),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The ProviderClasses a `KaasOperator` asks for, labelled as its own.
pub fn classes(op: &KaasOperator) -> Vec<Value> {
    let owner = op.name_any();
    op.spec
        .provider_classes
        .iter()
        .map(|c| {
            let mut annotations = serde_json::Map::new();
            if c.default {
                annotations.insert(api::DEFAULT_CLASS_ANNOTATION.into(), "true".into());
            }
            let mut spec = serde_json::json!({
                "controller": format!("{}{}", api::CONTROLLER_PREFIX, op.spec.provider),
            });
            if let Some(p) = &c.parameters {
                spec["parameters"] = to_value(p);
            }
            if !c.machine_types.is_empty() {
                spec["machineTypes"] = to_value(&c.machine_types);
            }
            serde_json::json!({
                "apiVersion": "kaas.scs.community/v1beta1",
                "kind": "ProviderClass",
                "metadata": {
                    "name": c.name,
                    "labels": {
                        "app.kubernetes.io/managed-by": MANAGER,
                        OWNER_LABEL: owner,
                    },
                    "annotations": annotations,
                },
                "spec": spec,
            })
        })
        .collect()
}
