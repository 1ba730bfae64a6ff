//! The webhook registrations: which requests the API server sends to this server. One
//! definition serves both the manifests in `deploy/` (a Service, CA injected by cert-manager)
//! and the tests (a URL on loopback with the test CA), so what is tested is what is deployed.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use kube::api::ObjectMeta;

/// Name of both webhook configurations.
pub const CONFIGURATION_NAME: &str = "kaas-webhooks";

/// Where the API server reaches the webhook server.
#[derive(Clone, Debug)]
pub enum Target {
    /// A Service in the cluster (port 443).
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A base URL such as `https://127.0.0.1:9443`.
    Url(String),
}

impl Target {
    /// The client configuration for `path` (such as `/validate`).
    pub fn client_config(&self, path: &str, ca_bundle: Option<&[u8]>) -> WebhookClientConfig {
        let ca_bundle = ca_bundle.map(|ca| ByteString(ca.to_vec()));
        match self {
            Target::Service { namespace, name } => WebhookClientConfig {
                service: Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(path.to_string()),
                    port: Some(443),
                }),
                ca_bundle,
                url: None,
            },
            Target::Url(base) => WebhookClientConfig {
                url: Some(format!("{}{path}", base.trim_end_matches('/'))),
                ca_bundle,
                service: None,
            },
        }
    }

    fn metadata(&self) -> ObjectMeta {
        let annotations = match self {
            Target::Service { namespace, name } => Some(
                [(
                    "cert-manager.io/inject-ca-from".to_string(),
                    format!("{namespace}/{name}"),
                )]
                .into(),
            ),
            Target::Url(_) => None,
        };
        ObjectMeta {
            name: Some(CONFIGURATION_NAME.into()),
            annotations,
            labels: Some(
                [(
                    "app.kubernetes.io/name".to_string(),
                    "kaas-webhooks".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        }
    }
}

fn rule(operations: &[&str], resources: &[&str]) -> RuleWithOperations {
    RuleWithOperations {
        api_groups: Some(vec![api::GROUP.into()]),
        api_versions: Some(vec!["v1beta1".into()]),
        operations: Some(operations.iter().map(|o| o.to_string()).collect()),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        scope: Some("*".into()),
    }
}

/// Every kind of the group.
const ALL: [&str; 3] = ["kaasclusters", "providerclasses", "clusterstacks"];

/// When the API server calls the webhooks: not for an update that leaves the spec as it was
/// (a finalizer added or removed, labels, annotations), so the operators can take their
/// finalizers off while this server is unavailable, and such updates cost no round trip.
pub const SPEC_CHANGES_ONLY: &str =
    "request.operation != 'UPDATE' || object.spec != oldObject.spec";

/// The match conditions of every registration (evaluated by the API server in CEL before it
/// calls the webhooks).
fn match_conditions() -> Option<Vec<MatchCondition>> {
    Some(vec![MatchCondition {
        name: "spec-changes-only".into(),
        expression: SPEC_CHANGES_ONLY.into(),
    }])
}

/// The mutating (defaulting) configuration.
pub fn mutating(target: &Target, ca_bundle: Option<&[u8]>) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: target.metadata(),
        webhooks: Some(vec![MutatingWebhook {
            name: "default.kaas.scs.community".into(),
            admission_review_versions: vec!["v1".into()],
            client_config: target.client_config("/mutate", ca_bundle),
            failure_policy: Some("Fail".into()),
            match_policy: Some("Equivalent".into()),
            // Objects of other versions arrive converted to v1beta1.
            rules: Some(vec![rule(&["CREATE", "UPDATE"], &ALL)]),
            match_conditions: match_conditions(),
            side_effects: "None".into(),
            timeout_seconds: Some(3),
            reinvocation_policy: Some("IfNeeded".into()),
            ..Default::default()
        }]),
    }
}

/// The validating configuration.
pub fn validating(target: &Target, ca_bundle: Option<&[u8]>) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: target.metadata(),
        webhooks: Some(vec![ValidatingWebhook {
            name: "validate.kaas.scs.community".into(),
            admission_review_versions: vec!["v1".into()],
            client_config: target.client_config("/validate", ca_bundle),
            failure_policy: Some("Fail".into()),
            match_policy: Some("Equivalent".into()),
            // Deleting a class or a stack is judged (one in use is kept); deleting a cluster is
            // not, so it never depends on this server being up.
            // A KaasOperator: its provider, version and flags; deleting one whose classes are
            // in use is refused.
            rules: Some(vec![
                rule(&["CREATE", "UPDATE"], &ALL),
                rule(&["DELETE"], &["providerclasses", "clusterstacks"]),
                // A StackRollout: its release, waves and bounds (nothing to default).
                rule(&["CREATE", "UPDATE"], &["stackrollouts"]),
                RuleWithOperations {
                    api_groups: Some(vec![api::install::GROUP.into()]),
                    api_versions: Some(vec!["v1alpha1".into()]),
                    operations: Some(vec!["CREATE".into(), "UPDATE".into(), "DELETE".into()]),
                    resources: Some(vec!["kaasoperators".into()]),
                    scope: Some("*".into()),
                },
            ]),
            match_conditions: match_conditions(),
            // A KaasCluster create or update under a TenantPolicy reserves its usage in the
            // policy's status; a dry run does not.
            side_effects: "NoneOnDryRun".into(),
            timeout_seconds: Some(3),
            ..Default::default()
        }]),
    }
}

/// The conversion settings of the `KaasCluster` CRD pointing at `target`.
pub fn conversion(target: &Target, ca_bundle: Option<&[u8]>) -> apiext::CustomResourceConversion {
    let config = target.client_config("/convert", ca_bundle);
    apiext::CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(apiext::WebhookConversion {
            conversion_review_versions: vec!["v1".into()],
            client_config: Some(apiext::WebhookClientConfig {
                ca_bundle: config.ca_bundle,
                url: config.url,
                service: config.service.map(|s| apiext::ServiceReference {
                    namespace: s.namespace,
                    name: s.name,
                    path: s.path,
                    port: s.port,
                }),
            }),
        }),
    }
}

/// The registrations as deployed: the `kaas-webhooks` Service in `kaas-system`, CA injected by
/// cert-manager. `make manifests` writes this to `deploy/webhooks/webhook-configurations.yaml`.
pub fn deployed_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let target = Target::Service {
        namespace: api::crds::WEBHOOK_NAMESPACE.into(),
        name: api::crds::WEBHOOK_SERVICE.into(),
    };
    let mutating = serde_saphyr::to_string(&mutating(&target, None))?;
    let validating = serde_saphyr::to_string(&validating(&target, None))?;
    Ok(format!(
        "# Generated from webhooks/src/registration.rs by `make manifests`; do not edit by hand.\n{mutating}---\n{validating}"
    ))
}

/// Registers both configurations for `target` with the API server behind `client`
/// (server-side apply as `manager`, taking the fields over): how the tests and the demo
/// register a kaas-webhooks they run by URL.
pub async fn apply(
    client: &kube::Client,
    target: &Target,
    ca_bundle: Option<&[u8]>,
    manager: &str,
) -> Result<(), kube::Error> {
    use kube::api::{Api, Patch, PatchParams};
    let params = PatchParams::apply(manager).force();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(
            CONFIGURATION_NAME,
            &params,
            &Patch::Apply(mutating(target, ca_bundle)),
        )
        .await?;
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(
            CONFIGURATION_NAME,
            &params,
            &Patch::Apply(validating(target, ca_bundle)),
        )
        .await?;
    Ok(())
}
