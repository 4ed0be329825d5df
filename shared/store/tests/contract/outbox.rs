//! The lifecycle events' outbox: every plan change writes its plan's entry in
//! the same atomic write, and a sender settles it without ever losing a change
//! that landed after it read the entry.

use std::sync::Arc;

use planning::PlanStatus;
use store::{OutboxEntry, Store};
use uuid::Uuid;

use super::fixtures::*;

async fn entry_of(s: &Arc<dyn Store>, tenant: Uuid, plan_id: Uuid) -> Option<OutboxEntry> {
    let entry = s.get_outbox(tenant, plan_id).await.expect("get outbox");
    let listed: Vec<OutboxEntry> = s
        .list_outbox(100)
        .await
        .expect("list outbox")
        .into_iter()
        .filter(|e| (e.tenant, e.plan_id) == (tenant, plan_id))
        .collect();
    assert_eq!(
        listed,
        entry.into_iter().collect::<Vec<_>>(),
        "listed as read"
    );
    entry
}

pub async fn the_outbox_holds_each_change_until_its_events_are_settled(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    s.create_scenario(&scenario(tenant, sid, 1, 3))
        .await
        .expect("scenario");
    let p = plan(tenant, sid, 1, 2, t0(), 1);
    s.create_plan(&p, &scenario(tenant, sid, 2, 4))
        .await
        .expect("plan");
    let created = entry_of(&s, tenant, p.id).await.expect("created: an entry");
    assert_eq!((created.revision, created.published), (p.revision, 0));

    let approved = s
        .transition_plan(&transition(
            &p,
            PlanStatus::Pending,
            p.revision,
            PlanStatus::Approved,
        ))
        .await
        .expect("approve");
    let entry = entry_of(&s, tenant, p.id)
        .await
        .expect("approved: an entry");
    assert_eq!((entry.revision, entry.published), (approved.revision, 0));

    // Sent up to the approval; a late sender never moves it back.
    s.settle_outbox(&entry, approved.revision, false)
        .await
        .unwrap();
    s.settle_outbox(&entry, 0, false).await.unwrap();
    let settled = entry_of(&s, tenant, p.id).await.expect("still there");
    assert_eq!(settled.published, approved.revision);

    // A change lands after the entry was read: settling the stale entry as
    // finished keeps the entry (the change is still to be sent).
    let rejected = s
        .transition_plan(&transition(
            &approved,
            PlanStatus::Approved,
            approved.revision,
            PlanStatus::Rejected,
        ))
        .await
        .expect("reject");
    s.settle_outbox(&entry, approved.revision, true)
        .await
        .unwrap();
    let kept = entry_of(&s, tenant, p.id)
        .await
        .expect("kept for the rejection");
    assert_eq!(
        (kept.revision, kept.published),
        (rejected.revision, approved.revision)
    );

    // Settled as read: gone, and a second settle (a redelivery) is harmless.
    s.settle_outbox(&kept, rejected.revision, true)
        .await
        .unwrap();
    assert_eq!(entry_of(&s, tenant, p.id).await, None);
    s.settle_outbox(&kept, rejected.revision, true)
        .await
        .unwrap();
    s.settle_outbox(&kept, rejected.revision + 1, false)
        .await
        .unwrap();
    assert_eq!(entry_of(&s, tenant, p.id).await, None, "not brought back");

    // A change after the entry went starts a new one that counts everything
    // before it as sent (the history is not sent twice).
    let other = plan(tenant, sid, 1, 3, t0(), 1);
    s.create_plan(&other, &scenario(tenant, sid, 3, 4))
        .await
        .expect("second plan");
    let first = entry_of(&s, tenant, other.id).await.unwrap();
    s.settle_outbox(&first, other.revision, true).await.unwrap();
    assert_eq!(entry_of(&s, tenant, other.id).await, None);
    let approved = s
        .transition_plan(&transition(
            &other,
            PlanStatus::Pending,
            other.revision,
            PlanStatus::Approved,
        ))
        .await
        .expect("approve the second plan");
    let again = entry_of(&s, tenant, other.id).await.expect("a new entry");
    assert_eq!(
        (again.revision, again.published),
        (approved.revision, other.revision)
    );

    // Another tenant's plan has its own entry; settling one leaves the other.
    let stranger = Uuid::new_v4();
    s.create_scenario(&scenario(stranger, sid, 1, 3))
        .await
        .expect("stranger's scenario");
    let theirs = plan(stranger, sid, 1, 2, t0(), 1);
    s.create_plan(&theirs, &scenario(stranger, sid, 2, 4))
        .await
        .expect("stranger's plan");
    s.settle_outbox(&again, approved.revision, true)
        .await
        .unwrap();
    assert!(entry_of(&s, stranger, theirs.id).await.is_some());
    assert_eq!(s.get_outbox(stranger, other.id).await.unwrap(), None);
}

/// Activation writes the entry in its own transaction too.
pub async fn activation_and_its_failures_and_the_outbox(s: Arc<dyn Store>) {
    let tenant = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let (p, activation) = super::rollout::approved_v1_to_v2(&s, tenant, sid, 100).await;
    let before = entry_of(&s, tenant, p.id).await.unwrap();
    s.settle_outbox(&before, before.revision, true)
        .await
        .unwrap();
    // A refused activation (wrong revision) writes no entry.
    let mut stale = activation.clone();
    stale.expected_revision += 5;
    assert!(s.activate_plan(&stale).await.is_err());
    assert_eq!(entry_of(&s, tenant, p.id).await, None);
    let deployed = s.activate_plan(&activation).await.expect("activate");
    let entry = entry_of(&s, tenant, p.id)
        .await
        .expect("activation's entry");
    assert_eq!(
        (entry.revision, entry.published),
        (deployed.revision, before.revision)
    );
    let record = deployed
        .transitions
        .last()
        .expect("the activation's record");
    assert_eq!(
        (record.to, record.revision),
        (PlanStatus::Deploying, deployed.revision)
    );
}
