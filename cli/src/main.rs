//! The `backstop` binary; everything lives in the library so tests can reuse it.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = backstop::args::Args::parse();
    backstop::main_with(args)
}
