// `sqlx::migrate!` embeds the migration files at compile time, but cargo does
// not know the crate reads them: without this, an incremental build after a
// migration is added or edited keeps the old set (as `sqlx migrate build-script`
// would write).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
