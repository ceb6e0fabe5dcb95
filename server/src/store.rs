//! The SQLite store: one file under the data dir, in WAL mode, schema from `migrations/`.
//!
//! Queries use `$n` placeholders and standard upserts so they stay portable to Postgres.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use parallax_core::{ChangeNumber, ModelId, ModelSummary};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

pub type StoreResult<T> = Result<T, sqlx::Error>;

/// Where a catalog entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// Built by Parallax itself at start-up.
    Sample,
}

impl ModelSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sample => "sample",
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Adds `model` to the catalog, or refreshes its name and size if it is there already.
    pub async fn upsert_model(&self, model: &ModelSummary, source: ModelSource) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO models (id, name, triangles, source) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, triangles = excluded.triangles",
        )
        .bind(model.id.as_str())
        .bind(&model.name)
        .bind(i64::try_from(model.triangles).unwrap_or(i64::MAX))
        .bind(source.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The catalog, in the order models were added.
    pub async fn models(&self) -> StoreResult<Vec<ModelSummary>> {
        let rows = sqlx::query("SELECT id, name, triangles FROM models ORDER BY created_at, rowid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ModelSummary {
                    id: ModelId::new(row.try_get::<String, _>("id")?),
                    name: row.try_get("name")?,
                    triangles: row.try_get::<i64, _>("triangles")?.max(0) as u64,
                })
            })
            .collect()
    }

    /// What `space` showed when it was last changed.
    pub async fn selection(&self, space: &str) -> StoreResult<Option<(ModelId, ChangeNumber)>> {
        let row =
            sqlx::query("SELECT model_id, change_number FROM space_selections WHERE space = $1")
                .bind(space)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            Ok((
                ModelId::new(row.try_get::<String, _>("model_id")?),
                ChangeNumber(row.try_get::<i64, _>("change_number")?.max(0) as u64),
            ))
        })
        .transpose()
    }

    pub async fn save_selection(
        &self,
        space: &str,
        model: &ModelId,
        change: ChangeNumber,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO space_selections (space, model_id, change_number) VALUES ($1, $2, $3)
             ON CONFLICT (space) DO UPDATE SET model_id = excluded.model_id,
                 change_number = excluded.change_number, updated_at = CURRENT_TIMESTAMP",
        )
        .bind(space)
        .bind(model.as_str())
        .bind(i64::try_from(change.0).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes the pool, checkpointing the WAL so the file is complete on its own.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
