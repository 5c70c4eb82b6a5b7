//! An incremental weighted-DRF order over clients (roles, or frameworks within a role): the
//! client with the smallest dominant share divided by its weight comes first, ties to the
//! client added first. Updating one client's allocation costs O(log n); a change of the
//! cluster total marks every share stale and they are recomputed once, on the next read.
//!
//! Only scalar resources count toward shares, as in Mesos.

use std::collections::BTreeSet;

use crate::resources::Resources;

/// A client's position in the sorter.
pub type ClientIndex = u32;

#[derive(Debug, Clone)]
struct Client {
    weight: f64,
    allocated: Resources,
    /// Whether the client is in the order (active and wanting offers).
    listed: bool,
    /// The share key it is listed under.
    key: u64,
}

/// Clients ordered by weighted dominant share.
#[derive(Debug, Clone, Default)]
pub struct Sorter {
    total: Resources,
    clients: Vec<Client>,
    order: BTreeSet<(u64, ClientIndex)>,
    stale: bool,
}

/// Non-negative floats order like their bit patterns.
fn key(share: f64) -> u64 {
    share.max(0.0).to_bits()
}

impl Sorter {
    /// Adds a client, unlisted, and returns its index.
    pub fn add(&mut self, weight: f64) -> ClientIndex {
        let weight = if weight.is_finite() && weight > 0.0 {
            weight
        } else {
            1.0
        };
        self.clients.push(Client {
            weight,
            allocated: Resources::default(),
            listed: false,
            key: 0,
        });
        (self.clients.len() - 1) as ClientIndex
    }

    /// Sets the total that shares are taken of.
    pub fn set_total(&mut self, total: Resources) {
        self.total = total.scalars_only();
        self.stale = true;
    }

    pub fn set_weight(&mut self, client: ClientIndex, weight: f64) {
        if let Some(c) = self.clients.get_mut(client as usize) {
            c.weight = if weight.is_finite() && weight > 0.0 {
                weight
            } else {
                1.0
            };
            self.stale = true;
        }
    }

    fn share_key(&self, client: &Client) -> u64 {
        key(client.allocated.dominant_share(&self.total) / client.weight)
    }

    fn refresh(&mut self) {
        if !self.stale {
            return;
        }
        self.order.clear();
        for i in 0..self.clients.len() {
            let k = self.share_key(&self.clients[i]);
            let client = &mut self.clients[i];
            client.key = k;
            if client.listed {
                self.order.insert((k, i as ClientIndex));
            }
        }
        self.stale = false;
    }

    /// Puts the client in the order or takes it out.
    pub fn list(&mut self, client: ClientIndex, listed: bool) {
        let Some(c) = self.clients.get_mut(client as usize) else {
            return;
        };
        if c.listed == listed {
            return;
        }
        c.listed = listed;
        if !self.stale {
            if listed {
                self.order.insert((c.key, client));
            } else {
                self.order.remove(&(c.key, client));
            }
        }
    }

    fn update(&mut self, client: ClientIndex, change: impl FnOnce(&Resources) -> Resources) {
        let Some(c) = self.clients.get(client as usize) else {
            return;
        };
        let allocated = change(&c.allocated);
        let old_key = c.key;
        let listed = c.listed;
        let c = &mut self.clients[client as usize];
        c.allocated = allocated;
        if self.stale {
            return;
        }
        let new_key = self.share_key(&self.clients[client as usize]);
        self.clients[client as usize].key = new_key;
        if listed && new_key != old_key {
            self.order.remove(&(old_key, client));
            self.order.insert((new_key, client));
        }
    }

    /// Records more resources allocated to `client`.
    pub fn allocated(&mut self, client: ClientIndex, resources: &Resources) {
        let scalars = resources.scalars_only();
        self.update(client, |a| a.plus(&scalars));
    }

    /// Records resources returned by `client`.
    pub fn released(&mut self, client: ClientIndex, resources: &Resources) {
        let scalars = resources.scalars_only();
        self.update(client, |a| a.minus(&scalars));
    }

    /// The client's allocation (scalars).
    pub fn allocation(&self, client: ClientIndex) -> Option<&Resources> {
        self.clients.get(client as usize).map(|c| &c.allocated)
    }

    /// The client's dominant share, not weighted.
    pub fn share(&self, client: ClientIndex) -> f64 {
        self.clients
            .get(client as usize)
            .map_or(0.0, |c| c.allocated.dominant_share(&self.total))
    }

    /// Listed clients, fairest first.
    pub fn order(&mut self) -> impl Iterator<Item = ClientIndex> + '_ {
        self.refresh();
        self.order.iter().map(|(_, client)| *client)
    }

    /// The first listed client for which `eligible` holds.
    pub fn first(&mut self, mut eligible: impl FnMut(ClientIndex) -> bool) -> Option<ClientIndex> {
        self.order().find(|c| eligible(*c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drf::Drf;

    fn r(cpus: f64, mem: f64) -> Resources {
        Resources::from_scalars([("cpus", cpus), ("mem", mem)])
    }

    #[test]
    fn the_order_follows_weighted_shares_like_the_reference_drf() {
        let total = r(100.0, 1000.0);
        let mut sorter = Sorter::default();
        sorter.set_total(total.clone());
        let mut drf = Drf::new(total);
        let weights = [1.0, 2.0, 1.0, 0.5];
        let names = ["a", "b", "c", "d"];
        for (name, weight) in names.iter().zip(weights) {
            let i = sorter.add(weight);
            sorter.list(i, true);
            drf.add_client(name, weight);
        }
        let grants = [
            (0, r(10.0, 10.0)),
            (1, r(1.0, 300.0)),
            (3, r(5.0, 0.0)),
            (0, r(0.0, 50.0)),
        ];
        for (client, grant) in grants {
            sorter.allocated(client, &grant);
            assert!(drf.allocate(names[client as usize], &grant));
        }
        let ours: Vec<&str> = sorter.order().map(|i| names[i as usize]).collect();
        assert_eq!(ours, drf.order());
        sorter.released(1, &r(1.0, 300.0));
        drf.release("b", &r(1.0, 300.0));
        let ours: Vec<&str> = sorter.order().map(|i| names[i as usize]).collect();
        assert_eq!(ours, drf.order());
        assert_eq!(ours.first(), Some(&"b"));
    }

    #[test]
    fn unlisted_clients_are_skipped_and_totals_refresh_lazily() {
        let mut sorter = Sorter::default();
        sorter.set_total(r(10.0, 10.0));
        let a = sorter.add(1.0);
        let b = sorter.add(1.0);
        sorter.list(a, true);
        sorter.list(b, true);
        sorter.allocated(a, &r(5.0, 0.0));
        assert_eq!(sorter.order().collect::<Vec<_>>(), [b, a]);
        sorter.list(b, false);
        assert_eq!(sorter.order().collect::<Vec<_>>(), [a]);
        sorter.set_total(r(20.0, 10.0));
        assert!((sorter.share(a) - 0.25).abs() < 1e-12);
        assert_eq!(sorter.first(|c| c != a), None);
    }
}
