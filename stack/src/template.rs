//! Add-on manifests rendered in process (no Helm in the runtime path): each manifest file is a
//! minijinja template over the cluster's values, the stack's variables and the add-on's
//! values, and renders to YAML documents. Undefined names are errors, not empty strings, so
//! a typo in a template or an unknown variable fails the release instead of a cluster.

use std::collections::BTreeMap;

use api::v1beta1::AddonOverride;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, context};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Problem};
use crate::format::{Health, Stage};
use crate::release::Release;
use crate::values;

/// How many steps (template instructions) one manifest file may take to render: the shipped
/// stacks take a few thousand; a release's loops cannot hold a thread for long.
pub const MAX_FUEL: u64 = 2_000_000;
/// The most text one manifest file may render to.
pub const MAX_OUTPUT: usize = 4 * 1024 * 1024;
/// The most text all manifest files of one render may render to together.
pub const MAX_RENDER_OUTPUT: usize = 16 * 1024 * 1024;

/// Label on every object of an add-on in the workload cluster: the add-on's name.
pub const ADDON_LABEL: &str = "kaas.scs.community/addon";

/// What templates know about the cluster, as `cluster.<field>`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterValues {
    /// `KaasCluster` name.
    pub name: String,
    /// Its namespace in the management cluster.
    pub namespace: String,
    /// The provider (`openstack`).
    pub provider: String,
    /// Full Kubernetes version (`1.33.1`).
    pub kubernetes_version: String,
    /// The first pod network.
    #[serde(rename = "podCIDR")]
    pub pod_cidr: String,
    /// The first Service network.
    #[serde(rename = "serviceCIDR")]
    pub service_cidr: String,
    /// `spec.network.mtu` when the cluster sets it; it overrides the stack variable `mtu`.
    #[serde(skip)]
    pub mtu: Option<i32>,
}

impl ClusterValues {
    /// A stand-in cluster used to try-render a release when it is checked.
    pub fn sample(provider: &str, kubernetes_version: &str) -> Self {
        ClusterValues {
            name: "sample".into(),
            namespace: "default".into(),
            provider: provider.into(),
            kubernetes_version: kubernetes_version.into(),
            pod_cidr: api::v1beta1::DEFAULT_POD_CIDR.into(),
            service_cidr: api::v1beta1::DEFAULT_SERVICE_CIDR.into(),
            mtu: None,
        }
    }
}

/// One add-on, rendered for one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RenderedAddon {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its upgrade stage.
    pub stage: Stage,
    /// How its health is judged.
    pub health: Health,
    /// Add-ons it waits for.
    pub depends_on: Vec<String>,
    /// Its objects, each labelled with [`ADDON_LABEL`].
    pub objects: Vec<Value>,
}

/// The stack variables for `cluster`: defaults, with the cluster's MTU when the stack has
/// an `mtu` variable.
fn stack_vars(
    release: &Release,
    cluster: &ClusterValues,
) -> Result<BTreeMap<String, Value>, Error> {
    let mut given = serde_json::Map::new();
    if let Some(mtu) = cluster.mtu
        && release.stack.variables.contains_key("mtu")
    {
        given.insert("mtu".into(), mtu.into());
    }
    values::resolve(
        &release.stack.variables,
        Some(&Value::Object(given)),
        "vars",
    )
    .map_err(|p| {
        Error::Invalid(
            p.into_iter()
                .map(|(field, message)| {
                    let field = if field == "vars.mtu" {
                        "spec.network.mtu".to_string()
                    } else {
                        field
                    };
                    Problem::new("KaasCluster", field, message)
                })
                .collect(),
        )
    })
}

/// Where this process compiles and renders templates when not in itself: the operators
/// install [`crate::sandbox`]'s workers, so a release someone else published never renders in
/// the operator. Installed once; `kaasctl` and tests install none.
pub trait Isolation: Send + Sync {
    /// [`render_addons`] elsewhere.
    fn render(
        &self,
        release: &Release,
        cluster: &ClusterValues,
        overrides: &[AddonOverride],
    ) -> Result<Vec<RenderedAddon>, Error>;
    /// [`check_syntax`] elsewhere.
    fn check_syntax(&self, file: &str, source: &str) -> Option<Problem>;
}

static ISOLATION: std::sync::OnceLock<Box<dyn Isolation>> = std::sync::OnceLock::new();

/// From now on, templates of this process compile and render through `isolation` (the first
/// one installed stays).
pub fn isolate(isolation: Box<dyn Isolation>) {
    let _ = ISOLATION.set(isolation);
}

/// Renders the enabled add-ons of `release` for `cluster` with its `overrides`, in the
/// release's order (which [`crate::check`] guarantees respects `dependsOn`). Override
/// problems name the `KaasCluster` field; template problems name the file and line.
///
/// In a process with an [`Isolation`] (the operators' sandbox), the templates render in a
/// worker process with a memory limit and a deadline; elsewhere (`kaasctl`, tests) here.
pub fn render_addons(
    release: &Release,
    cluster: &ClusterValues,
    overrides: &[AddonOverride],
) -> Result<Vec<RenderedAddon>, Error> {
    match ISOLATION.get() {
        Some(isolation) => isolation.render(release, cluster, overrides),
        None => render_in_process(release, cluster, overrides),
    }
}

/// [`render_addons`] in this process, under the fuel budget and the output cap only.
pub(crate) fn render_in_process(
    release: &Release,
    cluster: &ClusterValues,
    overrides: &[AddonOverride],
) -> Result<Vec<RenderedAddon>, Error> {
    let mut problems = Vec::new();
    for (i, o) in overrides.iter().enumerate() {
        match release.stack.addons.iter().find(|a| a.name == o.name) {
            None => problems.push(Problem::new(
                "KaasCluster",
                format!("spec.addons[{i}].name"),
                format!("stack {} has no add-on {:?}", release.id(), o.name),
            )),
            Some(a) if o.enabled == Some(false) && !a.optional => problems.push(Problem::new(
                "KaasCluster",
                format!("spec.addons[{i}].enabled"),
                format!("add-on {:?} is mandatory and cannot be turned off", a.name),
            )),
            Some(_) => {}
        }
    }
    let vars = stack_vars(release, cluster)?;
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // YAML is text here: quoting is the template's job, as in Helm.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // A release comes from a registry someone else runs: its templates get a budget.
    env.set_fuel(Some(MAX_FUEL));
    let mut out = Vec::new();
    let mut total = 0usize;
    for addon in &release.stack.addons {
        let over = overrides
            .iter()
            .enumerate()
            .find(|(_, o)| o.name == addon.name);
        if over.is_some_and(|(_, o)| o.enabled == Some(false)) {
            continue;
        }
        let path = over.map_or_else(String::new, |(i, _)| format!("spec.addons[{i}].values"));
        let addon_values = match values::resolve(
            &addon.values,
            over.and_then(|(_, o)| o.values.as_ref()),
            &path,
        ) {
            Ok(v) => v,
            Err(p) => {
                problems.extend(p.into_iter().map(|(field, message)| {
                    Problem::new(
                        "KaasCluster",
                        field,
                        format!("add-on {}: {message}", addon.name),
                    )
                }));
                continue;
            }
        };
        let ctx = context! {
            cluster => cluster,
            vars => &vars,
            values => &addon_values,
            addon => context! { name => &addon.name, version => &addon.version },
        };
        let mut objects = Vec::new();
        for file in &addon.manifests {
            let source = release
                .files
                .get(file)
                .map(String::as_str)
                .unwrap_or_default();
            match render_file(&env, file, source, &ctx) {
                Ok((docs, length)) => {
                    total += length;
                    objects.extend(docs.into_iter().map(|mut obj| {
                        obj["metadata"]["labels"][ADDON_LABEL] = addon.name.clone().into();
                        obj
                    }));
                }
                Err(p) => problems.extend(p),
            }
        }
        for patch in release
            .stack
            .patches
            .iter()
            .filter(|p| p.addon == addon.name)
        {
            let source = release
                .files
                .get(&patch.file)
                .map(String::as_str)
                .unwrap_or_default();
            match render_file(&env, &patch.file, source, &ctx) {
                Ok((docs, length)) => {
                    total += length;
                    for (i, doc) in docs.iter().enumerate() {
                        if let Err(message) = apply_patch(&mut objects, doc, &addon.name) {
                            problems.push(Problem::new(
                                &patch.file,
                                format!("document {}", i + 1),
                                message,
                            ));
                        }
                    }
                }
                Err(p) => problems.extend(p),
            }
        }
        out.push(RenderedAddon {
            name: addon.name.clone(),
            version: addon.version.clone(),
            stage: addon.stage,
            health: addon.health,
            depends_on: addon.depends_on.clone(),
            objects,
        });
        if total > MAX_RENDER_OUTPUT {
            problems.push(Problem::new(
                &format!("stack {} {}", release.stack.name, release.stack.version),
                "",
                format!("the add-ons render to more than {MAX_RENDER_OUTPUT} bytes in all"),
            ));
            break;
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Invalid(problems))
    }
}

/// Merges the patch document `doc` into the one object of `objects` with its apiVersion, kind,
/// name and namespace.
fn apply_patch(objects: &mut [Value], doc: &Value, addon: &str) -> Result<(), String> {
    let id = |o: &Value| {
        (
            o["apiVersion"].clone(),
            o["kind"].clone(),
            o["metadata"]["name"].clone(),
            o["metadata"]["namespace"].clone(),
        )
    };
    let wanted = id(doc);
    let target = objects
        .iter_mut()
        .find(|o| id(o) == wanted)
        .ok_or_else(|| {
            format!(
                "patches no object of add-on {addon}: it has no {} {}{}",
                doc["kind"].as_str().unwrap_or_default(),
                doc["metadata"]["namespace"]
                    .as_str()
                    .map_or_else(String::new, |ns| format!("{ns}/")),
                doc["metadata"]["name"].as_str().unwrap_or_default()
            )
        })?;
    crate::compose::merge(target, doc);
    Ok(())
}

/// Renders one template file into its YAML documents, each a Kubernetes object.
fn render_file<'a>(
    env: &Environment<'a>,
    file: &'a str,
    source: &'a str,
    ctx: &minijinja::Value,
) -> Result<(Vec<Value>, usize), Vec<Problem>> {
    let mut out = CappedText::default();
    let tmpl_err = |e: minijinja::Error, out: &CappedText| {
        let field = e.line().map_or_else(String::new, |l| format!("line {l}"));
        let message = match e.kind() {
            _ if out.exceeded => format!("renders to more than {MAX_OUTPUT} bytes"),
            minijinja::ErrorKind::OutOfFuel => {
                format!("takes more than {MAX_FUEL} steps to render (the template budget)")
            }
            _ => e
                .detail()
                .map_or_else(|| e.kind().to_string(), str::to_string),
        };
        vec![Problem::new(file, field, message)]
    };
    env.template_from_named_str(file, source)
        .and_then(|t| t.render_captured_to(ctx, &mut out).map(drop))
        .map_err(|e| tmpl_err(e, &out))?;
    let length = out.text.len();
    let rendered = String::from_utf8_lossy(&out.text);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&rendered).map_err(|e| {
        vec![Problem::new(
            file,
            "",
            format!("renders to invalid YAML: {}", first_line(&e.to_string())),
        )]
    })?;
    let mut problems = Vec::new();
    let objects: Vec<Value> = docs
        .into_iter()
        .filter(|d| !d.is_null())
        .enumerate()
        .filter_map(|(i, doc)| {
            let named = doc["apiVersion"].is_string()
                && doc["kind"].is_string()
                && doc["metadata"]["name"].is_string();
            if named {
                Some(doc)
            } else {
                problems.push(Problem::new(
                    file,
                    format!("document {}", i + 1),
                    "must be a Kubernetes object with apiVersion, kind and metadata.name",
                ));
                None
            }
        })
        .collect();
    if problems.is_empty() {
        Ok((objects, length))
    } else {
        Err(problems)
    }
}

/// Rendered text, refused once it passes [`MAX_OUTPUT`] (nothing past it is kept).
#[derive(Default)]
struct CappedText {
    text: Vec<u8>,
    exceeded: bool,
}

impl std::io::Write for CappedText {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > MAX_OUTPUT {
            self.exceeded = true;
            return Err(std::io::Error::from(std::io::ErrorKind::FileTooLarge));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks that `source` parses as a template; the problem names the file and line.
///
/// Compiling folds constant expressions (`'x' * 99999999` is computed then), so in a process
/// with an [`Isolation`] this runs there too.
pub fn check_syntax(file: &str, source: &str) -> Option<Problem> {
    match ISOLATION.get() {
        Some(isolation) => isolation.check_syntax(file, source),
        None => check_syntax_in_process(file, source),
    }
}

/// [`check_syntax`] in this process.
pub(crate) fn check_syntax_in_process(file: &str, source: &str) -> Option<Problem> {
    let env = Environment::new();
    env.template_from_named_str(file, source).err().map(|e| {
        let field = e.line().map_or_else(String::new, |l| format!("line {l}"));
        Problem::new(
            file,
            field,
            e.detail()
                .map_or_else(|| e.kind().to_string(), str::to_string),
        )
    })
}

/// The message of a YAML error without the source excerpt the parser appends.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    line.trim_start_matches("error: ").to_string()
}
