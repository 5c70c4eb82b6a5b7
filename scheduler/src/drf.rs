//! Dominant resource fairness: the next allocation goes to the client (framework or role)
//! whose dominant share, divided by its weight, is the smallest; ties go to the smaller id,
//! so the same inputs always give the same order.

use std::collections::BTreeMap;

use crate::resources::Resources;

/// One client's standing.
#[derive(Debug, Clone, PartialEq)]
struct Client {
    weight: f64,
    allocated: Resources,
}

/// Allocations of a pool among weighted clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Drf {
    total: Resources,
    clients: BTreeMap<String, Client>,
}

impl Drf {
    /// A pool of `total` resources with no clients.
    pub fn new(total: Resources) -> Self {
        Self {
            total,
            clients: BTreeMap::new(),
        }
    }

    /// Adds a client with `weight` (non-positive weights count as 1).
    pub fn add_client(&mut self, id: &str, weight: f64) {
        let weight = if weight.is_finite() && weight > 0.0 {
            weight
        } else {
            1.0
        };
        self.clients.entry(id.to_owned()).or_insert(Client {
            weight,
            allocated: Resources::default(),
        });
    }

    /// What is not allocated.
    pub fn available(&self) -> Resources {
        self.clients
            .values()
            .fold(self.total.clone(), |left, c| left.minus(&c.allocated))
    }

    /// The client's dominant share (not weighted).
    pub fn dominant_share(&self, id: &str) -> f64 {
        self.clients
            .get(id)
            .map_or(0.0, |c| c.allocated.dominant_share(&self.total))
    }

    /// Clients in the order DRF serves them: smallest weighted dominant share first.
    pub fn order(&self) -> Vec<&str> {
        let mut order: Vec<(&str, f64)> = self
            .clients
            .iter()
            .map(|(id, c)| {
                (
                    id.as_str(),
                    c.allocated.dominant_share(&self.total) / c.weight,
                )
            })
            .collect();
        order.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
        order.into_iter().map(|(id, _)| id).collect()
    }

    /// Records an allocation to `id`; false (and nothing changes) when it does not fit or the
    /// client is unknown.
    pub fn allocate(&mut self, id: &str, resources: &Resources) -> bool {
        if !self.available().contains(resources) {
            return false;
        }
        match self.clients.get_mut(id) {
            Some(client) => {
                client.allocated = client.allocated.plus(resources);
                true
            }
            None => false,
        }
    }

    /// Returns resources from `id` to the pool.
    pub fn release(&mut self, id: &str, resources: &Resources) {
        if let Some(client) = self.clients.get_mut(id) {
            client.allocated = client.allocated.minus(resources);
        }
    }

    /// Progressive filling: repeatedly gives the first client in DRF order whose next task
    /// fits one more task, until no task fits. Returns the tasks each client got.
    pub fn fill(&mut self, demands: &BTreeMap<String, Resources>) -> BTreeMap<String, u32> {
        let mut tasks: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            let order: Vec<String> = self.order().into_iter().map(str::to_owned).collect();
            let next = order.into_iter().find(|id| {
                demands
                    .get(id)
                    .is_some_and(|d| !d.is_empty() && self.available().contains(d))
            });
            let Some(id) = next else { return tasks };
            let demand = &demands[&id];
            self.allocate(&id, demand);
            *tasks.entry(id).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(cpus: f64, mem: f64) -> Resources {
        Resources::from_scalars([("cpus", cpus), ("mem", mem)])
    }

    /// The worked example of Ghodsi et al. (NSDI 2011, section 4): 9 CPUs and 18 GB shared by
    /// user A with tasks of <1 CPU, 4 GB> and user B with tasks of <3 CPU, 1 GB>.
    #[test]
    fn the_papers_example_gives_three_and_two_tasks_at_equal_dominant_shares() {
        let mut drf = Drf::new(r(9.0, 18.0));
        drf.add_client("A", 1.0);
        drf.add_client("B", 1.0);
        let demands =
            BTreeMap::from([("A".to_owned(), r(1.0, 4.0)), ("B".to_owned(), r(3.0, 1.0))]);
        let tasks = drf.fill(&demands);
        assert_eq!(
            tasks,
            BTreeMap::from([("A".to_owned(), 3), ("B".to_owned(), 2)])
        );
        for client in ["A", "B"] {
            assert!(
                (drf.dominant_share(client) - 2.0 / 3.0).abs() < 1e-9,
                "{client}"
            );
        }
        // 9 CPUs and 14 GB are used: the CPUs are exhausted.
        assert_eq!(drf.available(), r(0.0, 4.0));
    }

    #[test]
    fn weights_scale_shares_and_order_is_deterministic() {
        let mut drf = Drf::new(r(12.0, 12.0));
        drf.add_client("heavy", 2.0);
        drf.add_client("light", 1.0);
        let demands = BTreeMap::from([
            ("heavy".to_owned(), r(1.0, 1.0)),
            ("light".to_owned(), r(1.0, 1.0)),
        ]);
        let tasks = drf.fill(&demands);
        assert_eq!(
            tasks,
            BTreeMap::from([("heavy".to_owned(), 8), ("light".to_owned(), 4)])
        );
        let mut again = Drf::new(r(12.0, 12.0));
        again.add_client("light", 1.0);
        again.add_client("heavy", 2.0);
        assert_eq!(again.fill(&demands), tasks, "same inputs, same allocation");
    }

    #[test]
    fn allocations_never_exceed_the_pool() {
        let mut drf = Drf::new(r(2.0, 2.0));
        drf.add_client("a", 1.0);
        assert!(drf.allocate("a", &r(2.0, 1.0)));
        assert!(!drf.allocate("a", &r(0.5, 0.5)), "no cpus left");
        assert!(!drf.allocate("ghost", &r(0.0, 0.5)), "unknown client");
        drf.release("a", &r(1.0, 0.0));
        assert!(drf.allocate("a", &r(0.5, 0.5)));
        assert_eq!(drf.available(), r(0.5, 0.5));
    }
}
