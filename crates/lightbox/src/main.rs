//! `lightbox`: the server and its operator commands.

mod admin;
mod cli;
mod config;
mod config_file;
mod enrich;
mod serve;
mod webhook_admin;

/// jemalloc, also in place of libc's malloc (SQLite allocates through it):
/// under load glibc's malloc and free took a quarter of the server's CPU.
#[cfg(not(windows))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "lightbox",
    version,
    about = "Self-hosted medical-imaging records service"
)]
struct Cli {
    /// A TOML file of settings (the flags' names: `listen = "0.0.0.0:8080"`).
    /// Precedence: flags > environment > this file > defaults.
    #[arg(long, global = true, env = "LIGHTBOX_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(serve::ServeArgs),
    /// Operator tasks against the database (safe while the server runs).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Viewer studies on a running server (LIGHTBOX_URL, LIGHTBOX_API_KEY).
    Studies(cli::studies::StudiesArgs),
    /// Images on a running server (LIGHTBOX_URL, LIGHTBOX_CLIENT_ID, LIGHTBOX_CLIENT_SECRET).
    Images(cli::images::ImagesArgs),
    /// The effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the settings `serve` would use, secrets redacted, with where each came from.
    Show(config_file::ShowArgs),
}

fn main() -> anyhow::Result<()> {
    // The file fills in the environment, so it must run before any thread starts.
    let loaded = config_file::load(&Cli::command())?;
    // Built again: clap reads each flag's environment variable when the command is built.
    let command = Cli::command();
    let matches = command.clone().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            match cli.command {
                Command::Serve(args) => serve::run(args).await,
                Command::Admin(command) => admin::run(command).await,
                Command::Studies(args) => cli::studies::run(args).await,
                Command::Images(args) => cli::images::run(args).await,
                Command::Config(ConfigCommand::Show(args)) => {
                    let (_, config) = matches.subcommand().expect("a subcommand");
                    let (_, show) = config.subcommand().expect("config show");
                    config_file::show(&args, show, &command, &loaded);
                    Ok(())
                }
            }
        })
}
