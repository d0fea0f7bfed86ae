//! `mixprec`: train, compare, benchmark and inspect mixed-precision models from the command line.
//!
//! `cargo run --release -- compare` trains the same MLP on the embedded digits data under every
//! Keras policy and prints a table; `mixprec --help` lists the rest. Errors are one line on stderr
//! and a non-zero exit code; nothing is written unless the command succeeds.
//!
//! Standard output is written only through [`output`]: when the reader of a pipe has gone
//! (`mixprec compare | head -1`) the program ends quietly with exit status 0, as a Unix tool
//! ends on SIGPIPE but without the 141 status; any other write error (`> /dev/full`) is
//! `error: cannot write to standard output: ...` and exit status 1.

#![forbid(unsafe_code)] // the library's kernels hold the project's only `unsafe`

mod arch;
mod bench;
mod cli;
mod compare;
mod data;
mod info;
mod layers;
mod limits;
mod output;
mod plot;
mod predict;
mod progress;
mod resume;
mod run;
mod train;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command};

fn main() -> ExitCode {
    // A SIGINT or SIGTERM during a save removes the save's temporary file before the process
    // ends; without the handler (if it cannot be installed) saves are still atomic.
    let _ = mixprec::io::cleanup_temp_files_on_signal();
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err((subcommand, message)) = layers::check(&mut cli, &matches) {
        let mut cmd = Cli::command();
        cmd.build();
        let sub = cmd
            .find_subcommand_mut(subcommand)
            .expect("a subcommand of the Cli");
        sub.error(clap::error::ErrorKind::ValueValidation, message)
            .exit();
    }
    let result = match cli.command {
        Command::Train(args) => train::train(&args),
        Command::Compare(args) => compare::compare(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::Predict(args) => predict::predict(&args),
        Command::Inspect { file } => predict::inspect(&file),
        Command::Info => info::info(),
    };
    match result {
        Ok(()) => {
            output::flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            output::flush();
            output::errln!("error: {}", with_causes(&e));
            ExitCode::FAILURE
        }
    }
}

/// `e`'s message followed by each cause its message does not already include, on one line
/// (`checkpoint m.safetensors: metadata key "mixprec.policy" holds ...: unknown policy ...`).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        cause = c.source();
    }
    line
}
