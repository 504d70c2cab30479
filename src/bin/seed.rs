//! `cargo run --bin seed`: the `seed` command of `auth-service` as a binary of its own (same
//! flags, output and exit status; see [`auth_service::infrastructure::seed`]).

use std::process::ExitCode;

use auth_service::infrastructure::bootstrap::start;
use auth_service::infrastructure::seed::{self, SeedArgs};
use clap::Parser;

#[derive(Parser)]
#[command(name = "seed", version)]
struct Cli {
    #[command(flatten)]
    args: SeedArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match start("seed") {
        Some((settings, runtime)) => runtime.block_on(seed::run(cli.args, &settings)),
        None => ExitCode::FAILURE,
    }
}
