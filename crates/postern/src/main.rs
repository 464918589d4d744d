//! The `postern` command: `serve` runs the gateway; every other command manages a running
//! gateway through its admin API, in the spirit of the cf CLI (`service create`,
//! `service-key create`, ...).

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: allocation on the request path without arena lock
/// contention between worker threads (bench/README.md has the measurement).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // One crypto provider in the whole process (aws-lc-rs); an error only means one is installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // Payload parsers (XML DOM, XPath) recurse per nesting level; their depth limits are
        // sized for this stack, not for the 2 MiB default.
        .thread_stack_size(8 * 1024 * 1024)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
