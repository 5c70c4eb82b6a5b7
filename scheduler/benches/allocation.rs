//! Allocation cycle time on the Mesos benchmark grid (agents / frameworks): 1k/100, 5k/500,
//! 10k/1k, 20k/2k. Run with `cargo bench -p scheduler --bench allocation`.
//!
//! Every agent has 24 cpus, 96 GB of memory, 1 TB of disk and ports 31000-32000. Every
//! framework has its own role (the hierarchical case: roles are sorted, then frameworks).
//! Before measuring, each framework already runs tasks on some agents, so shares differ.
//! Then, per grid point:
//! - **full cycle**: one cycle offering every agent (all are free);
//! - **decline cycles**: every framework declines everything with a long filter and the next
//!   cycle runs: each agent must skip the frameworks that refused it (Mesos's
//!   `DeclineOffers` benchmark); the mean of 5 such cycles.

use std::time::Instant;

use scheduler::{
    allocator::{Allocator, AllocatorConfig},
    pools::Allotment,
    resources::{Ranges, Resources},
};

fn agent() -> Allotment {
    let mut r = Resources::from_scalars([("cpus", 24.0), ("mem", 96_000.0), ("disk", 1_000_000.0)]);
    r.add_ranges("ports", &Ranges::new([(31000, 32000)]));
    Allotment::unreserved(r)
}

fn task() -> Allotment {
    Allotment::unreserved(Resources::from_scalars([("cpus", 1.0), ("mem", 1024.0)]))
}

fn point(agents: usize, frameworks: usize) -> (f64, f64, usize) {
    let mut alloc = Allocator::new(AllocatorConfig {
        offer_timeout_ms: None,
        ..AllocatorConfig::default()
    });
    for a in 0..agents {
        alloc.add_agent(&format!("agent-{a}"), agent());
    }
    for f in 0..frameworks {
        let id = format!("framework-{f}");
        alloc.add_framework(&id, &format!("role-{f}"), true);
        // Framework f runs (f % 7) + 1 tasks on agents spread over the cluster.
        for t in 0..(f % 7) + 1 {
            let a = (f * 31 + t * 7919) % agents;
            alloc.restore(&id, &format!("role-{f}"), &format!("agent-{a}"), &task());
        }
    }
    let started = Instant::now();
    let offers = alloc.allocate(0);
    let full = started.elapsed().as_secs_f64();
    let offered = offers.len();
    let mut outstanding = offers;
    let mut declines = Vec::new();
    for cycle in 1..=5u64 {
        for offer in &outstanding {
            alloc
                .decline(&offer.framework, &[offer.id], 3_600_000, cycle)
                .expect("own offer");
        }
        let started = Instant::now();
        outstanding = alloc.allocate(cycle);
        declines.push(started.elapsed().as_secs_f64());
    }
    let mean = declines.iter().sum::<f64>() / declines.len() as f64;
    (full, mean, offered)
}

fn main() {
    // Mesos 1.7.1's published allocation cycle times, in seconds (none published at 1k/100).
    let grid: [(usize, usize, Option<f64>); 4] = [
        (1_000, 100, None),
        (5_000, 500, Some(0.5)),
        (10_000, 1_000, Some(1.45)),
        (20_000, 2_000, Some(4.4)),
    ];
    println!(
        "| agents / frameworks | full cycle | decline cycle (mean of 5) | Mesos 1.7.1 | speed-up |"
    );
    println!("|---|---|---|---|---|");
    for (agents, frameworks, mesos) in grid {
        let (full, decline, offered) = point(agents, frameworks);
        assert_eq!(offered, agents, "every agent is offered in the full cycle");
        let worst = full.max(decline);
        let (mesos, speedup) = match mesos {
            Some(m) => (format!("{m:.2} s"), format!("{:.0}x", m / worst)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "| {agents} / {frameworks} | {:.1} ms | {:.1} ms | {mesos} | {speedup} |",
            full * 1e3,
            decline * 1e3
        );
    }
}
