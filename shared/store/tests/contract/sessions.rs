//! Sessions: the runtime's write under the session concurrency contract, its
//! race with marking (no flag lost), and the sharded step index that marking
//! pages through and counts.

use std::collections::BTreeMap;
use std::sync::Arc;

use store::{
    SessionPosition, SessionPrecondition, SessionWriteError, StepQuery, Store, StoreError,
};
use uuid::Uuid;

use super::fixtures::*;

pub async fn runtime_write_contract(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let (sid, other_scenario) = (Uuid::new_v4(), Uuid::new_v4());
    let (step_a, step_b) = (Uuid::new_v4(), Uuid::new_v4());
    let x = session(tenant, "rt", sid, 2, step_a);
    let created = s
        .write_session(&runtime_write(&x, SessionPrecondition::Absent))
        .await
        .expect("create");
    assert!(created.created);
    assert_eq!(created.session.revision, 1);
    assert!(matches!(
        s.write_session(&runtime_write(&x, SessionPrecondition::Absent))
            .await,
        Err(SessionWriteError::PreconditionFailed { current: Some(1) })
    ));
    // Marking sets the flag; the runtime's next write keeps it.
    let flag = pending(Uuid::new_v4(), step_a);
    let pos = SessionPosition {
        scenario_id: sid,
        version: 2,
        step_id: step_a,
    };
    assert!(
        s.mark_session(tenant, "rt", &pos, &flag, "mark-a")
            .await
            .expect("mark")
    );
    let mut moved = x.clone();
    moved.active_step_id = step_b;
    moved.variables.insert("k".into(), serde_json::json!(1));
    let written = s
        .write_session(&runtime_write(&moved, SessionPrecondition::None))
        .await
        .expect("write");
    assert!(!written.created);
    assert_eq!(written.session.revision, 3, "create, mark, write");
    assert_eq!(written.session.pending_migration, Some(flag.clone()));
    assert_eq!(
        s.get_session(tenant, "rt").await.expect("get"),
        Some(written.session.clone())
    );
    // If-Match: the revision the client read.
    assert!(matches!(
        s.write_session(&runtime_write(&moved, SessionPrecondition::Revision(2)))
            .await,
        Err(SessionWriteError::PreconditionFailed { current: Some(3) })
    ));
    let at3 = s
        .write_session(&runtime_write(&moved, SessionPrecondition::Revision(3)))
        .await
        .expect("if-match");
    assert_eq!(at3.session.revision, 4);
    assert!(matches!(
        s.write_session(&runtime_write(
            &session(tenant, "nobody", sid, 1, step_a),
            SessionPrecondition::Exists
        ))
        .await,
        Err(SessionWriteError::PreconditionFailed { current: None })
    ));
    // Never back to an older version of the same scenario; nothing written.
    let older = session(tenant, "rt", sid, 1, step_a);
    assert!(matches!(
        s.write_session(&runtime_write(&older, SessionPrecondition::None))
            .await,
        Err(SessionWriteError::VersionRegression { current: 2 })
    ));
    assert_eq!(
        s.get_session(tenant, "rt").await.expect("get"),
        Some(at3.session.clone())
    );
    // The index follows the runtime's moves.
    assert_eq!(
        s.count_sessions_at_step(tenant, sid, 2, step_b).await.ok(),
        Some(1)
    );
    assert_eq!(
        s.count_sessions_at_step(tenant, sid, 2, step_a).await.ok(),
        Some(0)
    );
    // Another scenario: the flag and the pin mean nothing there.
    let elsewhere = session(tenant, "rt", other_scenario, 1, step_a);
    let moved_away = s
        .write_session(&runtime_write(&elsewhere, SessionPrecondition::None))
        .await
        .expect("other scenario");
    assert_eq!(moved_away.session.pending_migration, None);
    assert_eq!(moved_away.session.pinned_version, None);
    assert_eq!(moved_away.session.created_at, x.created_at);
    assert_eq!(
        s.count_sessions_at_step(tenant, sid, 2, step_b).await.ok(),
        Some(0)
    );
}

/// The runtime keeps writing sessions while marking flags them: no flag is lost.
pub async fn runtime_writes_never_lose_a_flag(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let step_a = Uuid::new_v4();
    let plan_id = Uuid::new_v4();
    const SESSIONS: usize = 40;
    const WRITES_PER_SESSION: usize = 6;
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("race-{i:03}")).collect();
    for id in &ids {
        s.write_session(&runtime_write(
            &session(tenant, id, sid, 1, step_a),
            SessionPrecondition::None,
        ))
        .await
        .expect("seed");
    }
    let pos = SessionPosition {
        scenario_id: sid,
        version: 1,
        step_id: step_a,
    };
    let flag = pending(plan_id, step_a);
    let mut tasks = Vec::new();
    for writer in 0..2 {
        let (s, ids) = (Arc::clone(&s), ids.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..WRITES_PER_SESSION {
                for id in ids.iter().skip(writer) {
                    let mut x = session(tenant, id, sid, 1, step_a);
                    x.variables.insert("round".into(), serde_json::json!(round));
                    s.write_session(&runtime_write(&x, SessionPrecondition::None))
                        .await
                        .expect("runtime write");
                }
            }
            0usize
        }));
    }
    {
        let (s, ids, pos, flag) = (Arc::clone(&s), ids.clone(), pos.clone(), flag.clone());
        tasks.push(tokio::spawn(async move {
            let mut marked = 0;
            for id in &ids {
                if s.mark_session(tenant, id, &pos, &flag, "mark-a")
                    .await
                    .expect("mark")
                {
                    marked += 1;
                }
            }
            marked
        }));
    }
    let mut marked = 0;
    for task in tasks {
        marked += task.await.expect("join");
    }
    assert_eq!(marked, SESSIONS, "every session was at the step");
    let mut lost = 0;
    for id in &ids {
        let stored = s.get_session(tenant, id).await.expect("get").expect("s");
        if stored.pending_migration.as_ref() != Some(&flag) {
            lost += 1;
        }
        let writes = WRITES_PER_SESSION * if id == &ids[0] { 1 } else { 2 };
        assert_eq!(
            stored.revision as usize,
            1 + writes + 1,
            "every write counted once: seed, runtime writes, mark"
        );
    }
    assert_eq!(lost, 0, "flags lost to runtime writes");
}

pub async fn sessions_at_step_paging_and_count(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let (step_a, step_b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut expected = Vec::new();
    for i in 0..25 {
        let id = format!("sess-{i:03}");
        s.put_session(&session(tenant, &id, sid, 1, step_a))
            .await
            .expect("put");
        expected.push(id);
    }
    for i in 0..3 {
        s.put_session(&session(tenant, &format!("b-{i}"), sid, 1, step_b))
            .await
            .expect("put");
    }
    for i in 0..2 {
        s.put_session(&session(tenant, &format!("v2-{i}"), sid, 2, step_a))
            .await
            .expect("put");
    }
    // All steps of a version at once: empty steps left out, other versions
    // and other steps not asked for not counted.
    let empty = Uuid::new_v4();
    assert_eq!(
        s.count_sessions_at_steps(tenant, sid, 1, &[step_a, step_b, empty], 4)
            .await
            .expect("counts"),
        BTreeMap::from([(step_a, 25), (step_b, 3)])
    );
    assert_eq!(
        s.count_sessions_at_steps(tenant, sid, 1, &[step_b], 4)
            .await
            .expect("counts"),
        BTreeMap::from([(step_b, 3)])
    );
    expected.sort();
    let shards = s.step_index_shards();
    assert!(shards > 1, "the suite runs with a sharded step index");
    let shard_of = |id: &str| store::step_shard(id, shards);
    // Every shard of the step, paged: each session in its own shard, once,
    // ordered by session id within a shard.
    let mut seen = Vec::new();
    for shard in 0..shards {
        let mut q = StepQuery {
            tenant,
            scenario_id: sid,
            version: 1,
            step_id: step_a,
            shard,
            limit: 2,
            cursor: None,
        };
        let mut in_shard = Vec::new();
        loop {
            let page = s.sessions_at_step(&q).await.expect("page");
            assert!(page.sessions.len() <= 2);
            for x in &page.sessions {
                assert_eq!(x.active_step_id, step_a);
                assert_eq!(x.active_scenario_version, 1);
                assert_eq!(
                    shard_of(&x.session_id),
                    shard,
                    "{} in its shard",
                    x.session_id
                );
                // What marking and the scope filter read comes with the page.
                assert_eq!(x.channel, "whatsapp");
                assert_eq!(x.created_at, t0());
                assert_eq!(x.variables.get("email"), Some(&serde_json::json!("a@b.c")));
                in_shard.push(x.session_id.clone());
            }
            match page.next_cursor {
                Some(c) => {
                    assert!(!page.sessions.is_empty(), "a cursor follows a full page");
                    q.cursor = Some(c);
                }
                None => break,
            }
        }
        let mut sorted = in_shard.clone();
        sorted.sort();
        assert_eq!(in_shard, sorted, "ordered by session id within a shard");
        seen.extend(in_shard);
    }
    seen.sort();
    assert_eq!(seen, expected, "across shards, each session exactly once");
    let used: std::collections::BTreeSet<u32> = expected.iter().map(|id| shard_of(id)).collect();
    assert!(
        used.len() > 1,
        "25 sessions spread over more than one shard"
    );
    assert_eq!(
        s.count_sessions_at_step(tenant, sid, 1, step_a).await.ok(),
        Some(25)
    );
    assert_eq!(
        s.count_sessions_at_step(tenant, sid, 1, step_b).await.ok(),
        Some(3)
    );
    // A page exactly full has no cursor.
    let b_shard = shard_of("b-0");
    let in_b_shard = (0..3)
        .filter(|i| shard_of(&format!("b-{i}")) == b_shard)
        .count();
    let mut q = StepQuery {
        tenant,
        scenario_id: sid,
        version: 1,
        step_id: step_b,
        shard: b_shard,
        limit: in_b_shard,
        cursor: None,
    };
    let page = s.sessions_at_step(&q).await.expect("page");
    assert_eq!(page.sessions.len(), in_b_shard);
    assert!(page.next_cursor.is_none());
    // Moving a session updates the index: it leaves its shard of the old
    // step and appears in the same shard of the new one.
    let moved_shard = shard_of("sess-000");
    s.put_session(&session(tenant, "sess-000", sid, 1, step_b))
        .await
        .expect("move");
    assert_eq!(
        s.count_sessions_at_step(tenant, sid, 1, step_a).await.ok(),
        Some(24)
    );
    assert_eq!(
        s.count_sessions_at_step(tenant, sid, 1, step_b).await.ok(),
        Some(4)
    );
    let ids_at = |step: Uuid| {
        let s = Arc::clone(&s);
        async move {
            s.sessions_at_step(&StepQuery {
                tenant,
                scenario_id: sid,
                version: 1,
                step_id: step,
                shard: moved_shard,
                limit: 100,
                cursor: None,
            })
            .await
            .expect("page")
            .sessions
            .into_iter()
            .map(|x| x.session_id)
            .collect::<Vec<_>>()
        }
    };
    assert!(!ids_at(step_a).await.contains(&"sess-000".to_owned()));
    assert!(ids_at(step_b).await.contains(&"sess-000".to_owned()));
    // Cursors are bound to their query: its step and its shard.
    let busiest = (0..shards)
        .max_by_key(|sh| expected.iter().filter(|id| shard_of(id) == *sh).count())
        .expect("a shard");
    q.step_id = step_a;
    q.shard = busiest;
    q.limit = 1;
    let page = s.sessions_at_step(&q).await.expect("page");
    assert!(page.next_cursor.is_some());
    let mut wrong = q.clone();
    wrong.step_id = step_b;
    wrong.cursor = page.next_cursor.clone();
    assert!(matches!(
        s.sessions_at_step(&wrong).await,
        Err(StoreError::InvalidToken)
    ));
    let mut other_shard = q.clone();
    other_shard.shard = (busiest + 1) % shards;
    other_shard.cursor = page.next_cursor;
    assert!(matches!(
        s.sessions_at_step(&other_shard).await,
        Err(StoreError::InvalidToken)
    ));
}

/// What the forecast reads: whole sessions through the step index (history,
/// checksum and all, which DynamoDB's index does not project), and sessions
/// by id in batches, in the order asked, missing and other tenants' left out.
pub async fn whole_sessions_and_reads_by_id(s: Arc<dyn Store>) {
    let (tenant, other_tenant) = (Uuid::new_v4(), Uuid::new_v4());
    let sid = Uuid::new_v4();
    let step = Uuid::new_v4();
    // More than one BatchGetItem of 100.
    let ids: Vec<String> = (0..130).map(|i| format!("w-{i:03}")).collect();
    for id in &ids {
        s.put_session(&session(tenant, id, sid, 1, step))
            .await
            .expect("put");
    }
    s.put_session(&session(other_tenant, "w-000x", sid, 1, step))
        .await
        .expect("put");
    let mut asked: Vec<String> = ids.iter().rev().cloned().collect();
    asked.insert(5, "missing".into());
    asked.push("w-000x".into());
    let found = s.get_sessions(tenant, &asked).await.expect("by id");
    let expected: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(
        found
            .iter()
            .map(|x| x.session_id.clone())
            .collect::<Vec<_>>(),
        expected
    );
    assert!(found.iter().all(|x| x.tenant_id == tenant));
    let written = session(tenant, "w-129", sid, 1, step);
    assert_eq!(found[0].step_history, written.step_history);
    assert_eq!(found[0].variables, written.variables);

    let mut whole = Vec::new();
    for shard in 0..s.step_index_shards() {
        let mut cursor = None;
        loop {
            let page = s
                .whole_sessions_at_step(&StepQuery {
                    tenant,
                    scenario_id: sid,
                    version: 1,
                    step_id: step,
                    shard,
                    limit: 7,
                    cursor: cursor.take(),
                })
                .await
                .expect("page");
            for x in &page.sessions {
                assert_eq!(x.step_history.len(), 1, "the history comes whole");
                assert_eq!(x.scenario_checksum.as_deref(), Some("0fec4b11476f4c1e"));
                assert_eq!(x.customer_id.as_deref(), Some("cust-1"));
            }
            whole.extend(page.sessions.into_iter().map(|x| x.session_id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    whole.sort();
    assert_eq!(whole, ids);
}
