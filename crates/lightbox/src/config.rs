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

/// The key that seals webhook signing secrets in the database.
#[derive(Args, Clone)]
pub struct WebhookKeyArgs {
    /// 32 random bytes (base64 or 64 hex digits, e.g. `openssl rand -base64 32`)
    /// that seal webhook signing secrets in the database. Needed to create or
    /// rotate endpoints and to deliver events; the same on every replica.
    #[arg(long, env = "LIGHTBOX_WEBHOOK_SECRET_KEY", hide_env_values = true)]
    pub webhook_secret_key: Option<String>,
}

impl std::fmt::Debug for WebhookKeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKeyArgs { webhook_secret_key: <redacted> }")
    }
}

impl WebhookKeyArgs {
    pub fn key(&self) -> anyhow::Result<Option<lightbox_webhooks::SecretKey>> {
        match self.webhook_secret_key.as_deref().filter(|k| !k.is_empty()) {
            None => Ok(None),
            Some(text) => Ok(Some(
                lightbox_webhooks::SecretKey::parse(text)
                    .map_err(|e| anyhow::anyhow!("--webhook-secret-key: {e}"))?,
            )),
        }
    }

    pub fn require(&self) -> anyhow::Result<lightbox_webhooks::SecretKey> {
        self.key()?.ok_or_else(|| {
            anyhow::anyhow!(
                "webhook signing secrets are sealed with --webhook-secret-key \
                 (LIGHTBOX_WEBHOOK_SECRET_KEY): set it, the same as the server's"
            )
        })
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
