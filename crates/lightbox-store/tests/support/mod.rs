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
