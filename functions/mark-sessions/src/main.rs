//! The marking worker Lambda: each SQS message names one page of one chain.
//! Messages are handled on their own; failures are reported per message
//! (`batchItemFailures`) so one bad page never fails the batch. The batch logic
//! is `api::worker::handle_sqs_event`, shared with `migrations serve --queue sqs`.

use lambda_runtime::{Error, LambdaEvent, service_fn};

use api::worker::{SqsEvent, handle_sqs_event};

#[tokio::main]
async fn main() -> Result<(), Error> {
    api::telemetry::init(true);
    api::metrics::emf::install();
    let config = api::Config::from_env()?;
    let state = api::aws::lambda_state(config).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let state = &state;
        async move {
            let answer = handle_sqs_event(state, &event.payload).await;
            api::metrics::emf::flush();
            Ok::<_, Error>(answer)
        }
    }))
    .await
}
