use crate::{Store, StoreError};
use sqlx::Row;

impl Store {
    /// Returns the setting `key`, first storing `make()` if it has none. All
    /// replicas share the database, so they all read the same value.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(make())
        .execute(&self.write)
        .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.write)
            .await?;
        Ok(row.try_get("value")?)
    }
}
