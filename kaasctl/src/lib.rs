//! `kaasctl`: the KaaS command-line tool. It reads the same objects users apply and runs the
//! same code the operators run (`operator_core::offline`, `kaas_stack`), so what it renders,
//! plans and verifies is what the operator does.
//!
//! - [`cli`]: the commands and flags;
//! - [`input`]: objects read from files and folders;
//! - [`providers`]: the three providers behind one call;
//! - [`render`], [`plan`], [`stacks`], [`clusters`], [`install`]: one module per command group;
//!   [`update`] and [`forge`]: the release bot's `stack update` and `stack pr`; [`rollout`]:
//!   `StackRollout`s; [`quota`]: `TenantPolicy` usage.

pub mod cli;
pub mod clusters;
pub mod completion;
pub mod conformance;
mod connect;
pub mod e2e;
pub mod error;
pub mod forge;
mod git;
mod http;
pub mod input;
pub mod install;
pub mod junit;
pub mod plan;
pub mod providers;
pub mod quota;
pub mod release;
pub mod render;
pub mod rollout;
pub mod stacks;
pub mod update;

pub use error::Error;

use cli::{Cli, Command, GetWhat, StackCommand};

/// Runs `cli`; the process exit code (0, or 2 for a negative answer such as a non-compliant
/// stack or a refused plan).
pub async fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Render(args) => render::run(&args).await,
        Command::Plan(args) => plan::run(&args).await,
        Command::Stack { command } => match command {
            StackCommand::Build(args) => stacks::build(&args),
            StackCommand::Verify(args) => stacks::verify(&args),
            StackCommand::Push(args) => stacks::push(&args).await,
            StackCommand::Update(args) => update::run(&args).await,
            StackCommand::Pr(args) => forge::run(&args).await,
            StackCommand::E2e(args) => e2e::run(&args).await,
            StackCommand::Release(args) => release::run(&args).await,
            StackCommand::Keygen(args) => release::keygen(&args),
            StackCommand::Sign(args) => release::sign(&args).await,
        },
        Command::Status(args) => clusters::status(&args).await,
        Command::Conformance(args) => conformance::run(&args).await,
        Command::Rollout { command } => rollout::run(&command).await,
        Command::Install(args) => install::run(&args).await,
        Command::Quota(args) => quota::run(&args).await,
        Command::Completion(args) => Ok(completion::run(&args)),
        Command::Get { what } => match what {
            GetWhat::Kubeconfig(args) => clusters::kubeconfig(&args).await,
        },
    }
}
