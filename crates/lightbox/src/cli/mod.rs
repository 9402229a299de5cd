//! Operator verbs that talk to a running server over HTTP through
//! `lightbox-client` (unlike `admin`, which opens the database).

pub mod images;
pub mod studies;

use clap::Args;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use lightbox_client::Client;
use std::time::Duration;

/// Where the server is and how to print; credentials come from the
/// environment only, so they stay out of shell history and `ps`.
#[derive(Args, Debug, Clone)]
pub struct Remote {
    /// Base URL of the Lightbox server.
    #[arg(
        long,
        env = "LIGHTBOX_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds one request may take.
    #[arg(
        long,
        env = "LIGHTBOX_TIMEOUT_SECS",
        default_value_t = 60,
        global = true
    )]
    pub timeout_secs: u64,
}

fn env_secret(name: &str, what: &str) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => anyhow::bail!("set {name} to {what}"),
    }
}

impl Remote {
    fn builder(&self) -> lightbox_client::ClientBuilder {
        Client::builder(&self.url).timeout(Duration::from_secs(self.timeout_secs.max(1)))
    }

    /// A client for the Viewer API (`LIGHTBOX_API_KEY`).
    pub fn viewer(&self) -> anyhow::Result<Client> {
        let key = env_secret("LIGHTBOX_API_KEY", "a Viewer API key (lbk_…)")?;
        Ok(self.builder().api_key(key).build()?)
    }

    /// A client for the Images API (`LIGHTBOX_CLIENT_ID`, `LIGHTBOX_CLIENT_SECRET`).
    pub fn images(&self) -> anyhow::Result<Client> {
        let id = env_secret("LIGHTBOX_CLIENT_ID", "the OAuth client id (oac_…)")?;
        let secret = env_secret("LIGHTBOX_CLIENT_SECRET", "the OAuth client secret")?;
        Ok(self.builder().client_credentials(id, secret).build()?)
    }
}

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// A two-column FIELD / VALUE table for one record.
pub fn record_table(rows: Vec<(&str, String)>) -> Table {
    let mut t = table(&["FIELD", "VALUE"]);
    for (k, v) in rows {
        t.add_row(vec![k.to_owned(), v]);
    }
    t
}

pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}
