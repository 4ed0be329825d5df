//! A runtime writing its sessions while a rollout moves them: read-modify-write
//! under `If-Match` through the runtime client, as a real runtime would.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use focal_migrations_client::Client;
use serde_json::json;

use super::TestApp;

/// Writers on `tasks` tasks, each updating its share of `ids` round after round
/// (variable `runtime_turn` = the round) until `stop` is set, then one round
/// more. Each write reads the session and writes it back under `If-Match` on
/// the revision read, reading again after a 412. Returns, per session, the
/// last round its runtime wrote.
pub fn spawn_runtime_writers(
    app: &TestApp,
    ids: &[String],
    tasks: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<String, u64>> {
    let client = Client::builder(&app.base, app.tenant)
        .build()
        .expect("runtime client");
    let shares: Vec<Vec<String>> = ids
        .chunks(ids.len().div_ceil(tasks.max(1)).max(1))
        .map(<[String]>::to_vec)
        .collect();
    tokio::spawn(async move {
        let writers = shares.into_iter().map(|share| {
            let (client, stop) = (client.clone(), stop.clone());
            async move {
                let mut last = BTreeMap::new();
                let mut round = 0u64;
                loop {
                    let stopping = stop.load(Ordering::SeqCst);
                    for id in &share {
                        client
                            .update_session(id, |s| {
                                s.variables.insert("runtime_turn".into(), json!(round));
                            })
                            .await
                            .unwrap_or_else(|e| panic!("{id}: runtime write failed: {e}"));
                        last.insert(id.clone(), round);
                    }
                    if stopping {
                        return last;
                    }
                    round += 1;
                }
            }
        });
        futures::future::join_all(writers)
            .await
            .into_iter()
            .flatten()
            .collect()
    })
}

/// Every session still holds the last value its runtime wrote: no rollout
/// write (marking, migration, withdrawal) put back an older one.
pub async fn assert_runtime_writes_kept(app: &TestApp, written: &BTreeMap<String, u64>) {
    assert!(!written.is_empty(), "the runtime wrote");
    for (id, round) in written {
        let session = app.call("GET", &format!("/sessions/{id}"), None).await.body;
        assert_eq!(
            session["variables"]["runtime_turn"],
            json!(round),
            "{id} lost a runtime write: {session}"
        );
    }
}
