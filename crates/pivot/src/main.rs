use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = pivot::cli::Cli::parse();
    pivot::cli::init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(pivot::cli::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(pivot::cli::EXIT_FAILURE)
        }
    }
}
