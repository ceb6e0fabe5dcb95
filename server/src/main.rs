//! The `parallax` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use parallax_server::config::{Cli, Command};
use parallax_server::{Source, convert_command};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match cli.command {
        // What an operator's commands answer is theirs alone on stdout (scripts read `--json`
        // from it); their log, e.g. Postgres' notices, goes to stderr.
        Command::Account(_) | Command::Host(_) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
        _ => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    let result = match cli.command {
        Command::Serve(args) => {
            parallax_server::serve(*args, parallax_server::shutdown_signal()).await
        }
        Command::Render(args) => {
            match tokio::task::spawn_blocking(move || parallax_host::render_file(&args)).await {
                Ok(result) => result,
                Err(e) => Err(anyhow::anyhow!("the render thread failed: {e}")),
            }
        }
        Command::RenderHost(args) => {
            let stop = CancellationToken::new();
            let shutdown = parallax_server::shutdown_signal();
            tokio::spawn({
                let stop = stop.clone();
                async move {
                    shutdown.await;
                    stop.cancel();
                }
            });
            match args.try_into() {
                Ok(config) => parallax_host::run(config, stop).await,
                Err(e) => Err(e),
            }
        }
        Command::Convert(args) => {
            let limits = args.conversion;
            let source = match (args.file, args.sample) {
                (Some(file), _) => Source::File {
                    folder: args.folder,
                    file,
                },
                // clap requires one of the two.
                (None, id) => Source::Sample {
                    folder: args.folder,
                    id: parallax_core::ModelId::new(id.unwrap_or_default()),
                },
            };
            return ExitCode::from(convert_command(source, &limits).await);
        }
        Command::Openapi => serde_json::to_string_pretty(&parallax_server::openapi_document())
            .map(|document| println!("{document}"))
            .map_err(anyhow::Error::from),
        Command::Host(command) => parallax_server::host_command(command)
            .await
            .map(|answer| println!("{answer}")),
        Command::Account(command) => parallax_server::account_command(command)
            .await
            .map(|answer| println!("{answer}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // On stderr, whatever the log does: `--json` answers keep stdout to themselves.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
