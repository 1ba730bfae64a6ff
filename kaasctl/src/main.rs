//! `kaasctl`: parse the command line, run the command, print a failure as one line.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = kaasctl::cli::Cli::parse();
    match kaasctl::run(cli).await {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("kaasctl: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
