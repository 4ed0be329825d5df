//! Embedded store: one redb file, the same semantics as every other backend.
//!
//! Each store operation is one redb transaction (a write transaction for state
//! changes, so the "read, check, write" of a conditional update is atomic). redb
//! calls block, so they run on tokio's blocking pool.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};

use crate::kv::{KvBackend, KvEntries, KvRead, KvStore, KvWrite};
use crate::{StoreError, StoreResult};

const DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("focal_migrations");

/// The redb-backed [`crate::Store`]: `EmbeddedStore::open(path)`.
pub type EmbeddedStore = KvStore<RedbKv>;

impl EmbeddedStore {
    /// Open (or create) the database file at `path`, with redb's default page
    /// cache (1 GiB). Blocking: call it at startup.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with(&redb::Builder::new(), path.as_ref())
    }

    /// [`open`](Self::open) with a page cache of at most `cache_bytes` (cached
    /// reads and pending writes together). redb fills its cache up to the limit
    /// and keeps it, so a long-running server holds that much more memory.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: usize) -> StoreResult<Self> {
        Self::open_with(
            redb::Builder::new().set_cache_size(cache_bytes),
            path.as_ref(),
        )
    }

    fn open_with(builder: &redb::Builder, path: &Path) -> StoreResult<Self> {
        let db = builder.create(path).map_err(redb_err)?;
        // Create the table once so read transactions always find it.
        let txn = db.begin_write().map_err(redb_err)?;
        {
            let mut table = txn.open_table(DATA).map_err(redb_err)?;
            // A file written before session counts existed: count its sessions once.
            crate::kv::counts::rebuild(&mut Writer(&mut table))?;
        }
        txn.commit().map_err(redb_err)?;
        Ok(KvStore::with_backend(RedbKv { db: Arc::new(db) }))
    }
}

/// The redb database behind an [`EmbeddedStore`].
pub struct RedbKv {
    db: Arc<Database>,
}

fn redb_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Unexpected(format!("redb: {}", e.into()))
}

fn table_range<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    start: &str,
    end: &str,
    reverse: bool,
    limit: usize,
) -> StoreResult<Vec<(String, Vec<u8>)>> {
    if start >= end {
        return Ok(Vec::new());
    }
    let range = table.range::<&str>(start..end).map_err(redb_err)?;
    let entry = |r: Result<(redb::AccessGuard<'_, &str>, redb::AccessGuard<'_, &[u8]>), _>| {
        r.map(|(k, v)| (k.value().to_owned(), v.value().to_vec()))
            .map_err(redb_err)
    };
    if reverse {
        range.rev().take(limit).map(entry).collect()
    } else {
        range.take(limit).map(entry).collect()
    }
}

struct Reader<'a, T>(&'a T);

impl<T: ReadableTable<&'static str, &'static [u8]>> KvRead for Reader<'_, T> {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let value = self.0.get(key).map_err(redb_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }
    fn range(&self, start: &str, end: &str, rev: bool, limit: usize) -> KvEntries {
        table_range(self.0, start, end, rev, limit)
    }
}

struct Writer<'t, 'txn>(&'t mut Table<'txn, &'static str, &'static [u8]>);

impl KvRead for Writer<'_, '_> {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Reader(&*self.0).get(key)
    }
    fn range(&self, start: &str, end: &str, rev: bool, limit: usize) -> KvEntries {
        Reader(&*self.0).range(start, end, rev, limit)
    }
}

impl KvWrite for Writer<'_, '_> {
    fn put(&mut self, key: &str, value: Vec<u8>) -> StoreResult<()> {
        self.0.insert(key, value.as_slice()).map_err(redb_err)?;
        Ok(())
    }
    fn delete(&mut self, key: &str) -> StoreResult<()> {
        self.0.remove(key).map_err(redb_err)?;
        Ok(())
    }
}

async fn blocking<R: Send + 'static, E: From<StoreError> + Send + 'static>(
    f: impl FnOnce() -> Result<R, E> + Send + 'static,
) -> Result<R, E> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(StoreError::Unexpected(format!("redb task: {e}")).into()),
    }
}

impl KvBackend for RedbKv {
    fn read<R, F>(&self, f: F) -> impl Future<Output = StoreResult<R>> + Send
    where
        R: Send + 'static,
        F: FnOnce(&dyn KvRead) -> StoreResult<R> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        blocking(move || {
            let txn = db.begin_read().map_err(redb_err)?;
            let table = txn.open_table(DATA).map_err(redb_err)?;
            f(&Reader(&table))
        })
    }

    fn write<R, E, F>(&self, f: F) -> impl Future<Output = Result<R, E>> + Send
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn KvWrite) -> Result<R, E> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        blocking(move || {
            let txn = db.begin_write().map_err(redb_err)?;
            let result = {
                let mut table = txn.open_table(DATA).map_err(redb_err)?;
                f(&mut Writer(&mut table))
            };
            match result {
                Ok(value) => {
                    txn.commit().map_err(redb_err)?;
                    Ok(value)
                }
                Err(e) => {
                    txn.abort().map_err(redb_err)?;
                    Err(e)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use planning::{PendingMigration, Session};
    use uuid::Uuid;

    use super::*;
    use crate::Store;

    fn flagged(tenant: Uuid, id: &str, plan: Option<Uuid>, day: u32) -> Session {
        let at = Utc.with_ymd_and_hms(2026, 11, day, 9, 0, 0).unwrap();
        Session {
            session_id: id.into(),
            tenant_id: tenant,
            channel: "web".into(),
            customer_id: None,
            active_scenario_id: Uuid::from_u128(1),
            active_scenario_version: 1,
            active_step_id: Uuid::from_u128(2),
            scenario_checksum: None,
            step_history: Vec::new(),
            variables: BTreeMap::new(),
            pending_migration: plan.map(|migration_plan_id| PendingMigration {
                migration_plan_id,
                target_version: 2,
                anchor_content_hash: "h".into(),
                from_step_id: Uuid::from_u128(2),
                marked_at: at,
            }),
            pinned_version: None,
            created_at: at,
            updated_at: at,
            revision: 1,
        }
    }

    /// A file written before the flag counters existed gets them counted once
    /// when opened, the same as they would have been kept.
    #[tokio::test]
    async fn an_older_file_has_its_flags_counted_when_opened() {
        let path = std::env::temp_dir().join(format!("focal-flags-{}.redb", Uuid::new_v4()));
        let (tenant, plan) = (Uuid::new_v4(), Uuid::new_v4());
        let store = EmbeddedStore::open(&path).unwrap();
        for (id, flag, day) in [
            ("a", Some(plan), 3),
            ("b", Some(plan), 3),
            ("c", None, 3),
            ("d", Some(plan), 9),
        ] {
            store
                .put_session(&flagged(tenant, id, flag, day))
                .await
                .unwrap();
        }
        let kept = store.pending_by_activity_day(tenant, plan).await.unwrap();
        assert_eq!(kept.iter().map(|d| d.sessions).sum::<u64>(), 3);
        drop(store);

        // Make it an older file: no flag counters, no marker.
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(DATA).unwrap();
            let doomed: Vec<String> = table
                .iter()
                .unwrap()
                .map(|entry| entry.unwrap().0.value().to_owned())
                .filter(|key| key.contains("/ACT/") || key == "COUNTS/FLAGS_READY")
                .collect();
            assert_eq!(doomed.len(), 3, "two days and the marker: {doomed:?}");
            for key in doomed {
                table.remove(key.as_str()).unwrap();
            }
        }
        txn.commit().unwrap();
        drop(db);

        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(
            store.pending_by_activity_day(tenant, plan).await.unwrap(),
            kept
        );
        drop(store);
        // Opened again: counted once, not twice.
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(
            store.pending_by_activity_day(tenant, plan).await.unwrap(),
            kept
        );
        let _ = std::fs::remove_file(&path);
    }
}
