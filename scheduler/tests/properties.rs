//! Property tests of the allocator: for any sequence of calls, every agent's resources are
//! exactly its available pool plus its outstanding offers plus its running tasks (so nothing
//! is ever offered twice or over-committed), and the same calls give the same offers.

use std::collections::BTreeMap;

use proptest::prelude::*;
use scheduler::{
    allocator::{Allocator, AllocatorConfig, Offer},
    pools::Allotment,
    resources::{Ranges, Resources},
};

#[derive(Debug, Clone)]
enum Op {
    Allocate,
    /// Accept offer (by position among outstanding ones) using a fraction of its cpus.
    Accept {
        offer: usize,
        tenths: u8,
        refuse_ms: u64,
    },
    Decline {
        offer: usize,
        refuse_ms: u64,
    },
    /// A running task (by position) ends.
    Finish {
        task: usize,
    },
    Suppress {
        framework: usize,
    },
    Revive {
        framework: usize,
    },
    Disconnect {
        framework: usize,
    },
    Reconnect {
        framework: usize,
    },
    Tick {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Allocate),
        3 => (0..8usize, 0..=10u8, 0..3000u64).prop_map(|(offer, tenths, refuse_ms)| Op::Accept { offer, tenths, refuse_ms }),
        2 => (0..8usize, 0..3000u64).prop_map(|(offer, refuse_ms)| Op::Decline { offer, refuse_ms }),
        2 => (0..16usize).prop_map(|task| Op::Finish { task }),
        1 => (0..3usize).prop_map(|framework| Op::Suppress { framework }),
        1 => (0..3usize).prop_map(|framework| Op::Revive { framework }),
        1 => (0..3usize).prop_map(|framework| Op::Disconnect { framework }),
        1 => (0..3usize).prop_map(|framework| Op::Reconnect { framework }),
        2 => (1..2000u64).prop_map(|ms| Op::Tick { ms }),
    ]
}

fn agent_total(i: usize) -> Allotment {
    let mut r =
        Resources::from_scalars([("cpus", 2.0 + i as f64), ("mem", 1024.0 * (1 + i) as f64)]);
    r.add_ranges("ports", &Ranges::new([(31000, 31009 + i as u64)]));
    let mut total = Allotment::unreserved(r);
    if i == 0 {
        total.add("r1", &Resources::from_scalars([("cpus", 1.0)]));
    }
    total
}

const FRAMEWORKS: [(&str, &str); 3] = [("f0", "r0"), ("f1", "r1"), ("f2", "r1")];

struct World {
    alloc: Allocator,
    tasks: Vec<(String, String, Allotment)>,
    now: u64,
    offers_made: Vec<Offer>,
}

impl World {
    fn new() -> Self {
        let mut alloc = Allocator::new(AllocatorConfig {
            offer_timeout_ms: Some(3000),
            ..AllocatorConfig::default()
        });
        for i in 0..4 {
            alloc.add_agent(&format!("a{i}"), agent_total(i));
        }
        for (id, role) in FRAMEWORKS {
            alloc.add_framework(id, role, true);
        }
        Self {
            alloc,
            tasks: Vec::new(),
            now: 0,
            offers_made: Vec::new(),
        }
    }

    fn outstanding(&self) -> Vec<Offer> {
        let mut offers: Vec<Offer> = self.alloc.offers().cloned().collect();
        offers.sort_by_key(|o| o.id);
        offers
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Allocate => {
                let made = self.alloc.allocate(self.now);
                self.offers_made.extend(made);
            }
            Op::Accept {
                offer,
                tenths,
                refuse_ms,
            } => {
                let Some(o) = self.outstanding().get(offer).cloned() else {
                    return;
                };
                let (agent, offered) = self
                    .alloc
                    .take_offers(&o.framework, &[o.id])
                    .expect("own offer");
                let merged = offered.merged();
                let mut used = Resources::from_scalars([(
                    "cpus",
                    merged.get("cpus") * f64::from(tenths) / 10.0,
                )]);
                if let Some(port) = merged.ranges("ports").take(1) {
                    used.add_ranges("ports", &port);
                }
                let pool = offered
                    .pools()
                    .next()
                    .map(|(p, _)| p.to_owned())
                    .expect("non-empty");
                let mut task = Allotment::default();
                task.add(&pool, &used);
                let task = if offered.contains(&task) {
                    task
                } else {
                    Allotment::default()
                };
                self.alloc
                    .settle(&o.framework, &agent, &offered, &task, refuse_ms, self.now);
                if !task.is_empty() {
                    self.tasks.push((o.framework, agent, task));
                }
            }
            Op::Decline { offer, refuse_ms } => {
                let Some(o) = self.outstanding().get(offer).cloned() else {
                    return;
                };
                self.alloc
                    .decline(&o.framework, &[o.id], refuse_ms, self.now)
                    .expect("own offer");
            }
            Op::Finish { task } => {
                if task < self.tasks.len() {
                    let (framework, agent, resources) = self.tasks.remove(task);
                    self.alloc.recover(&framework, &agent, &resources);
                }
            }
            Op::Suppress { framework } => self.alloc.suppress(FRAMEWORKS[framework].0),
            Op::Revive { framework } => self.alloc.revive(FRAMEWORKS[framework].0),
            Op::Disconnect { framework } => {
                self.alloc
                    .set_framework_active(FRAMEWORKS[framework].0, false);
            }
            Op::Reconnect { framework } => {
                self.alloc
                    .set_framework_active(FRAMEWORKS[framework].0, true);
            }
            Op::Tick { ms } => {
                self.now += ms;
                self.alloc.expire(self.now);
            }
        }
    }

    fn check_conservation(&self) {
        for i in 0..4 {
            let agent = format!("a{i}");
            let mut accounted = self.alloc.available(&agent).cloned().unwrap_or_default();
            for offer in self.alloc.offers().filter(|o| o.agent == agent) {
                accounted = accounted.plus(&offer.resources);
            }
            for (_, a, task) in &self.tasks {
                if *a == agent {
                    accounted = accounted.plus(task);
                }
            }
            assert_eq!(
                accounted,
                agent_total(i),
                "agent {agent}: available + offers + tasks != total"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn resources_are_conserved_and_never_over_committed(ops in prop::collection::vec(op(), 1..80)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
            world.check_conservation();
        }
    }

    #[test]
    fn the_same_calls_give_the_same_offers(ops in prop::collection::vec(op(), 1..60)) {
        let mut first = World::new();
        let mut second = World::new();
        for op in &ops {
            first.apply(op);
            second.apply(op);
        }
        prop_assert_eq!(&first.offers_made, &second.offers_made);
        let shares = |w: &World| -> BTreeMap<&str, u64> {
            FRAMEWORKS.iter().map(|(f, _)| (*f, w.alloc.framework_share(f).to_bits())).collect()
        };
        prop_assert_eq!(shares(&first), shares(&second));
    }
}
