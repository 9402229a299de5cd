//! Settings shared by every subcommand that opens the database.

use clap::{Args, ValueEnum};
use lightbox_store::{Store, StoreOptions};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Where the embedded database (and, later, blobs) live.
    #[arg(long, env = "LIGHTBOX_DATA_DIR", default_value = "lightbox-data")]
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite file.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Database connections per process.
    #[arg(long, env = "LIGHTBOX_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
}

impl StoreArgs {
    pub async fn open(&self) -> anyhow::Result<Store> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create data directory {}: {e}",
                self.data_dir.display()
            )
        })?;
        let options = StoreOptions {
            max_connections: self.db_max_connections,
            ..StoreOptions::default()
        };
        let store = Store::open(
            self.database_url.as_deref(),
            &self.data_dir.join("lightbox.db"),
            &options,
        )
        .await?;
        Ok(store)
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr, so stdout stays free for command output.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIGHTBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
