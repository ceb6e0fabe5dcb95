//! `sqlx::migrate!` reads the migration folders when it compiles: a new migration must rebuild
//! the store, which Cargo does not know without this.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
