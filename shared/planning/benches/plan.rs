//! The plan-generation targets, on generated conversation-like scenarios:
//! 200 steps with 5 edited steps (< 1 ms), 10,000 steps with 10 edited steps (< 100 ms);
//! the figures are in docs/benchmarks.md.
//! The `…_in_place` groups edit steps in place (same ids, other content: edited steps,
//! docs/design.md) on top of the structural edits.
//!
//! `cargo bench -p planning --bench plan`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use planning::diff::diff_scenarios;
use planning::plan::{SessionCounts, compute_plan};
use planning::testkit::{EditKind, Rng, apply_edit, conversation, edit};

fn bench_plan(c: &mut Criterion) {
    for (steps, edits) in [(200usize, 5usize), (10_000, 10)] {
        // Same shapes as examples/plan_fixtures.rs: V2 stays within the step limit.
        let v1 = conversation(steps - edits, 42);
        let v2 = edit(&v1, edits, 7);
        // Every V1 step holds a few sessions, as in production.
        let counts: SessionCounts = v1.steps.iter().map(|s| (s.id, 3)).collect();
        let mut group = c.benchmark_group(format!("plan_{steps}_steps_{edits}_edits"));
        if steps > 1_000 {
            group.sample_size(20);
        }
        group.bench_function("compute_plan", |b| {
            b.iter(|| compute_plan(black_box(&v1), black_box(&v2), black_box(&counts)))
        });
        group.bench_function("diff_only", |b| {
            b.iter(|| diff_scenarios(black_box(&v1), black_box(&v2)))
        });
        group.finish();
    }
    for (steps, edits) in [(200usize, 5usize), (10_000, 10)] {
        let v1 = conversation(steps - edits, 42);
        let mut v2 = edit(&v1, edits, 7);
        let mut rng = Rng::new(11);
        for n in 0..edits {
            apply_edit(&mut v2, EditKind::EditContent, &mut rng, n);
        }
        let counts: SessionCounts = v1.steps.iter().map(|s| (s.id, 3)).collect();
        let mut group = c.benchmark_group(format!("plan_{steps}_steps_{edits}_edits_in_place"));
        if steps > 1_000 {
            group.sample_size(20);
        }
        group.bench_function("compute_plan", |b| {
            b.iter(|| compute_plan(black_box(&v1), black_box(&v2), black_box(&counts)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
