//! `kaas-installer`: see the library's documentation.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    installer::runtime::run().await
}
