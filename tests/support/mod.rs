//! Shared by the integration tests: a fresh Postgres database per test (a test that needs
//! Postgres fails loudly when it is not there, saying how to start it), the binary run as a
//! user runs it, and (`engines`) what the engines' property tests feed them.

#![allow(dead_code)]

pub mod engines;
pub mod http;
pub mod kafka;

use tokio_postgres::NoTls;

/// `slaflow ARGS` in the crate's directory: exit code, stdout, stderr.
pub fn slaflow(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The admin connection tests create their databases with (SLAFLOW_TEST_POSTGRES overrides).
pub fn admin_url() -> String {
    std::env::var("SLAFLOW_TEST_POSTGRES").unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=postgres".into())
}

/// A database made for one test, dropped by `drop_db` (left behind if the test fails, for a look).
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates `slaflow_t_<name>_<pid>` afresh.
    pub async fn create(name: &str) -> TestDb {
        let admin = admin_url();
        let (client, connection) = tokio_postgres::connect(&admin, NoTls).await.unwrap_or_else(|e| {
            panic!(
                "Postgres is not reachable at `{admin}` ({e}). Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
                 or point SLAFLOW_TEST_POSTGRES at one."
            )
        });
        tokio::spawn(connection);
        let db = format!("slaflow_t_{name}_{}", std::process::id());
        // Two statements: DROP/CREATE DATABASE cannot share an implicit transaction.
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .unwrap();
        client.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
        let url = admin.replace("dbname=postgres", &format!("dbname={db}"));
        TestDb { name: db, url }
    }

    /// Drops the database.
    pub async fn drop_db(self) {
        let (client, connection) = tokio_postgres::connect(&admin_url(), NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }

    /// A plain client on the test database.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }
}

/// One integer from a query.
pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// How many migrations a store of `kind` (`postgres` or `sqlite`) has: the files in its
/// directory, counted without slaflow's code.
pub fn migration_count(kind: &str) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(kind);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count()
}

/// The service tests replay recordings of the past through the live paths: a deliberate
/// backfill, judged by the events' own times (no `max_future`, no re-timing of old firing
/// alerts to their receive time), as `replay` judges the same recording.
pub const BACKFILL: &str = "[decoders]\nbackfill = true\n";
