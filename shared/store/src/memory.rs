//! In-process store: one ordered map behind a mutex. Nothing survives the process.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use crate::kv::{KvBackend, KvEntries, KvRead, KvStore, KvWrite};
use crate::{StoreError, StoreResult};

/// The in-memory [`crate::Store`]: `MemoryStore::new()`.
pub type MemoryStore = KvStore<MemoryKv>;

impl MemoryStore {
    pub fn new() -> Self {
        KvStore::with_backend(MemoryKv::default())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// An ordered map with all-or-nothing write transactions (an undo log rolls back
/// a failed one).
#[derive(Default)]
pub struct MemoryKv {
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryKv {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // Every write rolls back on error, so a poisoned map is still consistent
        // unless a closure panicked mid-write; we keep serving either way.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn map_range(
    map: &BTreeMap<String, Vec<u8>>,
    start: &str,
    end: &str,
    reverse: bool,
    limit: usize,
) -> Vec<(String, Vec<u8>)> {
    if start >= end {
        return Vec::new();
    }
    let range = map.range::<str, _>((Bound::Included(start), Bound::Excluded(end)));
    let clone = |(k, v): (&String, &Vec<u8>)| (k.clone(), v.clone());
    if reverse {
        range.rev().take(limit).map(clone).collect()
    } else {
        range.take(limit).map(clone).collect()
    }
}

struct Txn<'a> {
    map: &'a mut BTreeMap<String, Vec<u8>>,
    undo: Vec<(String, Option<Vec<u8>>)>,
}

impl KvRead for Txn<'_> {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.map.get(key).cloned())
    }
    fn range(&self, start: &str, end: &str, rev: bool, limit: usize) -> KvEntries {
        Ok(map_range(self.map, start, end, rev, limit))
    }
}

impl KvWrite for Txn<'_> {
    fn put(&mut self, key: &str, value: Vec<u8>) -> StoreResult<()> {
        let old = self.map.insert(key.to_owned(), value);
        self.undo.push((key.to_owned(), old));
        Ok(())
    }
    fn delete(&mut self, key: &str) -> StoreResult<()> {
        if let Some(old) = self.map.remove(key) {
            self.undo.push((key.to_owned(), Some(old)));
        }
        Ok(())
    }
}

impl Txn<'_> {
    fn rollback(self) {
        for (key, old) in self.undo.into_iter().rev() {
            match old {
                Some(value) => self.map.insert(key, value),
                None => self.map.remove(&key),
            };
        }
    }
}

impl KvBackend for MemoryKv {
    fn read<R, F>(&self, f: F) -> impl Future<Output = StoreResult<R>> + Send
    where
        R: Send + 'static,
        F: FnOnce(&dyn KvRead) -> StoreResult<R> + Send + 'static,
    {
        let result = {
            let mut map = self.lock();
            // A read runs over a transaction that is never written to.
            f(&Txn {
                map: &mut map,
                undo: Vec::new(),
            })
        };
        std::future::ready(result)
    }

    fn write<R, E, F>(&self, f: F) -> impl Future<Output = Result<R, E>> + Send
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn KvWrite) -> Result<R, E> + Send + 'static,
    {
        let result = {
            let mut map = self.lock();
            let mut txn = Txn {
                map: &mut map,
                undo: Vec::new(),
            };
            let result = f(&mut txn);
            if result.is_err() {
                txn.rollback();
            }
            result
        };
        std::future::ready(result)
    }
}
