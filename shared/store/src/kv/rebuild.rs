//! Rebuilding the step index under another shard count.

use planning::Session;

use super::keys::step_entry_key;
use super::values::decode_value;
use super::{KvBackend, KvStore, KvWrite};
use crate::{StoreError, StoreResult};

/// Keys read per range while rebuilding (bounded memory, one transaction).
pub(super) const REBUILD_CHUNK: usize = 1_000;

/// The second segment of a key (`{t}/{KIND}/…`).
pub(super) fn key_kind(key: &str) -> Option<&str> {
    key.split('/').nth(1)
}

/// Every key of the database in order, `REBUILD_CHUNK` at a time, passed to `f`.
pub(super) fn each_entry(
    kv: &mut dyn KvWrite,
    mut f: impl FnMut(&mut dyn KvWrite, &str, &[u8]) -> StoreResult<()>,
) -> StoreResult<()> {
    let end = char::MAX.to_string();
    let mut start = String::new();
    loop {
        let entries = kv.range(&start, &end, false, REBUILD_CHUNK)?;
        let Some((last, _)) = entries.last() else {
            return Ok(());
        };
        start = format!("{last}\u{0}");
        for (key, value) in &entries {
            f(kv, key, value)?;
        }
    }
}

impl<B: KvBackend> KvStore<B> {
    /// Rewrite the step index under this store's shard count, in one
    /// transaction: every index entry is dropped and written again from the
    /// sessions. For a database written before the index was sharded, or under
    /// another `STEP_INDEX_SHARDS` (`migrations backfill-step-keys`). Returns
    /// the sessions indexed.
    pub async fn rebuild_step_index(&self) -> StoreResult<u64> {
        let shards = self.step_shards;
        self.backend
            .write(move |kv| {
                each_entry(kv, |kv, key, _| {
                    if key_kind(key) == Some("STEP") {
                        kv.delete(key)?;
                    }
                    Ok(())
                })?;
                let mut indexed = 0u64;
                each_entry(kv, |kv, key, value| {
                    if key_kind(key) == Some("SESS") {
                        let session: Session = decode_value(value)?;
                        kv.put(&step_entry_key(&session, shards), Vec::new())?;
                        indexed += 1;
                    }
                    Ok(())
                })?;
                Ok::<_, StoreError>(indexed)
            })
            .await
    }
}
