//! `kaas-operator-hetzner`: install the TLS crypto provider, run the shared runtime. The
//! Hetzner Cloud API is `HCLOUD_ENDPOINT` when set (as for the `hcloud` CLI), else the public one.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    operator_core::run(kaas_provider_hetzner::Provider::from_env()).await
}
