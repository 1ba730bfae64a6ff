//! `kaasctl stack build|verify|push`: a release folder checked and composed exactly as the
//! operator loads it (`kaas_stack::Release`), packed, verified against its base, or pushed to
//! an OCI registry.

use std::path::PathBuf;

use kaas_stack::Release;
use kaas_stack::source::Fetcher;

use crate::cli::{StackBuildArgs, StackPushArgs, StackVerifyArgs};
use crate::error::Error;

pub(crate) fn load(dir: &std::path::Path) -> Result<Release, Error> {
    eprintln!("loading and checking {}", dir.display());
    Ok(Release::load_dir(dir)?)
}

/// A fetcher for `repository`'s registry, over plain HTTP when `plain_http`.
pub(crate) fn fetcher_for(repository: &str, plain_http: bool) -> Fetcher {
    let registry = repository.split('/').next().unwrap_or_default().to_string();
    Fetcher::new(
        None,
        if plain_http {
            vec![registry]
        } else {
            Vec::new()
        },
    )
}

/// `kaasctl stack build`.
pub fn build(args: &StackBuildArgs) -> Result<u8, Error> {
    let release = load(&args.dir)?;
    let s = &release.stack;
    let output = args.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!("{}-{}-{}.tar.gz", s.provider, s.name, s.version))
    });
    let tarball = release.to_tarball();
    std::fs::write(&output, &tarball).map_err(|e| Error::io(&output, e))?;
    let sha256 = kaas_stack::release::hex(&kaas_stack::release::sha256(&tarball));
    println!("built {} ({} files)", release.id(), release.files.len());
    if let Some(base) = &release.base {
        println!("  base:           {}", base.id());
    }
    println!("  content digest: {}", release.digest);
    println!("  tarball:        {}", output.display());
    println!("  sha256:         {sha256}  (spec.source.http.sha256)");
    if let Some(build) = &s.node_image_build {
        println!("node images: build each with its Packer template (packer init first):");
        for image in &s.node_images {
            println!(
                "  packer build -var kubernetes_version={} -var image_name={} {}",
                image.kubernetes_version,
                image.name,
                args.dir.join(&build.packer).display()
            );
        }
    }
    Ok(0)
}

/// `kaasctl stack verify`: exit 0 when compliant, 2 when not.
pub fn verify(args: &StackVerifyArgs) -> Result<u8, Error> {
    let release = load(&args.dir)?;
    let standards = if args.standards {
        crate::conformance::release_standards(&release)
    } else {
        0
    };
    let base = match (&args.base, &release.base) {
        (Some(dir), _) => Release::load_dir(dir)?,
        (None, Some(base)) => (**base).clone(),
        // A base (or standalone) release checked for the standards only.
        (None, None) if args.standards => return Ok(standards),
        (None, None) => {
            return Err(Error::Invalid(format!(
                "{}: stack.yaml: base: the release names no base; give one with --base DIR",
                args.dir.display()
            )));
        }
    };
    for flag in release
        .stack
        .kubeadm
        .api_server_extra_args
        .keys()
        .filter(|k| k.starts_with("oidc-"))
    {
        // Not a failure: the flag serves clusters without `spec.oidc`.
        eprintln!(
            "warning: {}: kubeadm.apiServerExtraArgs.{flag}: a cluster's spec.oidc replaces the stack's oidc-* flags; \
             set OIDC per cluster instead",
            release.id()
        );
    }
    let findings = kaas_stack::compliance::verify(&release, &base);
    if findings.is_empty() {
        println!(
            "{} is compliant with base {}: every base add-on and the application surface are there",
            release.id(),
            base.id()
        );
        return Ok(standards);
    }
    println!("{} is NOT compliant with base {}:", release.id(), base.id());
    for f in &findings {
        println!("  - {f}");
    }
    Ok(2)
}

/// `kaasctl stack push`.
pub async fn push(args: &StackPushArgs) -> Result<u8, Error> {
    let release = load(&args.dir)?;
    let fetcher = fetcher_for(&args.repository, args.plain_http);
    eprintln!(
        "pushing {} to {}:{}",
        release.id(),
        args.repository,
        release.stack.version
    );
    let digest = fetcher.push(&args.repository, &release).await?;
    println!("pushed {} as {}@{digest}", release.id(), args.repository);
    println!("  content digest: {}", release.digest);
    println!("a ClusterStack pins it with:");
    println!(
        "  source:\n    oci:\n      repository: {}\n      digest: {digest}",
        args.repository
    );
    Ok(0)
}
