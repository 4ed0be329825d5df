//! `marking_bench --withdraw yes`: the withdrawal of a deployment the bench
//! just marked, timed like the marking; and the status poll both passes use.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::router_call::{Error, call};

/// `--withdraw yes`: take the deployment back with the same workers and print
/// the withdrawal's rate (deploy call to `withdrawn`, which walks every
/// from-version step) beside the marking's, the same sessions in the same run.
pub async fn withdraw_pass(
    app: &axum::Router,
    tenant: Uuid,
    plan_id: &str,
    n: usize,
    marking: Duration,
    workers: &mut [tokio::process::Child],
) -> Result<(), Error> {
    let started = Instant::now();
    let reply = call(
        app,
        tenant,
        "POST",
        &format!("/migration-plans/{plan_id}/withdraw"),
        None,
    )
    .await?;
    if reply.0 != 202 {
        return Err(format!("withdraw: expected 202, got {}: {}", reply.0, reply.1).into());
    }
    let status = wait_for_status(app, tenant, plan_id, "withdrawn", workers).await?;
    let elapsed = started.elapsed();
    let withdrawn = status["flags_withdrawn"]
        .as_u64()
        .ok_or("flags_withdrawn")?;
    if withdrawn != n as u64 {
        return Err(format!("withdrew {withdrawn} of {n} flags").into());
    }
    let (marking_rate, withdrawal_rate) = (
        n as f64 / marking.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
    );
    println!(
        "withdrawal: {withdrawn} flags cleared in {:.1} s = {withdrawal_rate:.0}/s; marking the same sessions {marking_rate:.0}/s; withdrawal/marking {:.2}",
        elapsed.as_secs_f64(),
        withdrawal_rate / marking_rate
    );
    Ok(())
}

/// Poll the plan's deployment status every 50 ms until it is `status` (the
/// clock a caller reads after this stops a little late, never early), failing
/// as soon as a worker process exits.
pub async fn wait_for_status(
    app: &axum::Router,
    tenant: Uuid,
    plan_id: &str,
    status: &str,
    workers: &mut [tokio::process::Child],
) -> Result<serde_json::Value, Error> {
    loop {
        let reply = call(
            app,
            tenant,
            "GET",
            &format!("/migration-plans/{plan_id}/deployment-status"),
            None,
        )
        .await?;
        if reply.1["status"] == status {
            return Ok(reply.1);
        }
        for worker in workers.iter_mut() {
            if let Some(code) = worker.try_wait()? {
                return Err(format!("a worker exited early: {code}").into());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
