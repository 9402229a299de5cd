//! `lightbox`: the server and its operator commands.

mod admin;
mod cli;
mod config;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lightbox",
    version,
    about = "Self-hosted medical-imaging records service"
)]
struct Cli {
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Admin(command) => admin::run(command).await,
        Command::Studies(args) => cli::studies::run(args).await,
        Command::Images(args) => cli::images::run(args).await,
    }
}
