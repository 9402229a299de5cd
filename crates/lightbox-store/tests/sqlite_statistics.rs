//! SQLite statistics stay complete when a migration adds an index: a table
//! that was analyzed gets the new index analyzed on the next start.

use lightbox_store::{Store, StoreOptions};
use sqlx::{Connection, SqliteConnection};

async fn analyzed(conn: &mut SqliteConnection, index: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sqlite_stat1 WHERE idx = $1")
        .bind(index)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Opens the store on `path` (migrating it) and closes it again, as a start would.
async fn start(path: &std::path::Path) {
    Store::open_sqlite(path, &StoreOptions::default())
        .await
        .unwrap()
        .close()
        .await;
}

#[tokio::test]
async fn a_new_index_of_an_analyzed_table_is_analyzed_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lightbox.db");
    let url = format!("sqlite://{}", path.display());
    start(&path).await;

    // An operator analyzed the database; then an upgrade adds an index,
    // which has no statistics of its own.
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO organizations (id, name, created_at) VALUES ('o', 'O', 0); \
         INSERT INTO studies (org_id, id, study_instance_uid, description, description_search, \
             severity, viewer_status, created_at, updated_at) \
         VALUES ('o', 's', '1.2.3', 'CT', 'ct', 'normal', 'incomplete', 0, 0); \
         ANALYZE; \
         CREATE INDEX studies_by_test ON studies (org_id, severity, created_at); \
         DELETE FROM sqlite_stat1 WHERE idx = 'studies_by_assignee_severity';",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(analyzed(&mut conn, "studies_by_test").await, 0);
    conn.close().await.unwrap();

    start(&path).await;
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    for index in ["studies_by_test", "studies_by_assignee_severity"] {
        assert_eq!(analyzed(&mut conn, index).await, 1, "{index}");
    }
}
