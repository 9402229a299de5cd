//! A throw-away PostgreSQL database for the store's tests, on the server at
//! `LIGHTBOX_TEST_DATABASE_URL` (default: the local one, trust auth).

use lightbox_domain::Timestamp;
use lightbox_store::{Store, StoreOptions};
use sqlx::{Connection, Executor, PgConnection};

pub struct ThrowawayPostgres {
    admin: PgConnection,
    name: String,
    /// The new database's URL.
    pub url: String,
}

impl ThrowawayPostgres {
    /// Creates a database named after `purpose`, this process and the time.
    pub async fn create(purpose: &str) -> ThrowawayPostgres {
        let admin_url = std::env::var("LIGHTBOX_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!(
            "lightbox_{purpose}_{}_{:x}",
            std::process::id(),
            Timestamp::now().millis()
        );
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL at LIGHTBOX_TEST_DATABASE_URL is required");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap();
        let url = format!("{base}/{name}");
        ThrowawayPostgres { admin, name, url }
    }

    /// The store on the new database (migrated).
    pub async fn store(&self) -> Store {
        Store::open_postgres(&self.url, &StoreOptions::default())
            .await
            .unwrap()
    }

    /// Drops the database (after the store is closed).
    pub async fn drop_database(mut self) {
        self.admin
            .execute(format!("DROP DATABASE {} WITH (FORCE)", self.name).as_str())
            .await
            .unwrap();
    }
}

/// A folder under `dir` holding `backend`'s migrations numbered below `version`
/// (e.g. "0016"), to build a database as an older release left it.
#[allow(dead_code)] // not every test binary that includes this module upgrades
pub fn migrations_before(
    backend: &str,
    version: &str,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let before = dir.join(format!("{backend}-before-{version}"));
    std::fs::create_dir(&before).unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(&all).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < version {
            std::fs::copy(entry.path(), before.join(&name)).unwrap();
        }
    }
    before
}
