//! The store: where the coordinator keeps what must outlive it. One interface, two databases,
//! through sqlx's `Any` driver: SQLite, one file under the data dir in WAL mode (the default),
//! or Postgres (`--database-url postgres://…`). Each has its own migrations
//! (`migrations/sqlite`, `migrations/postgres`) that end in the same tables and columns, so every
//! query here is written once: `$n` placeholders, standard upserts, and a `rowid` column in
//! Postgres where SQLite's implicit one orders rows. `tests` below run against both.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use parallax_core::pool::HostId;
use parallax_core::session::{RenderSession, SessionId, SessionKey, SessionSize};
use parallax_core::time::Timestamp;
use parallax_core::{ChangeNumber, ModelId, ModelSummary};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor, Row};

pub type StoreResult<T> = Result<T, sqlx::Error>;

/// Where a catalog entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// Built by Parallax itself at start-up.
    Sample,
    /// Uploaded by an account.
    Upload,
}

impl ModelSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sample => "sample",
            Self::Upload => "upload",
        }
    }
}

/// Where a model's conversion is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    /// Stored, its conversion still running (or to be run again after a restart).
    Converting,
    /// Converted: it can be shown.
    Ready,
    /// Its conversion failed, for this reason; it stays listed until it is deleted.
    Failed(String),
}

impl ModelStatus {
    /// `Converting`, `Ready` or `Failed`, as the API says it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Converting => "Converting",
            Self::Ready => "Ready",
            Self::Failed(_) => "Failed",
        }
    }

    fn column(&self) -> &'static str {
        match self {
            Self::Converting => "converting",
            Self::Ready => "ready",
            Self::Failed(_) => "failed",
        }
    }

    fn failure(&self) -> Option<&str> {
        match self {
            Self::Failed(reason) => Some(reason),
            _ => None,
        }
    }
}

/// A catalog entry with what the catalog API reports beyond the summary.
#[derive(Debug, Clone)]
pub struct ModelRecord {
    pub summary: ModelSummary,
    pub source: ModelSource,
    /// The uploaded file's name (the main file of a multi-file glTF).
    pub file_name: Option<String>,
    pub format: Option<String>,
    pub size_bytes: Option<u64>,
    /// The account an upload belongs to; `None` for the samples everyone shares.
    pub uploaded_by: Option<String>,
    /// Which stored files an upload is: the folder `<data dir>/models/<content_id>/`, shared by
    /// every account's upload of the same bytes.
    pub content_id: Option<String>,
    pub status: ModelStatus,
}

impl ModelRecord {
    /// Whether `account` may see and use this model: a sample, or one of its own uploads.
    pub fn visible_to(&self, account: &str) -> bool {
        match self.source {
            ModelSource::Sample => true,
            ModelSource::Upload => self.uploaded_by.as_deref() == Some(account),
        }
    }
}

/// A conversion as stored ([`crate::catalog::conversions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConversion {
    pub account: String,
    pub id: String,
    /// The settings' JSON, as created.
    pub settings: String,
    pub status: String,
    /// `(code, message)` of a failed conversion.
    pub error: Option<(String, String)>,
    pub model: Option<ModelId>,
    pub output_uri: Option<String>,
    pub created_at: Timestamp,
}

/// A space as stored: the body (everything, members included) and, if newer, its properties.
#[derive(Debug)]
pub struct StoredSpace {
    pub body: String,
    pub properties: Option<String>,
    pub change: ChangeNumber,
    /// The sequence number of the space's last logged event (replicas only; 0 otherwise).
    pub seq: u64,
    /// Bumped by each replica's write (replicas only; 0 otherwise).
    pub version: u64,
}

/// A space row as a replica locks it.
#[derive(Debug)]
pub enum LockedSpace {
    /// There is no such space.
    Gone,
    /// At the version the caller has: its body was not read.
    Unchanged { seq: u64 },
    /// Changed since (or the caller had none): the whole row.
    Read(StoredSpace),
}

/// One event of a space's log: its sequence number within the space, the change number it was
/// written at and the event's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub seq: u64,
    pub change: u64,
    pub event: String,
}

/// A space written by a replica, with the events of the change in the same transaction.
pub struct SpaceWrite<'a> {
    pub name: &'a str,
    pub body: &'a str,
    pub change: ChangeNumber,
    /// The sequence number of the last event after this write.
    pub seq: u64,
    /// When the space's next timeout is due, for the sweepers.
    pub poll_at: Option<Timestamp>,
    /// The row's version after this write.
    pub version: u64,
    /// A new space: inserted, and refused if one of the name exists.
    pub new: bool,
    pub events: &'a [LoggedEvent],
}

/// Which replica holds a connected member's socket, and which of its connections it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceHolder {
    pub member: String,
    pub replica: String,
    pub connection: u64,
}

/// A transaction on the store's database.
pub type Transaction = sqlx::Transaction<'static, sqlx::Any>;

/// Events a space's log keeps for resumes; older ones get a snapshot.
pub const SPACE_LOG_KEPT: u64 = 1024;

fn db_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Which database a [`Store`] keeps its rows in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        // The `Any` driver takes a URL, whose path is percent-decoded again: a `%` in the file's
        // path must stay a `%` (sqlx escapes spaces, `#` and `?`, not `%`).
        let escaped = match path.to_str() {
            Some(text) => std::path::PathBuf::from(text.replace('%', "%25")),
            None => path.to_path_buf(),
        };
        let url = SqliteConnectOptions::from_str("sqlite://")?
            .filename(escaped)
            .create_if_missing(true)
            .to_url_lossy();
        Self::connect(url.as_str()).await
    }

    /// Connects to the database at `url` (`postgres://…`, or `sqlite://…`) and applies pending
    /// migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url)?;
        let backend = match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Backend::Sqlite,
            Some("postgres" | "postgresql") => Backend::Postgres,
            _ => {
                return Err(sqlx::Error::Configuration(
                    format!("the database URL must be postgres://… or sqlite://…, not {url}")
                        .into(),
                ));
            }
        };
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|connection, _| {
                        Box::pin(async move {
                            // WAL: readers never wait for the writer; NORMAL is durable in WAL mode
                            // but for the last commits before a power cut.
                            connection
                                .execute(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                                )
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?
            }
        };
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether [`Store::close`] was called: the coordinator is stopping.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
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

    /// One catalog entry.
    pub async fn model(&self, id: &ModelId) -> StoreResult<Option<ModelRecord>> {
        let row = sqlx::query(
            "SELECT id, name, triangles, source, file_name, format, size_bytes, uploaded_by,
                    content_id, status, failure
             FROM models WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// The catalog as `account` sees it: the samples and its own uploads, in the order they
    /// were added.
    pub async fn model_records(&self, account: &str) -> StoreResult<Vec<ModelRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, triangles, source, file_name, format, size_bytes, uploaded_by,
                    content_id, status, failure
             FROM models WHERE source = 'sample' OR uploaded_by = $1
             ORDER BY created_at, rowid",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Every upload whose conversion has not ended (a stop interrupted it).
    pub async fn converting_models(&self) -> StoreResult<Vec<ModelRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, triangles, source, file_name, format, size_bytes, uploaded_by,
                    content_id, status, failure
             FROM models WHERE status = 'converting' ORDER BY created_at, rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Records how upload `id`'s conversion ended: `triangles` when it is ready.
    pub async fn finish_conversion(
        &self,
        id: &ModelId,
        status: &ModelStatus,
        triangles: u64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE models SET status = $2, failure = $3, triangles = $4
             WHERE id = $1 AND source = 'upload'",
        )
        .bind(id.as_str())
        .bind(status.column())
        .bind(status.failure())
        .bind(i64::try_from(triangles).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds `conversion` unless the account has one of that id; returns the one stored.
    pub async fn insert_conversion(
        &self,
        conversion: &StoredConversion,
    ) -> StoreResult<(bool, StoredConversion)> {
        let done = sqlx::query(
            "INSERT INTO conversions (account_id, id, settings, status, created_at_ms)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, id) DO NOTHING",
        )
        .bind(&conversion.account)
        .bind(&conversion.id)
        .bind(&conversion.settings)
        .bind(&conversion.status)
        .bind(conversion.created_at.as_millis() as i64)
        .execute(&self.pool)
        .await?;
        let stored = self
            .conversion(&conversion.account, &conversion.id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        Ok((done.rows_affected() == 1, stored))
    }

    pub async fn conversion(
        &self,
        account: &str,
        id: &str,
    ) -> StoreResult<Option<StoredConversion>> {
        let row = sqlx::query(&format!(
            "{CONVERSION_COLUMNS} WHERE account_id = $1 AND id = $2"
        ))
        .bind(account)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(conversion_from_row).transpose()
    }

    /// An account's conversions, oldest first: `limit` of them after the first `skip`.
    pub async fn conversions(
        &self,
        account: &str,
        skip: usize,
        limit: usize,
    ) -> StoreResult<Vec<StoredConversion>> {
        let rows = sqlx::query(&format!(
            "{CONVERSION_COLUMNS} WHERE account_id = $1 ORDER BY created_at_ms, id
             LIMIT $2 OFFSET $3"
        ))
        .bind(account)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(skip).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conversion_from_row).collect()
    }

    /// Conversions that had not ended when the coordinator stopped.
    pub async fn unfinished_conversions(&self) -> StoreResult<Vec<StoredConversion>> {
        let rows = sqlx::query(&format!(
            "{CONVERSION_COLUMNS} WHERE status IN ('NotStarted', 'Running')
             ORDER BY created_at_ms"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conversion_from_row).collect()
    }

    /// Records where conversion `account`/`id` is: its status, and what it made or why not.
    pub async fn update_conversion(&self, conversion: &StoredConversion) -> StoreResult<()> {
        let (code, message) = conversion.error.clone().unzip();
        sqlx::query(
            "UPDATE conversions SET status = $3, error_code = $4, error_message = $5,
                 model_id = $6, output_uri = $7
             WHERE account_id = $1 AND id = $2",
        )
        .bind(&conversion.account)
        .bind(&conversion.id)
        .bind(&conversion.status)
        .bind(code)
        .bind(message)
        .bind(conversion.model.as_ref().map(ModelId::as_str))
        .bind(&conversion.output_uri)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What `account` holds against its quotas: the bytes of its uploads, and its conversions
    /// that have not ended (ARR conversions queued or running, and uploads still converting that
    /// no such conversion made).
    pub async fn account_usage(&self, account: &str) -> StoreResult<(u64, usize)> {
        let (bytes,): (Option<i64>,) = sqlx::query_as(
            "SELECT CAST(SUM(size_bytes) AS BIGINT) FROM models
             WHERE source = 'upload' AND uploaded_by = $1",
        )
        .bind(account)
        .fetch_one(&self.pool)
        .await?;
        let (converting,): (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM conversions
                     WHERE account_id = $1 AND status IN ('NotStarted', 'Running'))
                  + (SELECT COUNT(*) FROM models
                     WHERE uploaded_by = $1 AND status = 'converting'
                       AND id NOT IN (SELECT model_id FROM conversions
                                      WHERE account_id = $1 AND model_id IS NOT NULL
                                        AND status IN ('NotStarted', 'Running')))",
        )
        .bind(account)
        .fetch_one(&self.pool)
        .await?;
        Ok((
            u64::try_from(bytes.unwrap_or(0)).unwrap_or(0),
            usize::try_from(converting).unwrap_or(0),
        ))
    }

    /// Whether any upload (of any account) is still made of the files `content_id`.
    pub async fn content_in_use(&self, content_id: &str) -> StoreResult<bool> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT id FROM models WHERE content_id = $1 LIMIT 1")
                .bind(content_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Adds an uploaded model. Returns false if one with the same id is already stored.
    pub async fn insert_upload(&self, record: &ModelRecord) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO models
                (id, name, triangles, source, file_name, format, size_bytes, uploaded_by, content_id,
                 status, failure)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
        )
        .bind(record.summary.id.as_str())
        .bind(&record.summary.name)
        .bind(i64::try_from(record.summary.triangles).unwrap_or(i64::MAX))
        .bind(record.source.as_str())
        .bind(&record.file_name)
        .bind(&record.format)
        .bind(record.size_bytes.map(|b| b as i64))
        .bind(&record.uploaded_by)
        .bind(&record.content_id)
        .bind(record.status.column())
        .bind(record.status.failure())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes an uploaded model; false if there was none. Refuses (with an error from the
    /// database) while a space still shows it.
    pub async fn delete_upload(&self, id: &ModelId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM models WHERE id = $1 AND source = 'upload'")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Space templates: `(name, constants JSON)`, by name.
    pub async fn space_templates(&self) -> StoreResult<Vec<(String, String)>> {
        sqlx::query_as("SELECT name, constants FROM space_templates ORDER BY name")
            .fetch_all(&self.pool)
            .await
    }

    /// Every stored space: its JSON body, and its properties and change number if they were
    /// written after the body.
    pub async fn spaces(&self) -> StoreResult<Vec<StoredSpace>> {
        let rows: Vec<SpaceColumns> = sqlx::query_as(
            "SELECT s.body, p.properties, COALESCE(p.change_number, s.change_number), s.seq,
                 s.version
             FROM spaces s LEFT JOIN space_properties p ON p.space = s.name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(stored_space).collect())
    }

    /// Begins a transaction.
    pub async fn begin(&self) -> StoreResult<Transaction> {
        self.pool.begin().await
    }

    /// Space `name`, locked until `transaction` ends (Postgres: `FOR UPDATE`; SQLite's one
    /// writer needs no row lock); its body only if its version is not `known`.
    pub async fn lock_space(
        &self,
        transaction: &mut Transaction,
        name: &str,
        known: Option<u64>,
    ) -> StoreResult<LockedSpace> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let row: Option<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT version, seq FROM spaces WHERE name = $1{lock}"
        ))
        .bind(name)
        .fetch_optional(&mut **transaction)
        .await?;
        let Some((version, seq)) = row else {
            return Ok(LockedSpace::Gone);
        };
        if known == u64::try_from(version).ok() {
            return Ok(LockedSpace::Unchanged {
                seq: u64::try_from(seq).unwrap_or_default(),
            });
        }
        let row: Option<SpaceColumns> = sqlx::query_as(
            "SELECT s.body, p.properties, COALESCE(p.change_number, s.change_number), s.seq,
                 s.version
             FROM spaces s LEFT JOIN space_properties p ON p.space = s.name
             WHERE s.name = $1",
        )
        .bind(name)
        .fetch_optional(&mut **transaction)
        .await?;
        Ok(row.map_or(LockedSpace::Gone, |row| {
            LockedSpace::Read(stored_space(row))
        }))
    }

    /// Writes a space whole with the events of its change, in `transaction`; the log keeps the
    /// last [`SPACE_LOG_KEPT`] events. A new space whose name is taken fails (unique key).
    pub async fn write_space(
        &self,
        transaction: &mut Transaction,
        write: &SpaceWrite<'_>,
    ) -> StoreResult<()> {
        let query = if write.new {
            "INSERT INTO spaces (name, body, change_number, seq, poll_at_ms, version)
             VALUES ($1, $2, $3, $4, $5, $6)"
        } else {
            "UPDATE spaces SET body = $2, change_number = $3, seq = $4, poll_at_ms = $5,
                 version = $6, updated_at = CURRENT_TIMESTAMP WHERE name = $1"
        };
        sqlx::query(query)
            .bind(write.name)
            .bind(write.body)
            .bind(db_int(write.change.0))
            .bind(db_int(write.seq))
            .bind(write.poll_at.map(|at| db_int(at.as_millis())))
            .bind(db_int(write.version))
            .execute(&mut **transaction)
            .await?;
        sqlx::query("DELETE FROM space_properties WHERE space = $1")
            .bind(write.name)
            .execute(&mut **transaction)
            .await?;
        for event in write.events {
            sqlx::query(
                "INSERT INTO space_events (space, seq, change_number, event) VALUES ($1, $2, $3, $4)",
            )
            .bind(write.name)
            .bind(db_int(event.seq))
            .bind(db_int(event.change))
            .bind(&event.event)
            .execute(&mut **transaction)
            .await?;
        }
        // Trimmed every so often rather than on every write.
        if write.events.iter().any(|e| e.seq % 64 == 0) {
            sqlx::query("DELETE FROM space_events WHERE space = $1 AND seq <= $2")
                .bind(write.name)
                .bind(db_int(write.seq.saturating_sub(SPACE_LOG_KEPT)))
                .execute(&mut **transaction)
                .await?;
        }
        Ok(())
    }

    /// Who holds which member of space `name`, in `transaction`.
    pub async fn space_holders(
        &self,
        transaction: &mut Transaction,
        name: &str,
    ) -> StoreResult<Vec<SpaceHolder>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT member, replica, connection FROM space_holders WHERE space = $1",
        )
        .bind(name)
        .fetch_all(&mut **transaction)
        .await?;
        Ok(rows.into_iter().map(space_holder).collect())
    }

    /// Who holds which member, by space.
    pub async fn all_space_holders(&self) -> StoreResult<Vec<(String, SpaceHolder)>> {
        let rows: Vec<(String, String, String, i64)> =
            sqlx::query_as("SELECT space, member, replica, connection FROM space_holders")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(space, member, replica, connection)| {
                (space, space_holder((member, replica, connection)))
            })
            .collect())
    }

    /// The spaces where replica `replica` holds members.
    pub async fn spaces_held_by(&self, replica: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT space FROM space_holders WHERE replica = $1 ORDER BY space",
        )
        .bind(replica)
        .fetch_all(&self.pool)
        .await
    }

    /// Writes who holds members of space `name` now (`None`: nobody), in `transaction`; with
    /// `version`, the row's version too (a change that wrote no body).
    pub async fn write_holders(
        &self,
        transaction: &mut Transaction,
        name: &str,
        version: Option<u64>,
        held: &[(String, Option<SpaceHolder>)],
    ) -> StoreResult<()> {
        if let Some(version) = version {
            sqlx::query("UPDATE spaces SET version = $2 WHERE name = $1")
                .bind(name)
                .bind(db_int(version))
                .execute(&mut **transaction)
                .await?;
        }
        for (member, holder) in held {
            match holder {
                Some(holder) => {
                    sqlx::query(
                        "INSERT INTO space_holders (space, member, replica, connection)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (space, member) DO UPDATE SET replica = excluded.replica,
                             connection = excluded.connection",
                    )
                    .bind(name)
                    .bind(member)
                    .bind(&holder.replica)
                    .bind(db_int(holder.connection))
                    .execute(&mut **transaction)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM space_holders WHERE space = $1 AND member = $2")
                        .bind(name)
                        .bind(member)
                        .execute(&mut **transaction)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes space `name` (and its log) in `transaction`.
    pub async fn delete_space_in(
        &self,
        transaction: &mut Transaction,
        name: &str,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM spaces WHERE name = $1")
            .bind(name)
            .execute(&mut **transaction)
            .await?;
        Ok(())
    }

    /// The logged events of space `name` after `after` up to `through`, in order; fewer than
    /// asked for if the log no longer keeps them.
    pub async fn space_events(
        &self,
        name: &str,
        after: u64,
        through: u64,
    ) -> StoreResult<Vec<LoggedEvent>> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, change_number, event FROM space_events
             WHERE space = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
        )
        .bind(name)
        .bind(db_int(after))
        .bind(db_int(through))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, change, event)| LoggedEvent {
                seq: seq.max(0) as u64,
                change: change.max(0) as u64,
                event,
            })
            .collect())
    }

    /// The sequence number of each named space's last event.
    pub async fn space_seqs(&self) -> StoreResult<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT name, seq FROM spaces")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(name, seq)| (name, seq.max(0) as u64))
            .collect())
    }

    /// The spaces whose next timeout is due at `now`.
    pub async fn spaces_due(&self, now: Timestamp) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM spaces WHERE poll_at_ms <= $1 ORDER BY poll_at_ms")
            .bind(db_int(now.as_millis()))
            .fetch_all(&self.pool)
            .await
    }

    /// Replica `id` is alive at `now`. False if the table did not have it: its first call, or
    /// the others took it for dead meanwhile and forgot it.
    pub async fn replica_seen(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let now = db_int(now.as_millis());
        let updated = sqlx::query("UPDATE replicas SET seen_ms = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        if updated.rows_affected() > 0 {
            return Ok(true);
        }
        sqlx::query(
            "INSERT INTO replicas (id, started_ms, seen_ms) VALUES ($1, $2, $2)
             ON CONFLICT (id) DO UPDATE SET seen_ms = excluded.seen_ms",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(false)
    }

    /// The replicas not seen since `before`.
    pub async fn silent_replicas(&self, before: Timestamp) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM replicas WHERE seen_ms < $1 ORDER BY id")
            .bind(db_int(before.as_millis()))
            .fetch_all(&self.pool)
            .await
    }

    /// Forgets replica `id` (it stopped, or others cleaned up after it).
    pub async fn forget_replica(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Writes only a space's properties and change number (the members did not change).
    pub async fn update_space_properties(
        &self,
        name: &str,
        properties: &str,
        change: ChangeNumber,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO space_properties (space, properties, change_number) VALUES ($1, $2, $3)
             ON CONFLICT (space) DO UPDATE SET properties = excluded.properties,
                 change_number = excluded.change_number",
        )
        .bind(name)
        .bind(properties)
        .bind(i64::try_from(change.0).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes a space whole; its body holds the current properties, so a separate properties
    /// row (older now) goes in the same transaction.
    pub async fn upsert_space(
        &self,
        name: &str,
        body: &str,
        change: ChangeNumber,
    ) -> StoreResult<()> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO spaces (name, body, change_number) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET body = excluded.body,
                 change_number = excluded.change_number, updated_at = CURRENT_TIMESTAMP",
        )
        .bind(name)
        .bind(body)
        .bind(i64::try_from(change.0).unwrap_or(i64::MAX))
        .execute(&mut *transaction)
        .await?;
        sqlx::query("DELETE FROM space_properties WHERE space = $1")
            .bind(name)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await
    }

    pub async fn delete_space(&self, name: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM spaces WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds account `id` named `name` with the hash of its key.
    pub async fn insert_account(&self, id: &str, name: &str, key_hash: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO accounts (id, name, key_hash) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(key_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One account, revoked or not.
    pub async fn account(&self, id: &str) -> StoreResult<Option<AccountRecord>> {
        let row = sqlx::query(&format!("{ACCOUNT_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// Every account, revoked ones too, oldest first.
    pub async fn accounts(&self) -> StoreResult<Vec<AccountRecord>> {
        let rows = sqlx::query(&format!("{ACCOUNT_COLUMNS} ORDER BY created_at, rowid"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Replaces the key hash of account `id`, unless it is revoked; false if there is no such
    /// account to change.
    pub async fn set_account_key(
        &self,
        id: &str,
        key_hash: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET key_hash = $2, key_rotated_at_ms = $3
             WHERE id = $1 AND revoked_at_ms IS NULL",
        )
        .bind(id)
        .bind(key_hash)
        .bind(at.as_millis() as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes account `id` as of `at` (an account revoked before keeps its first instant);
    /// false if there is no such account.
    pub async fn revoke_account(&self, id: &str, at: Timestamp) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET revoked_at_ms = COALESCE(revoked_at_ms, $2) WHERE id = $1",
        )
        .bind(id)
        .bind(at.as_millis() as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The ids of every revoked account.
    pub async fn revoked_accounts(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM accounts WHERE revoked_at_ms IS NOT NULL")
            .fetch_all(&self.pool)
            .await
    }

    /// Refuses the token `jti` (signed out) until `expires`, when it would have run out anyway.
    pub async fn sign_out_token(&self, jti: &str, expires: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signed_out_tokens (jti, expires_at_ms) VALUES ($1, $2)
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires.as_millis() as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The ids of tokens signed out that have not run out by `now`; forgets those that have.
    pub async fn signed_out_tokens(&self, now: Timestamp) -> StoreResult<Vec<String>> {
        sqlx::query("DELETE FROM signed_out_tokens WHERE expires_at_ms <= $1")
            .bind(now.as_millis() as i64)
            .execute(&self.pool)
            .await?;
        sqlx::query_scalar("SELECT jti FROM signed_out_tokens")
            .fetch_all(&self.pool)
            .await
    }

    /// Adds render host `name`'s credential (the hash of its secret); false if the name is
    /// taken (revoked names stay taken).
    pub async fn insert_host_credential(
        &self,
        name: &str,
        secret_hash: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO host_credentials (name, secret_hash, created_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(secret_hash)
        .bind(at.as_millis() as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Binds the certificate name `certificate` to render host `host`, unless it has another
    /// already or another host has this one; true if `host` may have a certificate for it.
    pub async fn bind_certificate_name(&self, host: &str, certificate: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE host_credentials SET certificate_name = $2
             WHERE name = $1 AND (certificate_name IS NULL OR certificate_name = $2)
               AND NOT EXISTS (SELECT 1 FROM host_credentials
                               WHERE certificate_name = $2 AND name <> $1)",
        )
        .bind(host)
        .bind(certificate)
        .execute(&self.pool)
        .await;
        match done {
            Ok(done) => Ok(done.rows_affected() == 1),
            // Two hosts binding one name at once: the unique index turned the second away.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Render host `name`'s credential, revoked or not.
    pub async fn host_credential(&self, name: &str) -> StoreResult<Option<HostCredentialRecord>> {
        let row = sqlx::query(&format!("{HOST_CREDENTIAL_COLUMNS} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(host_credential_from_row).transpose()
    }

    /// Every render host credential, revoked ones too, by name.
    pub async fn host_credentials(&self) -> StoreResult<Vec<HostCredentialRecord>> {
        let rows = sqlx::query(&format!("{HOST_CREDENTIAL_COLUMNS} ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(host_credential_from_row).collect()
    }

    /// Revokes render host `name`'s credential as of `at`; false if there is no such host.
    pub async fn revoke_host_credential(&self, name: &str, at: Timestamp) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE host_credentials SET revoked_at_ms = COALESCE(revoked_at_ms, $2)
             WHERE name = $1",
        )
        .bind(name)
        .bind(at.as_millis() as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The names of every revoked render host.
    pub async fn revoked_host_credentials(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM host_credentials WHERE revoked_at_ms IS NOT NULL")
            .fetch_all(&self.pool)
            .await
    }

    /// The setting `name`; if it has none yet, stores `default` first. Concurrent first calls
    /// agree on one value.
    pub async fn setting_or_insert(&self, name: &str, default: &str) -> StoreResult<String> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(default)
        .execute(&self.pool)
        .await?;
        sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?
            .try_get("value")
    }

    /// Raises the setting `name` to `value` unless it is higher already, compared as text (give
    /// numbers zero-padded to one width); made if it is not there.
    pub async fn raise_setting(&self, name: &str, value: &str) -> StoreResult<()> {
        let higher = match self.backend {
            Backend::Sqlite => "max(settings.value, excluded.value)",
            Backend::Postgres => "GREATEST(settings.value, EXCLUDED.value)",
        };
        sqlx::query(&format!(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = {higher}"
        ))
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The highest number the pool named a host of each size with (by [`SessionSize::index`]),
    /// as [`Store::named_host`] kept it.
    pub async fn named_hosts(&self) -> StoreResult<[u64; 2]> {
        let mut named = [0; 2];
        for size in SessionSize::ALL {
            let value = self
                .setting_or_insert(&named_setting(size), &format!("{:020}", 0))
                .await?;
            named[size.index()] = value.parse().unwrap_or(0);
        }
        Ok(named)
    }

    /// Keeps that the pool named a host `number` of `size`.
    pub async fn named_host(&self, size: SessionSize, number: u64) -> StoreResult<()> {
        self.raise_setting(&named_setting(size), &format!("{number:020}"))
            .await
    }

    /// Every stored render session.
    pub async fn render_sessions(&self) -> StoreResult<Vec<RenderSession>> {
        let rows = sqlx::query(SESSION_COLUMNS).fetch_all(&self.pool).await?;
        rows.iter().map(session_from_row).collect()
    }

    /// One render session.
    pub async fn render_session(&self, key: &SessionKey) -> StoreResult<Option<RenderSession>> {
        render_session(&self.pool, key).await
    }

    /// One render session, in `transaction`.
    pub async fn render_session_in(
        &self,
        transaction: &mut Transaction,
        key: &SessionKey,
    ) -> StoreResult<Option<RenderSession>> {
        render_session(&mut **transaction, key).await
    }

    /// `account`'s render sessions (every account's with `None`).
    pub async fn account_render_sessions(
        &self,
        account: Option<&str>,
    ) -> StoreResult<Vec<RenderSession>> {
        let rows = sqlx::query(&format!(
            "{SESSION_COLUMNS} WHERE $1 IS NULL OR account_id = $1"
        ))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// The Starting and Ready render sessions, in `transaction`.
    pub async fn active_render_sessions(
        &self,
        transaction: &mut Transaction,
    ) -> StoreResult<Vec<RenderSession>> {
        let rows = sqlx::query(&format!(
            "{SESSION_COLUMNS} WHERE status IN ('Starting', 'Ready')"
        ))
        .fetch_all(&mut **transaction)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// The render pool replicas share, locked until `transaction` ends (Postgres: `FOR
    /// UPDATE`; SQLite has one writer); `None` until a replica first stored it.
    pub async fn lock_render_pool(
        &self,
        transaction: &mut Transaction,
    ) -> StoreResult<Option<String>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        sqlx::query_scalar(&format!("SELECT state FROM render_pool WHERE id = 1{lock}"))
            .fetch_one(&mut **transaction)
            .await
    }

    /// The shared render pool as last committed, without locking it.
    pub async fn render_pool(&self) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT state FROM render_pool WHERE id = 1")
            .fetch_one(&self.pool)
            .await
    }

    pub async fn write_render_pool(
        &self,
        transaction: &mut Transaction,
        state: &str,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE render_pool SET state = $1 WHERE id = 1")
            .bind(state)
            .execute(&mut **transaction)
            .await?;
        Ok(())
    }

    /// Forgets the shared render pool: a single coordinator serves the sessions now, and the
    /// next replicas take them up from the sessions, not from a pool of before.
    pub async fn forget_render_pool(&self) -> StoreResult<()> {
        sqlx::query("UPDATE render_pool SET state = NULL WHERE id = 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes the render sessions that ended before `before`; how many.
    pub async fn purge_render_sessions(&self, before: Timestamp) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM render_sessions WHERE ended_at_ms < $1")
            .bind(db_int(before.as_millis()))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records (or moves) the link of a render host to replica `link.replica`, in `transaction`.
    pub async fn link_render_host(
        &self,
        transaction: &mut Transaction,
        link: &StoredHostLink,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO render_hosts (id, replica, size, endpoint, adapter, pid, device, seen_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET replica = excluded.replica, size = excluded.size,
                 endpoint = excluded.endpoint, adapter = excluded.adapter, pid = excluded.pid,
                 device = excluded.device, seen_ms = excluded.seen_ms",
        )
        .bind(&link.id)
        .bind(&link.replica)
        .bind(link.size.as_str())
        .bind(&link.endpoint)
        .bind(&link.adapter)
        .bind(i64::from(link.pid))
        .bind(i64::from(link.device))
        .bind(db_int(link.seen.as_millis()))
        .execute(&mut **transaction)
        .await?;
        Ok(())
    }

    /// Forgets host `id`'s link, if `replica` still holds it (else another replica took it
    /// over meanwhile); whether it did.
    pub async fn unlink_render_host(
        &self,
        transaction: &mut Transaction,
        id: &str,
        replica: Option<&str>,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM render_hosts WHERE id = $1 AND ($2 IS NULL OR replica = $2)")
                .bind(id)
                .bind(replica)
                .execute(&mut **transaction)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every host link, by id.
    pub async fn render_hosts(&self) -> StoreResult<Vec<StoredHostLink>> {
        let rows: Vec<HostLinkColumns> =
            sqlx::query_as(&format!("{HOST_LINK_COLUMNS} ORDER BY id"))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(host_link).collect()
    }

    /// Host `id`'s link.
    pub async fn render_host(&self, id: &str) -> StoreResult<Option<StoredHostLink>> {
        render_host(&self.pool, id).await
    }

    /// Host `id`'s link, in `transaction`.
    pub async fn render_host_in(
        &self,
        transaction: &mut Transaction,
        id: &str,
    ) -> StoreResult<Option<StoredHostLink>> {
        render_host(&mut **transaction, id).await
    }

    /// Replica `replica` vouches for the hosts linked to it at `now`.
    pub async fn touch_render_hosts(&self, replica: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE render_hosts SET seen_ms = $2 WHERE replica = $1")
            .bind(replica)
            .bind(db_int(now.as_millis()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether a device holds host `id`'s render connection, as its last heartbeat said.
    pub async fn set_host_device(&self, id: &str, device: bool) -> StoreResult<()> {
        sqlx::query("UPDATE render_hosts SET device = $2 WHERE id = $1")
            .bind(id)
            .bind(i64::from(device))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Hosts no replica has vouched for since `before`.
    pub async fn unheard_render_hosts(&self, before: Timestamp) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM render_hosts WHERE seen_ms < $1 ORDER BY id")
            .bind(db_int(before.as_millis()))
            .fetch_all(&self.pool)
            .await
    }

    pub async fn upsert_render_session(&self, session: &RenderSession) -> StoreResult<()> {
        upsert_render_session(&self.pool, session).await
    }

    /// [`Self::upsert_render_session`] in `transaction`.
    pub async fn upsert_render_session_in(
        &self,
        transaction: &mut Transaction,
        session: &RenderSession,
    ) -> StoreResult<()> {
        upsert_render_session(&mut **transaction, session).await
    }

    /// [`Self::delete_render_session`] in `transaction`.
    pub async fn delete_render_session_in(
        &self,
        transaction: &mut Transaction,
        key: &SessionKey,
    ) -> StoreResult<()> {
        delete_render_session(&mut **transaction, key).await
    }

    pub async fn delete_render_session(&self, key: &SessionKey) -> StoreResult<()> {
        delete_render_session(&self.pool, key).await
    }

    /// Closes the pool (SQLite checkpoints its WAL, so the file is complete on its own).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub id: String,
    pub name: String,
    /// Argon2 PHC string of the account key.
    pub key_hash: String,
    /// When it was created, as SQL's `CURRENT_TIMESTAMP` wrote it (`YYYY-MM-DD HH:MM:SS`, UTC).
    pub created_at: String,
    /// When its key was last replaced.
    pub key_rotated_at: Option<Timestamp>,
    /// Since when its key and tokens no longer work.
    pub revoked_at: Option<Timestamp>,
}

/// A render host's credential as stored.
#[derive(Debug, Clone)]
pub struct HostCredentialRecord {
    pub name: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    pub created_at: Timestamp,
    /// Since when the host may no longer register.
    pub revoked_at: Option<Timestamp>,
}

const HOST_CREDENTIAL_COLUMNS: &str =
    "SELECT name, secret_hash, created_at_ms, revoked_at_ms FROM host_credentials";

fn host_credential_from_row(row: &AnyRow) -> StoreResult<HostCredentialRecord> {
    Ok(HostCredentialRecord {
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        created_at: instant(row, "created_at_ms")?.unwrap_or_default(),
        revoked_at: instant(row, "revoked_at_ms")?,
    })
}

const ACCOUNT_COLUMNS: &str =
    "SELECT id, name, key_hash, created_at, key_rotated_at_ms, revoked_at_ms FROM accounts";

fn space_holder((member, replica, connection): (String, String, i64)) -> SpaceHolder {
    SpaceHolder {
        member,
        replica,
        connection: u64::try_from(connection).unwrap_or_default(),
    }
}

/// A space row: body, properties, change number, sequence, version.
type SpaceColumns = (String, Option<String>, i64, i64, i64);

fn stored_space((body, properties, change, seq, version): SpaceColumns) -> StoredSpace {
    StoredSpace {
        body,
        properties,
        change: ChangeNumber(u64::try_from(change).unwrap_or_default()),
        seq: u64::try_from(seq).unwrap_or_default(),
        version: u64::try_from(version).unwrap_or_default(),
    }
}

/// The instant in `column` (Unix milliseconds), if it has one.
fn instant(row: &AnyRow, column: &str) -> StoreResult<Option<Timestamp>> {
    Ok(row
        .try_get::<Option<i64>, _>(column)?
        .map(|ms| Timestamp::from_millis(ms.max(0) as u64)))
}

fn account_from_row(row: &AnyRow) -> StoreResult<AccountRecord> {
    Ok(AccountRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        key_hash: row.try_get("key_hash")?,
        created_at: row.try_get("created_at")?,
        key_rotated_at: instant(row, "key_rotated_at_ms")?,
        revoked_at: instant(row, "revoked_at_ms")?,
    })
}

const SESSION_COLUMNS: &str = "SELECT account_id, id, size, max_lease_minutes, status,
    created_at_ms, ready_at_ms, ended_at_ms, error, host FROM render_sessions";

async fn render_session<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    key: &SessionKey,
) -> StoreResult<Option<RenderSession>> {
    let row = sqlx::query(&format!(
        "{SESSION_COLUMNS} WHERE account_id = $1 AND id = $2"
    ))
    .bind(&key.account)
    .bind(key.id.as_str())
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(session_from_row).transpose()
}

async fn upsert_render_session<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    session: &RenderSession,
) -> StoreResult<()> {
    let millis = |t: Option<Timestamp>| t.map(|t| t.as_millis() as i64);
    sqlx::query(
        "INSERT INTO render_sessions (account_id, id, size, max_lease_minutes, status,
             created_at_ms, ready_at_ms, ended_at_ms, error, host)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (account_id, id) DO UPDATE SET
             max_lease_minutes = excluded.max_lease_minutes, status = excluded.status,
             ready_at_ms = excluded.ready_at_ms, ended_at_ms = excluded.ended_at_ms,
             error = excluded.error, host = excluded.host",
    )
    .bind(&session.account)
    .bind(session.id.as_str())
    .bind(session.size.as_str())
    .bind(i64::from(session.max_lease_minutes))
    .bind(session.status.as_str())
    .bind(session.created_at.as_millis() as i64)
    .bind(millis(session.ready_at))
    .bind(millis(session.ended_at))
    .bind(session.error.as_deref())
    .bind(session.host.as_ref().map(HostId::as_str))
    .execute(executor)
    .await?;
    Ok(())
}

async fn delete_render_session<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    key: &SessionKey,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM render_sessions WHERE account_id = $1 AND id = $2")
        .bind(&key.account)
        .bind(key.id.as_str())
        .execute(executor)
        .await?;
    Ok(())
}

/// A render host's link as replicas share it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHostLink {
    pub id: String,
    /// The replica holding the link.
    pub replica: String,
    pub size: SessionSize,
    pub endpoint: String,
    pub adapter: String,
    pub pid: u32,
    /// A device holds its render connection.
    pub device: bool,
    /// When its replica last vouched for it.
    pub seen: Timestamp,
}

async fn render_host<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: &str,
) -> StoreResult<Option<StoredHostLink>> {
    let row: Option<HostLinkColumns> =
        sqlx::query_as(&format!("{HOST_LINK_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(executor)
            .await?;
    row.map(host_link).transpose()
}

const HOST_LINK_COLUMNS: &str =
    "SELECT id, replica, size, endpoint, adapter, pid, device, seen_ms FROM render_hosts";

type HostLinkColumns = (String, String, String, String, String, i64, i64, i64);

fn host_link(
    (id, replica, size, endpoint, adapter, pid, device, seen): HostLinkColumns,
) -> StoreResult<StoredHostLink> {
    Ok(StoredHostLink {
        id,
        replica,
        size: size
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        endpoint,
        adapter,
        pid: u32::try_from(pid).unwrap_or_default(),
        device: device != 0,
        seen: Timestamp(u64::try_from(seen).unwrap_or_default()),
    })
}

fn session_from_row(row: &AnyRow) -> StoreResult<RenderSession> {
    let decode = |e: String| sqlx::Error::Decode(e.into());
    Ok(RenderSession {
        id: SessionId::parse(&row.try_get::<String, _>("id")?)
            .map_err(|e| decode(e.to_string()))?,
        account: row.try_get("account_id")?,
        size: row.try_get::<String, _>("size")?.parse().map_err(decode)?,
        max_lease_minutes: row.try_get::<i64, _>("max_lease_minutes")?.clamp(0, 1440) as u32,
        status: row
            .try_get::<String, _>("status")?
            .parse()
            .map_err(decode)?,
        created_at: instant(row, "created_at_ms")?.unwrap_or_default(),
        ready_at: instant(row, "ready_at_ms")?,
        ended_at: instant(row, "ended_at_ms")?,
        error: row.try_get("error")?,
        host: row.try_get::<Option<String>, _>("host")?.map(HostId::new),
    })
}

/// The setting that keeps the highest number the pool named a host of `size` with.
fn named_setting(size: SessionSize) -> String {
    format!("pool_named_{}", size.as_str().to_ascii_lowercase())
}

const CONVERSION_COLUMNS: &str = "SELECT account_id, id, settings, status, error_code,
    error_message, model_id, output_uri, created_at_ms FROM conversions";

fn conversion_from_row(row: &AnyRow) -> StoreResult<StoredConversion> {
    let code: Option<String> = row.try_get("error_code")?;
    let message: Option<String> = row.try_get("error_message")?;
    Ok(StoredConversion {
        account: row.try_get("account_id")?,
        id: row.try_get("id")?,
        settings: row.try_get("settings")?,
        status: row.try_get("status")?,
        error: code.map(|code| (code, message.unwrap_or_default())),
        model: row
            .try_get::<Option<String>, _>("model_id")?
            .map(ModelId::new),
        output_uri: row.try_get("output_uri")?,
        created_at: instant(row, "created_at_ms")?.unwrap_or_default(),
    })
}

fn record_from_row(row: &AnyRow) -> StoreResult<ModelRecord> {
    let source = match row.try_get::<String, _>("source")?.as_str() {
        "sample" => ModelSource::Sample,
        _ => ModelSource::Upload,
    };
    Ok(ModelRecord {
        summary: ModelSummary {
            id: ModelId::new(row.try_get::<String, _>("id")?),
            name: row.try_get("name")?,
            triangles: row.try_get::<i64, _>("triangles")?.max(0) as u64,
        },
        source,
        file_name: row.try_get("file_name")?,
        format: row.try_get("format")?,
        size_bytes: row
            .try_get::<Option<i64>, _>("size_bytes")?
            .map(|b| b.max(0) as u64),
        uploaded_by: row.try_get("uploaded_by")?,
        content_id: row.try_get("content_id")?,
        status: match row.try_get::<String, _>("status")?.as_str() {
            "converting" => ModelStatus::Converting,
            "failed" => ModelStatus::Failed(
                row.try_get::<Option<String>, _>("failure")?
                    .unwrap_or_else(|| "no reason was kept".into()),
            ),
            _ => ModelStatus::Ready,
        },
    })
}
