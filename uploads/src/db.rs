//! The Postgres pool and the embedded migrations.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseConfig;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects and applies pending migrations. sqlx holds a Postgres advisory lock while migrating,
/// so api and worker starting at the same moment apply each migration once.
pub async fn connect_and_migrate(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let url = config.url()?;
    let options = PgConnectOptions::from_str(url.expose())
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a Postgres URL: {e}"))?
        .options([("statement_timeout", format!("{}ms", config.database_statement_timeout.as_millis()))]);
    let pool = PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(config.database_acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to DATABASE_URL: {e}"))?;
    MIGRATOR.run(&pool).await.map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
    Ok(pool)
}
