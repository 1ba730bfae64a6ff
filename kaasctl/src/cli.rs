//! The commands and flags of `kaasctl`, with the help text a newcomer reads.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Kubernetes as a Service from cluster stacks: see what a KaasCluster becomes, plan changes,
/// build and check stack releases, and look at running clusters.
///
/// Commands that talk to a management cluster use KUBECONFIG (or ~/.kube/config).
#[derive(Debug, Parser)]
#[command(name = "kaasctl", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print, offline, the Cluster API objects, node image objects and add-on manifests a
    /// KaasCluster would produce (no cluster needed).
    ///
    /// Example: kaasctl render -f examples/openstack/
    Render(RenderArgs),
    /// Show what applying a KaasCluster would change in the management cluster: objects
    /// created or updated, which pools roll, and for an upgrade the chain of steps. Writes
    /// nothing.
    ///
    /// Example: kaasctl plan -f my-cluster.yaml -n team-a
    Plan(PlanArgs),
    /// Build, verify and push cluster stack releases.
    Stack {
        /// What to do with a stack.
        #[command(subcommand)]
        command: StackCommand,
    },
    /// A table of the installed operators and of the clusters: phase, versions and the first
    /// failing condition.
    Status(StatusArgs),
    /// Install (or move to another version) a provider operator: writes its KaasOperator,
    /// which kaas-installer serves (docs/installing.md).
    ///
    /// Example: kaasctl install openstack --class openstack --default-class openstack
    Install(InstallArgs),
    /// The SCS standards a cluster was checked against, as its operator reports them
    /// (status.standards): a table, and JUnit XML with --junit. Exit 0 when every standard
    /// passes, 2 otherwise.
    ///
    /// Example: kaasctl conformance shop -n team-a --junit shop-scs.xml
    Conformance(ConformanceArgs),
    /// A StackRollout: where it stands, pause it, resume it (also after a halt).
    ///
    /// Example: kaasctl rollout status patch-1-0-1 -n tenants
    Rollout {
        /// What to do with the rollout.
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// What the TenantPolicies governing a namespace allow, what its namespaces use and what
    /// is left (docs/tenancy.md); every policy when no namespace is named.
    ///
    /// Example: kaasctl quota team-a
    Quota(QuotaArgs),
    /// Get something of a cluster.
    Get {
        /// What to get.
        #[command(subcommand)]
        what: GetWhat,
    },
    /// The completion script of a shell for kaasctl's commands and flags, on standard
    /// output.
    ///
    /// Example: source <(kaasctl completion bash)
    Completion(CompletionArgs),
}

/// `kaasctl completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// A shell kaasctl writes a completion script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash: `source <(kaasctl completion bash)`, or the file in
    /// /etc/bash_completion.d/.
    Bash,
    /// zsh: the file `_kaasctl` in a folder of `$fpath`.
    Zsh,
    /// fish: the file `kaasctl.fish` in ~/.config/fish/completions/.
    Fish,
}

/// `kaasctl render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// A YAML file or a folder of them holding the KaasCluster, and optionally its
    /// ProviderClass and ClusterStack (as in examples/<provider>/).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// A stack release folder to use besides the stacks built into kaasctl; repeat it for a
    /// cluster in the middle of an upgrade (the release it leaves and the one it moves to).
    #[arg(long)]
    pub stack: Vec<PathBuf>,
    /// Namespace of the cluster when its file names none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Leave out the add-on manifests.
    #[arg(long)]
    pub no_addons: bool,
}

/// `kaasctl plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The KaasCluster as it would be applied (a file or a folder).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Namespace of the cluster when its file names none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Where fetched stack releases are cached.
    #[arg(long, env = "KAAS_STACK_CACHE")]
    pub stack_cache_dir: Option<PathBuf>,
    /// Registries spoken to over plain HTTP (development only).
    #[arg(long, value_delimiter = ',')]
    pub plain_http_registry: Vec<String>,
}

/// `kaasctl stack ...`.
#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Check a release folder and pack it into a reproducible .tar.gz; prints its content
    /// digest and the sha256 an HTTP source pins.
    Build(StackBuildArgs),
    /// Check that a provider's release still has every component of its base (non-zero exit
    /// when it does not).
    Verify(StackVerifyArgs),
    /// Push a release folder to an OCI registry; prints the digest a ClusterStack pins.
    Push(StackPushArgs),
    /// Move a provider overlay (in a git work tree) to the newest base release the policy
    /// allows: carries the base, bumps the release, adds the upgrade edge and a changelog
    /// entry, checks compliance and commits on a branch stack-update/<provider>-<name>-<version>.
    /// Exit 0 when updated or up to date, 2 when the new release is not compliant (still
    /// committed, so the pull request shows why).
    ///
    /// Example: kaasctl stack update stacks/hetzner --base-repository registry.example.com/stacks/base-scs
    Update(StackUpdateArgs),
    /// Push the branch `stack update` committed and open (or update) its pull request with
    /// the changelog, a label and a commit status for compliance. The forge token comes from
    /// KAAS_FORGE_TOKEN.
    ///
    /// Example: kaasctl stack pr stacks/hetzner --summary update.json --repository scs/stacks
    Pr(StackPrArgs),
    /// Test a candidate release on the management cluster KUBECONFIG names: push it under a
    /// candidate tag, bring a canary KaasCluster on it to Ready and Compliant, upgrade a
    /// second canary from the previous release to it, delete both and check nothing is left.
    /// Exit 0 passed, 2 failed; --junit and --report say which step failed.
    ///
    /// Example: kaasctl stack e2e stacks/docker --candidate-repository registry.example.com/ci/docker-scs --junit e2e.xml
    E2e(StackE2eArgs),
    /// Publish a release: optionally merge its pull request first (--auto-merge, only after a
    /// compliant update and a passed e2e run), push it with its version and channel tag,
    /// sign it (cosign's layout) and tag the commit `<provider>-<name>-v<version>`.
    ///
    /// Example: kaasctl stack release stacks/docker --stack-repository registry.example.com/stacks/docker-scs --signing-key release.key
    Release(StackReleaseArgs),
    /// Make a signing key pair (ECDSA P-256, PEM): the private key for `stack release`, the
    /// public one for the operators' --stack-signing-key.
    Keygen(StackKeygenArgs),
    /// Sign a pushed release with a key (cosign's layout: `sha256-<hex>.sig` beside it).
    Sign(StackSignArgs),
}

/// `kaasctl stack pr`.
#[derive(Debug, Args)]
pub struct StackPrArgs {
    /// A folder in the git work tree `stack update` committed in.
    pub dir: PathBuf,
    /// What `stack update --summary` wrote.
    #[arg(long)]
    pub summary: PathBuf,
    /// The forge.
    #[command(flatten)]
    pub forge: ForgeArgs,
    /// The git remote to push the branch to.
    #[arg(long, default_value = "origin")]
    pub remote: String,
    /// The branch the pull request merges into.
    #[arg(long, default_value = "main")]
    pub base: String,
    /// The label every such pull request carries (a failed one also `compliance-failed`).
    #[arg(long, default_value = "stack-update")]
    pub label: String,
}

/// Where the forge's REST API is; its token comes from KAAS_FORGE_TOKEN.
#[derive(Debug, Clone, Args)]
pub struct ForgeArgs {
    /// The forge's repository, owner/name.
    #[arg(long)]
    pub repository: Option<String>,
    /// The forge's API: https://api.github.com, or https://<gitea>/api/v1.
    #[arg(long, default_value = "https://api.github.com")]
    pub api_url: String,
    /// Which forge speaks at --api-url.
    #[arg(long, value_enum, default_value = "github")]
    pub forge: ForgeKind,
}

/// `kaasctl stack e2e`.
#[derive(Debug, Args)]
pub struct StackE2eArgs {
    /// The candidate release folder (with stack.yaml; its first `upgradeFrom` is the release
    /// the upgrade canary starts on).
    pub dir: PathBuf,
    /// The OCI repository the candidate is pushed to, tagged `<version>-candidate.<commit>`
    /// (a pre-release tag: discovery never offers it).
    #[arg(long)]
    pub candidate_repository: String,
    /// Sign the candidate with this PEM key (for management clusters that require signed
    /// releases: a CI key, not the release key).
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// The ProviderClass the canaries use (default: the stack's provider name).
    #[arg(long)]
    pub class: Option<String>,
    /// The namespace of the canaries (created when missing).
    #[arg(short = 'n', long, default_value = "kaas-e2e")]
    pub namespace: String,
    /// The machine type of the canaries' one worker.
    #[arg(long, default_value = "default")]
    pub machine_type: String,
    /// Seconds each wait may take (a canary Ready, its upgrade, its deletion).
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Write the steps as JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the result as JSON here (for `stack release --e2e-summary`).
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Post the result on the pull request of the checked-out branch: a commit status
    /// `kaas/e2e` and a comment (needs --repository and KAAS_FORGE_TOKEN).
    #[arg(long)]
    pub report: bool,
    /// The forge, for --report.
    #[command(flatten)]
    pub forge: ForgeArgs,
    /// Speak plain HTTP to the registry (development only).
    #[arg(long)]
    pub plain_http: bool,
}

/// `kaasctl stack release`.
#[derive(Debug, Args)]
pub struct StackReleaseArgs {
    /// The release folder (with stack.yaml) in a git work tree.
    pub dir: PathBuf,
    /// The OCI repository of the releases (what operators discover with --stack-repository).
    #[arg(long)]
    pub stack_repository: String,
    /// The PEM private key (PKCS#8, ECDSA P-256) the release is signed with.
    #[arg(long)]
    pub signing_key: PathBuf,
    /// A moving tag pushed along with the version tag.
    #[arg(long, default_value = "stable")]
    pub channel_tag: String,
    /// First merge the pull request of the branch `stack update` committed (its summary in
    /// --summary) through the forge's API; refused unless the update was compliant and the
    /// e2e run in --e2e-summary passed on this very content.
    #[arg(long, requires_all = ["summary", "e2e_summary"])]
    pub auto_merge: bool,
    /// What `stack update --summary` wrote.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// What `stack e2e --summary` wrote.
    #[arg(long)]
    pub e2e_summary: Option<PathBuf>,
    /// The forge, for --auto-merge.
    #[command(flatten)]
    pub forge: ForgeArgs,
    /// The git remote (merged from, tag pushed to).
    #[arg(long, default_value = "origin")]
    pub remote: String,
    /// The branch pull requests merge into.
    #[arg(long, default_value = "main")]
    pub base: String,
    /// Speak plain HTTP to the registry (development only).
    #[arg(long)]
    pub plain_http: bool,
}

/// `kaasctl stack keygen`.
#[derive(Debug, Args)]
pub struct StackKeygenArgs {
    /// Writes `<prefix>.key` (private, mode 0600) and `<prefix>.pub`.
    #[arg(long, default_value = "kaas-stack")]
    pub prefix: PathBuf,
}

/// `kaasctl stack sign`.
#[derive(Debug, Args)]
pub struct StackSignArgs {
    /// The release, `repository@sha256:...`.
    pub reference: String,
    /// The PEM private key (PKCS#8, ECDSA P-256).
    #[arg(long)]
    pub key: PathBuf,
    /// Speak plain HTTP to the registry (development only).
    #[arg(long)]
    pub plain_http: bool,
}

/// The forges `kaasctl stack pr` speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForgeKind {
    /// GitHub (bearer token).
    Github,
    /// Gitea or Forgejo (`token` authorization, API under /api/v1).
    Gitea,
}

/// `kaasctl stack update`.
#[derive(Debug, Args)]
pub struct StackUpdateArgs {
    /// The provider overlay's release folder (with stack.yaml naming its base).
    pub dir: PathBuf,
    /// The OCI repository of the base's releases (tags are their versions).
    #[arg(long, conflicts_with = "base_index")]
    pub base_repository: Option<String>,
    /// A folder of base release folders (one per version), instead of a repository.
    #[arg(long)]
    pub base_index: Option<PathBuf>,
    /// Instead of the base: move the stack's own Kubernetes versions to the newest upstream
    /// patches this YAML file or http(s) URL lists (`releases: [{version, date}]`,
    /// `endOfLife: {"1.33": YYYY-MM-DD}`), dropping minors past their end of life.
    #[arg(long, conflicts_with_all = ["base_repository", "base_index"])]
    pub kubernetes: Option<String>,
    /// How far the base may move: within its minor (patch), its major (minor), or any.
    #[arg(long, value_enum, default_value = "patch")]
    pub within: Within,
    /// Take only base releases signed with this PEM public key (cosign's layout, as
    /// `stack release` signs); repeat for several keys, any of which may have signed. An
    /// unsigned or otherwise signed base stops the update, naming it. Needs
    /// `--base-repository` (a folder carries no signature).
    #[arg(long, requires = "base_repository")]
    pub base_signing_key: Vec<PathBuf>,
    /// Speak plain HTTP to the registry (development only).
    #[arg(long)]
    pub plain_http: bool,
    /// Write the files only: no git checks, no branch, no commit.
    #[arg(long)]
    pub no_commit: bool,
    /// Write what was done as JSON here (branch, versions, compliance, changelog), for the
    /// steps that open the pull request.
    #[arg(long)]
    pub summary: Option<PathBuf>,
}

/// How far `kaasctl stack update` moves a base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Within {
    /// Newer patches of the same minor.
    Patch,
    /// Newer minors and patches of the same major.
    Minor,
    /// Any newer release.
    Any,
}

impl Within {
    /// For messages: "a patch update".
    pub fn describe(self) -> &'static str {
        match self {
            Within::Patch => "a patch update",
            Within::Minor => "a minor update",
            Within::Any => "any update",
        }
    }
}

/// `kaasctl stack build`.
#[derive(Debug, Args)]
pub struct StackBuildArgs {
    /// The release folder (with stack.yaml).
    pub dir: PathBuf,
    /// Where to write the tarball; `<provider>-<name>-<version>.tar.gz` by default.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `kaasctl stack verify`.
#[derive(Debug, Args)]
pub struct StackVerifyArgs {
    /// The release folder (with stack.yaml).
    pub dir: PathBuf,
    /// The base to verify against, for a release that does not name one.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Also check the SCS standards a release can be judged on by itself: the Kubernetes
    /// version policy over its calendar (scs-0210), a default StorageClass (scs-0211), the
    /// hardening of its kubeadm settings (scs-0217) and a NetworkPolicy CNI (scs-0219).
    #[arg(long)]
    pub standards: bool,
}

/// `kaasctl rollout ...`.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Phase, wave, a halt and what to do about it, each wave's and cluster's progress. Exit
    /// 2 while halted.
    Status(RolloutArgs),
    /// Start no further cluster (those upgrading go on).
    Pause(RolloutArgs),
    /// Go on: unpaused, and a halt lifted (its cluster gets its time again).
    Resume(RolloutArgs),
}

/// The rollout a `kaasctl rollout` command is about.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// The StackRollout.
    pub name: String,
    /// Its namespace.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

/// `kaasctl quota`.
#[derive(Debug, Args)]
pub struct QuotaArgs {
    /// The namespace: its governing policies and its own usage.
    pub namespace: Option<String>,
}

/// `kaasctl conformance`.
#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// The KaasCluster.
    pub name: String,
    /// Its namespace.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Also write the results as JUnit XML here (a failed standard is a failure, an unknown
    /// one skipped).
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

/// `kaasctl stack push`.
#[derive(Debug, Args)]
pub struct StackPushArgs {
    /// The release folder (with stack.yaml).
    pub dir: PathBuf,
    /// The repository, such as registry.example.com/stacks/openstack-scs; the tag is the
    /// release's version.
    pub repository: String,
    /// Speak plain HTTP to the registry (development only).
    #[arg(long)]
    pub plain_http: bool,
}

/// `kaasctl status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this namespace; all namespaces by default.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// `kaasctl install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The provider: docker, openstack or hetzner.
    pub provider: String,
    /// The operator release (default: this kaasctl's release).
    #[arg(long)]
    pub version: Option<String>,
    /// A ProviderClass to create for it (repeatable).
    #[arg(long)]
    pub class: Vec<String>,
    /// Which of the classes is the default class.
    #[arg(long)]
    pub default_class: Option<String>,
    /// Also install the Cluster API providers its stacks need (needs the Cluster API operator).
    #[arg(long)]
    pub cluster_api: bool,
    /// Print the KaasOperator instead of applying it.
    #[arg(long)]
    pub dry_run: bool,
}

/// `kaasctl get ...`.
#[derive(Debug, Subcommand)]
pub enum GetWhat {
    /// Print the kubeconfig of a workload cluster (once Cluster API wrote it).
    Kubeconfig(KubeconfigArgs),
}

/// `kaasctl get kubeconfig`.
#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The KaasCluster's name.
    pub name: String,
    /// Its namespace.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}
