//! `Table` on SQLite: one `items` table in WAL mode with the same keys and sparse indexes
//! as the DynamoDB design. Every write commits with `synchronous=FULL` before it is
//! acknowledged, so neither a killed process nor a lost machine loses it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use async_trait::async_trait;
use oratio_core::health::HealthCheck;
use oratio_core::table::{
    Condition, Cursor, CursorKey, Index, Item, Key, Page, Query, SortKey, Table, TableError, Update, Write,
    validate_key, validate_transaction,
};
use oratio_core::time::now_epoch;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    gsi1pk TEXT, gsi1sk TEXT,
    gsi2pk TEXT, gsi2sk TEXT,
    gsi3pk TEXT, gsi3sk TEXT,
    gsi4pk TEXT, gsi4sk TEXT,
    expires_at INTEGER,
    attrs TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_gsi1 ON items (gsi1pk, gsi1sk, pk, sk)
    WHERE gsi1pk IS NOT NULL AND gsi1sk IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_gsi2 ON items (gsi2pk, gsi2sk, pk, sk)
    WHERE gsi2pk IS NOT NULL AND gsi2sk IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_gsi3 ON items (gsi3pk, gsi3sk, pk, sk)
    WHERE gsi3pk IS NOT NULL AND gsi3sk IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_gsi4 ON items (gsi4pk, gsi4sk, pk, sk)
    WHERE gsi4pk IS NOT NULL AND gsi4sk IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_expiry ON items (expires_at) WHERE expires_at IS NOT NULL;
";

/// Adds the index columns a database made by an earlier version lacks (before `SCHEMA`
/// creates their indexes). Items written then are in none of the new indexes, as a new
/// DynamoDB GSI holds nothing until items carry its keys.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let exists: bool = conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'items'", [], |r| r.get(0))?;
    if !exists {
        return Ok(());
    }
    let mut columns = Vec::new();
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('items')")?;
    for name in stmt.query_map([], |r| r.get::<_, String>(0))? {
        columns.push(name?);
    }
    for index in Index::SECONDARY {
        let (pk, sk) = index.key_names();
        for column in [pk, sk] {
            if !columns.iter().any(|c| c == column) {
                conn.execute_batch(&format!("ALTER TABLE items ADD COLUMN {column} TEXT"))?;
            }
        }
    }
    Ok(())
}

/// How many expired rows one purge pass removes at most.
const PURGE_BATCH: i64 = 500;

/// The embedded item store.
#[derive(Clone)]
pub struct SqliteTable {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

fn backend(e: rusqlite::Error) -> TableError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            TableError::Unavailable(e.into())
        }
        _ => TableError::Backend(e.into()),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave SQLite half-written (the transaction
    // rolls back on drop), so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SqliteTable {
    /// Opens (or creates) the database file.
    pub fn open(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let writer = Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        writer
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")
            .context("configuring SQLite")?;
        migrate(&writer).context("bringing the schema up to date")?;
        writer.execute_batch(SCHEMA).context("creating the schema")?;
        Ok(Self { inner: Arc::new(Inner { path, writer: Mutex::new(writer), readers: Mutex::new(Vec::new()) }) })
    }

    /// Removes items whose expiry has passed (they are already invisible). Returns how
    /// many were removed.
    pub async fn purge_expired(&self) -> Result<usize, TableError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM items WHERE (pk, sk) IN
                   (SELECT pk, sk FROM items WHERE expires_at <= ?1 LIMIT ?2)",
                params![now_epoch(), PURGE_BATCH],
            )
            .map_err(backend)
        })
        .await
    }

    /// Folds the write-ahead log into the database file; used at shutdown.
    pub async fn checkpoint(&self) -> Result<(), TableError> {
        let inner = self.inner.clone();
        run(move || lock(&inner.writer).execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").map_err(backend)).await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, TableError> + Send + 'static,
    ) -> Result<T, TableError> {
        let inner = self.inner.clone();
        run(move || {
            let mut conn = lock(&inner.writer);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let out = f(&tx)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, TableError> + Send + 'static,
    ) -> Result<T, TableError> {
        let inner = self.inner.clone();
        let read = move || {
            let pooled = lock(&inner.readers).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open_with_flags(
                        &inner.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(backend)?;
                    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
                    conn
                }
            };
            let out = f(&conn);
            lock(&inner.readers).push(conn);
            out
        };
        // A WAL read never waits for the writer and takes microseconds: on a
        // multi-threaded runtime it runs in place (other tasks move to other workers),
        // which saves the hand-off to the blocking pool, most of a read's cost.
        match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(read),
            _ => run(read).await,
        }
    }
}

async fn run<T: Send + 'static>(f: impl FnOnce() -> Result<T, TableError> + Send + 'static) -> Result<T, TableError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TableError::Backend(anyhow::Error::new(e).context("SQLite worker panicked")))?
}

fn decode(attrs: &str) -> Result<Item, TableError> {
    let attrs = serde_json::from_str(attrs).map_err(|e| TableError::Corrupt(e.to_string()))?;
    Item::from_stored(attrs)
}

/// The live item at `key` (expired rows count as absent).
fn load(conn: &Connection, key: &Key, now: i64) -> Result<Option<Item>, TableError> {
    let attrs: Option<String> = conn
        .prepare_cached("SELECT attrs FROM items WHERE pk = ?1 AND sk = ?2 AND (expires_at IS NULL OR expires_at > ?3)")
        .map_err(backend)?
        .query_row(params![key.pk, key.sk, now], |row| row.get(0))
        .optional()
        .map_err(backend)?;
    attrs.as_deref().map(decode).transpose()
}

fn store(tx: &Transaction<'_>, item: &Item) -> Result<(), TableError> {
    let key = item.key();
    // Only an item with both keys of an index is in it, as in a sparse DynamoDB GSI.
    let [g1, g2, g3, g4] = Index::SECONDARY.map(|index| item.index_key(index));
    let attrs = serde_json::to_string(item.attributes()).map_err(|e| TableError::Invalid(e.to_string()))?;
    tx.execute(
        "INSERT OR REPLACE INTO items
           (pk, sk, gsi1pk, gsi1sk, gsi2pk, gsi2sk, gsi3pk, gsi3sk, gsi4pk, gsi4sk, expires_at, attrs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            key.pk,
            key.sk,
            g1.map(|k| k.0),
            g1.map(|k| k.1),
            g2.map(|k| k.0),
            g2.map(|k| k.1),
            g3.map(|k| k.0),
            g3.map(|k| k.1),
            g4.map(|k| k.0),
            g4.map(|k| k.1),
            item.expires_at(),
            attrs
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn remove(tx: &Transaction<'_>, key: &Key) -> Result<(), TableError> {
    tx.execute("DELETE FROM items WHERE pk = ?1 AND sk = ?2", params![key.pk, key.sk]).map_err(backend)?;
    Ok(())
}

fn check(condition: Option<&Condition>, current: Option<&Item>, write: Option<usize>) -> Result<(), TableError> {
    match condition {
        Some(c) if !c.holds(current) => Err(TableError::ConditionFailed { write }),
        _ => Ok(()),
    }
}

/// Applies one write inside a transaction, after checking its condition.
fn apply(tx: &Transaction<'_>, write: &Write, position: Option<usize>, now: i64) -> Result<Option<Item>, TableError> {
    let key = write.key();
    let current = load(tx, &key, now)?;
    check(write.condition(), current.as_ref(), position)?;
    match write {
        Write::Put { item, .. } => {
            store(tx, item)?;
            Ok(Some(item.clone()))
        }
        Write::Update { update, .. } => {
            let after = update.apply(&key, current.as_ref())?;
            store(tx, &after)?;
            Ok(Some(after))
        }
        Write::Delete { .. } => {
            remove(tx, &key)?;
            Ok(None)
        }
        Write::Check { .. } => Ok(None),
    }
}

fn sort_clause(column: &str, sort: &SortKey, args: &mut Vec<rusqlite::types::Value>) -> String {
    let mut arg = |v: &str| {
        args.push(v.to_owned().into());
        format!("?{}", args.len())
    };
    match sort {
        SortKey::Equals(v) => format!("{column} = {}", arg(v)),
        SortKey::BeginsWith(p) => {
            let a = arg(p);
            // Byte-wise prefix test; the range start lets the index narrow the scan.
            format!(
                "{column} >= {a} AND substr(CAST({column} AS BLOB), 1, length(CAST({a} AS BLOB))) = CAST({a} AS BLOB)"
            )
        }
        SortKey::Between(lo, hi) => format!("{column} BETWEEN {} AND {}", arg(lo), arg(hi)),
        SortKey::LessThan(v) => format!("{column} < {}", arg(v)),
        SortKey::LessOrEqual(v) => format!("{column} <= {}", arg(v)),
        SortKey::GreaterThan(v) => format!("{column} > {}", arg(v)),
        SortKey::GreaterOrEqual(v) => format!("{column} >= {}", arg(v)),
    }
}

/// The SQL of a query and its arguments: always a range of one index (or of the primary
/// key), never a scan of the table (the unit tests hold every query shape to that).
fn query_sql(
    query: &Query,
    after: Option<CursorKey>,
    now: i64,
) -> Result<(String, Vec<rusqlite::types::Value>), TableError> {
    let (pk_col, sk_col) = query.index.key_names();
    let mut args: Vec<rusqlite::types::Value> = vec![query.partition.clone().into(), now.into()];
    let mut sql = format!(
        "SELECT attrs FROM items WHERE {pk_col} = ?1 AND {sk_col} IS NOT NULL \
         AND (expires_at IS NULL OR expires_at > ?2)"
    );
    if let Some(sort) = &query.sort {
        sql += &format!(" AND {}", sort_clause(sk_col, sort, &mut args));
    }
    let dir = if query.descending { "DESC" } else { "ASC" };
    let cmp = if query.descending { "<" } else { ">" };
    if let Some(after) = after {
        match (query.index, after.index) {
            (Index::Primary, _) => {
                args.push(after.table.sk.into());
                sql += &format!(" AND sk {cmp} ?{}", args.len());
            }
            (_, Some((_, index_sk))) => {
                let n = args.len();
                args.extend([index_sk.into(), after.table.pk.into(), after.table.sk.into()]);
                sql += &format!(" AND ({sk_col}, pk, sk) {cmp} (?{}, ?{}, ?{})", n + 1, n + 2, n + 3);
            }
            (_, None) => return Err(TableError::InvalidCursor),
        }
    }
    sql += &match query.index {
        Index::Primary => format!(" ORDER BY sk {dir}"),
        _ => format!(" ORDER BY {sk_col} {dir}, pk {dir}, sk {dir}"),
    };
    if let Some(limit) = query.limit {
        args.push(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1).into());
        sql += &format!(" LIMIT ?{}", args.len());
    }
    Ok((sql, args))
}

fn run_query(conn: &Connection, query: &Query, after: Option<CursorKey>, now: i64) -> Result<Page, TableError> {
    let (sql, args) = query_sql(query, after, now)?;
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let mut items = stmt
        .query_map(rusqlite::params_from_iter(args), |row| row.get::<_, String>(0))
        .map_err(backend)?
        .map(|attrs| attrs.map_err(backend).and_then(|a| decode(&a)))
        .collect::<Result<Vec<_>, _>>()?;
    let next = match query.limit {
        Some(limit) if items.len() > limit => {
            items.truncate(limit);
            items.last().map(|last| Cursor::encode(&CursorKey::of(last, query.index)))
        }
        _ => None,
    };
    Ok(Page { items, next })
}

#[async_trait]
impl Table for SqliteTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        validate_key(key)?;
        let key = key.clone();
        self.read(move |conn| load(conn, &key, now_epoch())).await
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        let write = Write::Put { item, condition };
        write.validate()?;
        self.write(move |tx| apply(tx, &write, None, now_epoch()).map(drop)).await
    }

    async fn update(&self, key: &Key, update: Update, condition: Option<Condition>) -> Result<Item, TableError> {
        let write = Write::Update { key: key.clone(), update, condition };
        write.validate()?;
        self.write(move |tx| {
            apply(tx, &write, None, now_epoch())?
                .ok_or_else(|| TableError::Backend(anyhow::anyhow!("an update produced no item")))
        })
        .await
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<(), TableError> {
        let write = Write::Delete { key: key.clone(), condition };
        write.validate()?;
        self.write(move |tx| apply(tx, &write, None, now_epoch()).map(drop)).await
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        let after = query.validate()?;
        self.read(move |conn| run_query(conn, &query, after, now_epoch())).await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        validate_transaction(&writes)?;
        self.write(move |tx| {
            let now = now_epoch();
            // Judge every condition against the state before the transaction, as
            // DynamoDB does, then apply the writes.
            for (i, write) in writes.iter().enumerate() {
                let current = load(tx, &write.key(), now)?;
                check(write.condition(), current.as_ref(), Some(i))?;
            }
            for write in &writes {
                apply(tx, write, None, now)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl HealthCheck for SqliteTable {
    fn name(&self) -> &'static str {
        "table"
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn probe(&self) -> Result<(), String> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend)).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use oratio_core::table::{Index, Item, Key, Query, SortKey};

    use super::*;

    /// SQLite's plan of every query shape the table answers: each reads a range of its
    /// index (or of the primary key), never the whole table. This is what makes the
    /// history, the live list, the sweeper and the analytics scan-free on one machine.
    #[test]
    fn every_query_is_a_range_of_its_index() {
        let dir = tempfile::tempdir().expect("a directory");
        let table = SqliteTable::open(dir.path().join("t.sqlite3")).expect("open");
        let conn = lock(&table.inner.writer);
        let sorts = [
            None,
            Some(SortKey::Between("2026-01-01".into(), "2026-02-01".into())),
            Some(SortKey::BeginsWith("ROLLUP#".into())),
            Some(SortKey::GreaterOrEqual("2026-01-01".into())),
            Some(SortKey::LessThan("2026-01-01".into())),
            Some(SortKey::GreaterThan("TURN#000003".into())),
        ];
        let mut item = Item::new(Key::new("TENANT#t", "SESSION#s"));
        for index in Index::SECONDARY {
            item = item.in_index(index, "P", "2026-01-15#s");
        }
        for index in [Index::Primary, Index::Gsi1, Index::Gsi2, Index::Gsi3, Index::Gsi4] {
            for sort in &sorts {
                for descending in [false, true] {
                    for after in [None, Some(CursorKey::of(&item, index))] {
                        let mut query = Query::partition(index, "P").limit(50);
                        if let Some(sort) = sort {
                            query = query.sort(sort.clone());
                        }
                        if descending {
                            query = query.descending();
                        }
                        let (sql, args) = query_sql(&query, after, 0).expect("sql");
                        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("explain");
                        let plan: Vec<String> = stmt
                            .query_map(rusqlite::params_from_iter(args), |row| row.get::<_, String>(3))
                            .expect("plan")
                            .collect::<Result<_, _>>()
                            .expect("rows");
                        let wanted = match index.name() {
                            Some(name) => format!("USING INDEX items_{name}"),
                            None => "USING PRIMARY KEY".to_owned(),
                        };
                        assert!(
                            plan.iter().any(|step| step.starts_with("SEARCH items") && step.contains(&wanted))
                                && !plan.iter().any(|step| step.starts_with("SCAN") || step.contains("TEMP B-TREE")),
                            "{index:?} {sort:?} desc={descending}: {plan:?}"
                        );
                    }
                }
            }
        }
    }
}
