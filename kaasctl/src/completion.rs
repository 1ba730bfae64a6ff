//! `kaasctl completion bash|zsh|fish`: the shell's completion script, generated from the same
//! command definitions the parser uses ([`crate::cli::Cli`]), so it never lags behind a new
//! command or flag.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionArgs, Shell};

/// Writes the completion script of `args.shell` to standard output.
pub fn run(args: &CompletionArgs) -> u8 {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "kaasctl",
        &mut std::io::stdout().lock(),
    );
    0
}
