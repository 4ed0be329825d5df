//! [`Client`]'s calls of the sessions group: record, read, reconcile, report an outcome.

use super::{Call, Client, Precondition, Revisioned};
use crate::error::Error;
use crate::model::*;
use crate::operations as ops;

impl Client {
    /// `PUT /sessions/{id}`: record the session's position, history and
    /// variables. `pending_migration` and `pinned_version` are the service's
    /// and are kept whatever is sent.
    pub async fn put_session(
        &self,
        session_id: &str,
        session: &SessionInput,
        precondition: Precondition,
    ) -> Result<Revisioned<Session>, Error> {
        let mut call = Call::new(&ops::PUT_SESSION, &[("session_id", session_id)]).json(session)?;
        match precondition {
            Precondition::None => {}
            Precondition::Revision(r) => call
                .headers
                .push((http::header::IF_MATCH, format!("\"{r}\""))),
            Precondition::Exists => call.headers.push((http::header::IF_MATCH, "*".into())),
            Precondition::Absent => call.headers.push((http::header::IF_NONE_MATCH, "*".into())),
        }
        self.send(call).await?.revisioned()
    }

    /// `GET /sessions/{id}`, with its revision.
    pub async fn get_session(&self, session_id: &str) -> Result<Revisioned<Session>, Error> {
        self.send(Call::new(&ops::GET_SESSION, &[("session_id", session_id)]))
            .await?
            .revisioned()
    }

    /// `POST /sessions/{id}/reconcile`, as sent: no interpretation. A runtime
    /// wants [`Client::reconcile_on_message`].
    pub async fn reconcile(
        &self,
        session_id: &str,
        request: &ReconcileRequest,
    ) -> Result<Revisioned<ReconciliationResult>, Error> {
        let call =
            Call::new(&ops::RECONCILE_SESSION, &[("session_id", session_id)]).json(request)?;
        self.send(call).await?.revisioned()
    }

    /// `POST /sessions/{id}/outcome`: how the session fared after its last
    /// migration. Retried like reads: a repeat is never counted twice (it
    /// answers `counted: false`).
    pub async fn report_outcome(
        &self,
        session_id: &str,
        request: &OutcomeRequest,
    ) -> Result<OutcomeAnswer, Error> {
        let call = Call::new(&ops::REPORT_OUTCOME, &[("session_id", session_id)]).json(request)?;
        self.send(call).await?.json()
    }
}
