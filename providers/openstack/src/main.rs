//! `kaas-operator-openstack`: install the TLS crypto provider, run the shared runtime.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    operator_core::run(kaas_provider_openstack::Provider).await
}
