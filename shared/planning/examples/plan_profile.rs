//! Runs compute_plan in a loop for profiling (`perf record`).
use planning::plan::{SessionCounts, compute_plan};
use planning::testkit::{conversation, edit};

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let edits: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let iters: usize = std::env::args()
        .nth(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let v1 = conversation(steps - edits, 42);
    let v2 = edit(&v1, edits, 7);
    let counts: SessionCounts = v1.steps.iter().map(|s| (s.id, 3)).collect();
    let start = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..iters {
        n += compute_plan(&v1, &v2, &counts).summary.warnings.len();
    }
    eprintln!("{:?} per plan ({n})", start.elapsed() / iters as u32);
}
