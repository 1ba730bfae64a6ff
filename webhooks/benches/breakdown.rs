//! Where the CPU of one admission goes, in process (no TLS, no HTTP): the parts of a
//! `/validate` call side by side with the least a correct webhook must do (read the review's
//! uid and answer), for the ~4 KB review of the `admission` benchmark and for a ~9 KB review
//! of a stored object (managed fields, a status with eight conditions). Complements the
//! `admission` benchmark, whose ratio to a constant answer these per-call costs explain.
//! Writes `bench-results/webhooks-breakdown.txt`.
//!
//! Run: `cargo bench -p kaas-webhooks --bench breakdown`. Read the figures relative to each
//! other: the machines here are noisy.

use std::hint::black_box;
use std::time::Instant;

use anyhow::Result;
use kaas_webhooks::admission::{Endpoint, admit};
use kaas_webhooks::cache::CatalogCache;
use kaas_webhooks::review::Verdict;

#[path = "support/requests.rs"]
mod requests;
use requests::{UidOnly, cluster, mutate_body, review, stored, validate_body};

// The same allocator as the kaas-webhooks binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CALLS: u32 = 50_000;
const ROUNDS: usize = 5;

/// Median over `ROUNDS` of the mean time of one call, in µs.
fn per_call(mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn main() -> Result<()> {
    let catalog = requests::catalog()?;
    let cache = CatalogCache::fixed(&catalog);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let small = validate_body();
    let mutate = mutate_body();
    let big_object = stored(cluster("shop-prod", true));
    let big = review("UPDATE", big_object.clone(), Some(big_object.clone()));
    let object_text = serde_json::to_string(&cluster("shop-prod", true))?;
    let big_text = serde_json::to_string(&big_object)?;
    let typed: api::v1beta1::KaasCluster = serde_json::from_str(&object_text)?;
    let previous = api::Previous::from(&typed);

    let whole = |body: &[u8], endpoint| {
        per_call(|| {
            let answer = rt.block_on(admit(endpoint, black_box(body), &cache));
            black_box(answer.body.to_string());
        })
    };
    let rows: Vec<(String, f64)> = vec![
        (
            format!(
                "least a webhook must do: read the uid of the {} B review, answer",
                small.len()
            ),
            per_call(|| {
                let r: UidOnly<'_> =
                    serde_json::from_slice(black_box(&small)).unwrap_or_else(|_| unreachable!());
                black_box(
                    Verdict::allow()
                        .into_review("admission.k8s.io/v1", &r.request.uid)
                        .to_string(),
                );
            }),
        ),
        (
            "  the review read (object typed, old object as far as the rules need)".into(),
            per_call(|| {
                black_box(kaas_webhooks::request::parse(black_box(&small)).is_ok());
            }),
        ),
        (
            format!(
                "    for comparison: one object typed in full ({} B, of two)",
                object_text.len()
            ),
            per_call(|| {
                black_box(
                    serde_json::from_str::<api::v1beta1::KaasCluster>(black_box(&object_text))
                        .is_ok(),
                );
            }),
        ),
        (
            "  the update rules (shared with the operators)".into(),
            per_call(|| {
                black_box(
                    api::validation::validate_kaas_cluster(&typed, Some(&previous), &catalog)
                        .is_ok(),
                );
            }),
        ),
        (
            "  the response".into(),
            per_call(|| {
                black_box(
                    Verdict::allow()
                        .into_review("admission.k8s.io/v1", "7f0b4b1a")
                        .to_string(),
                );
            }),
        ),
        (
            format!("/validate, whole call ({} B)", small.len()),
            whole(&small, Endpoint::Validate),
        ),
        (
            format!("/mutate, whole call ({} B)", mutate.len()),
            whole(&mutate, Endpoint::Mutate),
        ),
        (
            format!("/validate of a stored object, whole call ({} B)", big.len()),
            whole(&big, Endpoint::Validate),
        ),
        (
            format!(
                "  for comparison: both stored objects parsed in full ({} B each)",
                big_text.len()
            ),
            per_call(|| {
                for _ in 0..2 {
                    black_box(
                        serde_json::from_str::<api::v1beta1::KaasCluster>(black_box(&big_text))
                            .is_ok(),
                    );
                }
            }),
        ),
    ];
    let mut out = String::from(
        "kaas-webhooks: CPU per admission call, in process (median of 5 rounds of 50,000 calls)\n",
    );
    for (what, us) in &rows {
        out.push_str(&format!("{what:<80} {us:>7.2} µs\n"));
    }
    print!("{out}");
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join("webhooks-breakdown.txt"), out)?;
    println!("written to bench-results/webhooks-breakdown.txt");
    Ok(())
}
