//! The EventBridge sink: `PutEvents` to `EVENT_BUS_NAME`, source
//! `focal.migrations`, the endpoint from the SDK's own
//! `AWS_ENDPOINT_URL_EVENTBRIDGE` (or `AWS_ENDPOINT_URL`).

use async_trait::async_trait;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::primitives::DateTime as SdkTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use backon::{ExponentialBuilder, Retryable};
use planning::events::{EVENT_SOURCE, LifecycleEvent};

use super::{EventSink, SendError};

pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        EventBridgeSink {
            client,
            bus: bus.into(),
        }
    }

    fn entry(&self, event: &LifecycleEvent) -> Result<PutEventsRequestEntry, SendError> {
        let detail = serde_json::to_string(&event.detail)
            .map_err(|e| SendError(format!("detail not serialisable: {e}")))?;
        Ok(PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(&event.detail_type)
            .detail(detail)
            .event_bus_name(&self.bus)
            .time(SdkTime::from_millis(event.detail.at.timestamp_millis()))
            .build())
    }

    /// One `PutEvents`; an entry EventBridge refused fails the whole call (the
    /// batch is sent again later, and consumers drop the repeats by `event_id`).
    async fn put(&self, entries: &[PutEventsRequestEntry]) -> Result<(), SendError> {
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries.to_vec()))
            .send()
            .await
            .map_err(|e| SendError(DisplayErrorContext(&e).to_string()))?;
        if out.failed_entry_count() > 0 {
            let codes: Vec<&str> = out
                .entries()
                .iter()
                .filter_map(|entry| entry.error_code())
                .collect();
            return Err(SendError(format!(
                "{} of {} refused ({})",
                out.failed_entry_count(),
                entries.len(),
                codes.join(", ")
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn send(&self, events: &[LifecycleEvent]) -> Result<(), SendError> {
        let entries = events
            .iter()
            .map(|event| self.entry(event))
            .collect::<Result<Vec<_>, _>>()?;
        // A few quick tries: the caller is an operator's call or the sweep,
        // and whatever is not sent now is sent by the next sweep.
        let backoff = ExponentialBuilder::default()
            .with_min_delay(std::time::Duration::from_millis(50))
            .with_max_times(3);
        (|| self.put(&entries)).retry(backoff).await
    }
}
