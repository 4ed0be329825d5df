//! One queue message end to end: the plan from the cache, the page (read ahead
//! when possible), the marks, the ledger, and the continuation.

use chrono::{DateTime, Utc};
use store::Store;

use super::contexts::PlanContexts;
use super::error::{MarkingError, MarkingResult};
use super::ledger::record_page;
use super::page::{MarkingContext, mark_read_page, read_page, settle_marking_page};
use super::protocol::{MarkMessage, PageTurn, page_turn};

/// Process one queue message: mark its page, record it, and return the
/// continuation to enqueue — only when this call recorded the page, so that a
/// chain is walked once however often its messages are delivered.
pub async fn process_message(
    store: &dyn Store,
    contexts: &PlanContexts,
    message: &MarkMessage,
    page_size: usize,
    concurrency: usize,
    now: DateTime<Utc>,
) -> MarkingResult<Option<MarkMessage>> {
    let key = (message.tenant_id, message.plan_id);
    let prepared = contexts
        .deploying(store, message.tenant_id, message.plan_id)
        .await?;
    // The cached plan's status may be stale: a paused plan's messages are
    // dropped here (a resume walks on from the ledger), one page at most after
    // the pause.
    let status = store
        .get_plan_header(message.tenant_id, message.plan_id)
        .await?
        .map(|plan| plan.status);
    let turn = page_turn(&message.chain, status);
    if turn == PageTurn::Stop {
        contexts.forget(key);
        return Err(match status {
            None => MarkingError::PlanGone {
                plan_id: message.plan_id,
            },
            Some(status) => MarkingError::PlanNotDeploying {
                plan_id: message.plan_id,
                status,
            },
        });
    }
    let plan = &prepared.plan;
    let ctx = MarkingContext::with_names(
        plan,
        prepared.step_names.clone(),
        now,
        page_size,
        concurrency,
    );
    if turn == PageTurn::Settle {
        // A marking chain a withdrawal cut short: its page is settled and the
        // chain ends (`withdrawn` waits for every chain).
        let outcome =
            settle_marking_page(store, &ctx, &message.chain, message.cursor.as_deref()).await?;
        record_page(store, plan, message, &outcome, now).await?;
        contexts.forget(key);
        return Ok(None);
    }
    let page = match prepared.take_read_ahead(&message.page_id()) {
        Some(page) => page,
        None => read_page(store, &ctx, &message.chain, message.cursor.clone()).await?,
    };
    // Read the next page while this one is written (its cursor is known now),
    // so that the chain's next message — usually handled by this same process —
    // starts writing at once. Staleness is harmless: every mark is conditional.
    let read_next = async {
        match &page.next_cursor {
            Some(cursor) => {
                Some(read_page(store, &ctx, &message.chain, Some(cursor.clone())).await)
            }
            None => None,
        }
    };
    let (outcome, ahead) = futures::join!(
        mark_read_page(
            store,
            &ctx,
            &message.chain,
            message.cursor.as_deref(),
            &page
        ),
        read_next
    );
    let outcome = outcome?;
    // The page's claim says where the chain goes next: the cursor of the page as
    // its first delivery read it (usually this one's).
    let next = outcome.next_cursor.clone().map(|cursor| MarkMessage {
        cursor: Some(cursor),
        ..message.clone()
    });
    if let (Some(next), Some(Ok(ahead))) = (&next, ahead)
        && next.cursor == page.next_cursor
    {
        // A failed read ahead costs nothing: the next message reads again.
        prepared.keep_read_ahead(next.page_id(), ahead);
    }
    drop(page);
    let recorded = record_page(store, plan, message, &outcome, now).await?;
    if !recorded {
        // A redelivery, or a second walk of this chain (a resumption racing a
        // slow worker): whoever recorded the page carries the chain on, so this
        // walk ends here. Should that walk have died before enqueueing its
        // continuation, the chain's lease runs out and the sweep resumes it
        // from the ledger.
        contexts.forget(key);
        return Ok(None);
    }
    if outcome.next_cursor.is_none() {
        // The plan may have just finished; later messages must see it.
        contexts.forget(key);
    }
    Ok(next)
}
