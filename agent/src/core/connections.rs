//! The TCP connection table, the listening sockets that attribute accepted connections to
//! their process, and the NAT table that names a translated connection's real destination.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use serde::Serialize;

use super::{
    events::{Counters, Owner, ScannedSocket},
    processes::TableFull,
};
use crate::model::{BootNanos, Direction, NatMapping, SocketPair};

/// A TCP connection as one of its ends (a socket on this node) sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub direction: Direction,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub cgroup_id: Option<u64>,
    #[serde(flatten)]
    pub counters: Counters,
    pub opened_at_ns: BootNanos,
    pub closed_at_ns: Option<BootNanos>,
}

impl Connection {
    pub fn pair(&self) -> SocketPair {
        SocketPair {
            local: self.local,
            remote: self.remote,
        }
    }

    pub fn open(&self) -> bool {
        self.closed_at_ns.is_none()
    }

    fn set_owner(&mut self, owner: Owner) {
        self.pid = Some(owner.pid);
        self.comm = owner.comm.or(self.comm.take());
        self.cgroup_id = owner.cgroup_id.or(self.cgroup_id);
    }
}

/// Connections, listeners and NAT mappings, each bounded. Closed connections are kept in
/// close order and open ones in a set, so per-event and per-tick work does not grow with the
/// number of connections retained.
#[derive(Debug)]
pub struct ConnectionTable {
    connections: HashMap<SocketPair, Connection>,
    open: HashSet<SocketPair>,
    /// (close time, pair) in close order; entries whose connection was reopened are skipped.
    closed: VecDeque<(BootNanos, SocketPair)>,
    listeners: HashMap<SocketAddr, Owner>,
    nat: HashMap<SocketPair, SocketAddr>,
    max_connections: usize,
    max_listeners: usize,
    max_nat: usize,
}

impl ConnectionTable {
    pub fn new(max_connections: usize, max_listeners: usize, max_nat: usize) -> Self {
        Self {
            connections: HashMap::new(),
            open: HashSet::new(),
            closed: VecDeque::new(),
            listeners: HashMap::new(),
            nat: HashMap::new(),
            max_connections,
            max_listeners,
            max_nat,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Connection> {
        self.connections.values()
    }

    pub fn get(&self, pair: &SocketPair) -> Option<&Connection> {
        self.connections.get(pair)
    }

    pub fn len(&self) -> usize {
        self.connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// Pairs of the connections still open.
    pub fn open_pairs(&self) -> Vec<SocketPair> {
        self.connections
            .values()
            .filter(|c| c.open())
            .map(Connection::pair)
            .collect()
    }

    pub fn opened(
        &mut self,
        pair: SocketPair,
        direction: Direction,
        owner: Option<Owner>,
        now: BootNanos,
    ) -> Result<(), TableFull> {
        let owner = owner.or_else(|| match direction {
            Direction::Inbound => self.listener_owner(pair.local).cloned(),
            _ => None,
        });
        if let Some(existing) = self.connections.get_mut(&pair)
            && existing.open()
        {
            if let Some(owner) = owner {
                existing.set_owner(owner);
            }
            if existing.direction == Direction::Unknown {
                existing.direction = direction;
            }
            return Ok(());
        }
        self.make_room(&pair)?;
        let mut connection = Connection {
            local: pair.local,
            remote: pair.remote,
            direction,
            pid: None,
            comm: None,
            cgroup_id: None,
            counters: Counters::default(),
            opened_at_ns: now,
            closed_at_ns: None,
        };
        if let Some(owner) = owner {
            connection.set_owner(owner);
        }
        self.connections.insert(pair, connection);
        self.open.insert(pair);
        Ok(())
    }

    /// Removes the connection closed longest ago that is still in the table, with the NAT
    /// mapping of its tuple (conntrack's destroy events are not followed).
    fn evict_oldest_closed(&mut self) -> bool {
        while let Some((at, pair)) = self.closed.pop_front() {
            if self
                .connections
                .get(&pair)
                .is_some_and(|c| c.closed_at_ns == Some(at))
            {
                self.connections.remove(&pair);
                self.nat.remove(&pair);
                return true;
            }
        }
        false
    }

    fn make_room(&mut self, pair: &SocketPair) -> Result<(), TableFull> {
        if self.connections.contains_key(pair)
            || self.connections.len() < self.max_connections
            || self.evict_oldest_closed()
        {
            Ok(())
        } else {
            Err(TableFull)
        }
    }

    pub fn closed(&mut self, pair: &SocketPair, now: BootNanos) {
        if let Some(connection) = self.connections.get_mut(pair)
            && connection.closed_at_ns.is_none()
        {
            connection.closed_at_ns = Some(now);
            self.open.remove(pair);
            self.closed.push_back((now, *pair));
        }
    }

    /// Records a listening socket. Returns false when the listener table is full.
    pub fn listening(&mut self, local: SocketAddr, owner: Owner) -> bool {
        if !self.listeners.contains_key(&local) && self.listeners.len() >= self.max_listeners {
            return false;
        }
        self.listeners.insert(local, owner);
        true
    }

    /// The owner of the socket listening on `local`, directly or through a wildcard address.
    pub fn listener_owner(&self, local: SocketAddr) -> Option<&Owner> {
        let port = local.port();
        let wildcards = [
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ];
        std::iter::once(local)
            .chain(wildcards.into_iter().map(|ip| SocketAddr::new(ip, port)))
            .find_map(|addr| self.listeners.get(&addr))
    }

    /// Applies a full procfs socket scan: adds what events missed, fills unknown owners and
    /// closes open connections the scan no longer finds. Returns how many could not be added.
    pub fn scanned(&mut self, sockets: Vec<ScannedSocket>, now: BootNanos) -> usize {
        let mut refused = 0;
        for socket in sockets.iter().filter(|s| s.listening) {
            if let Some(pid) = socket.pid {
                let owner = Owner {
                    pid,
                    comm: None,
                    cgroup_id: None,
                };
                if !self.listening(socket.pair.local, owner) {
                    refused += 1;
                }
            }
        }
        let mut seen = HashSet::new();
        for socket in sockets.into_iter().filter(|s| !s.listening) {
            seen.insert(socket.pair);
            let direction = if self.listener_owner(socket.pair.local).is_some() {
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            let owner = socket.pid.map(|pid| Owner {
                pid,
                comm: None,
                cgroup_id: None,
            });
            if self.opened(socket.pair, direction, owner, now).is_err() {
                refused += 1;
            }
        }
        let vanished: Vec<SocketPair> = self.open.difference(&seen).copied().collect();
        for pair in vanished {
            self.closed(&pair, now);
        }
        refused
    }

    pub fn counters(&mut self, counters: Vec<(SocketPair, Counters)>) {
        for (pair, counters) in counters {
            if let Some(connection) = self.connections.get_mut(&pair) {
                connection.counters = counters;
            }
        }
    }

    /// Records a NAT mapping. Returns false when the NAT table is full.
    pub fn nat_added(&mut self, mapping: NatMapping) -> bool {
        if !self.nat.contains_key(&mapping.original) && self.nat.len() >= self.max_nat {
            return false;
        }
        self.nat.insert(mapping.original, mapping.real_destination);
        true
    }

    pub fn nat_removed(&mut self, mapping: &NatMapping) {
        self.nat.remove(&mapping.original);
    }

    /// Replaces the NAT table. Returns how many mappings did not fit.
    pub fn nat_resync(&mut self, mappings: Vec<NatMapping>) -> usize {
        self.nat.clear();
        mappings.into_iter().filter(|m| !self.nat_added(*m)).count()
    }

    /// Where a connection really goes when its destination was translated.
    pub fn real_destination(&self, pair: &SocketPair) -> Option<SocketAddr> {
        self.nat.get(pair).copied()
    }

    /// Forgets connections closed more than `retention` ago, with the NAT mappings of their
    /// tuples.
    pub fn expire(&mut self, now: BootNanos, retention: u64) {
        while let Some(&(at, _)) = self.closed.front() {
            if now.saturating_sub(at) <= retention {
                break;
            }
            self.evict_oldest_closed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    fn pair(local: &str, remote: &str) -> SocketPair {
        SocketPair {
            local: addr(local),
            remote: addr(remote),
        }
    }

    fn owner(pid: u32) -> Owner {
        Owner {
            pid,
            comm: Some("srv".into()),
            cgroup_id: Some(1),
        }
    }

    #[test]
    fn an_accepted_connection_takes_the_owner_of_the_wildcard_listener() {
        let mut table = ConnectionTable::new(8, 8, 8);
        assert!(table.listening(addr("0.0.0.0:80"), owner(42)));
        let accepted = pair("10.0.0.1:80", "10.0.0.2:5000");
        table
            .opened(accepted, Direction::Inbound, None, 1)
            .expect("room");
        assert_eq!(table.get(&accepted).and_then(|c| c.pid), Some(42));
    }

    #[test]
    fn nat_names_the_real_destination_of_the_original_tuple() {
        let mut table = ConnectionTable::new(8, 8, 8);
        let dialled = pair("10.0.0.1:5000", "10.99.0.1:80");
        table.nat_added(NatMapping {
            original: dialled,
            real_destination: addr("10.0.1.2:8080"),
        });
        assert_eq!(
            table.real_destination(&dialled),
            Some(addr("10.0.1.2:8080"))
        );
        assert_eq!(table.nat_resync(vec![]), 0);
        assert_eq!(table.real_destination(&dialled), None);
    }

    #[test]
    fn a_scan_adds_missed_connections_and_closes_vanished_ones() {
        let mut table = ConnectionTable::new(8, 8, 8);
        let gone = pair("10.0.0.1:1", "10.0.0.2:2");
        table
            .opened(gone, Direction::Outbound, Some(owner(1)), 1)
            .expect("room");
        let listener = ScannedSocket {
            pair: pair("0.0.0.0:22", "0.0.0.0:0"),
            pid: Some(9),
            listening: true,
        };
        let inbound = ScannedSocket {
            pair: pair("10.0.0.1:22", "10.0.0.3:4000"),
            pid: Some(9),
            listening: false,
        };
        assert_eq!(table.scanned(vec![listener, inbound.clone()], 5), 0);
        let found = table.get(&inbound.pair).expect("added");
        assert_eq!((found.direction, found.pid), (Direction::Inbound, Some(9)));
        assert_eq!(table.get(&gone).and_then(|c| c.closed_at_ns), Some(5));
    }

    #[test]
    fn a_full_table_reuses_closed_slots_and_refuses_otherwise() {
        let mut table = ConnectionTable::new(1, 1, 1);
        let first = pair("10.0.0.1:1", "10.0.0.2:2");
        let second = pair("10.0.0.1:3", "10.0.0.2:2");
        table
            .opened(first, Direction::Outbound, None, 1)
            .expect("room");
        assert_eq!(
            table.opened(second, Direction::Outbound, None, 2),
            Err(TableFull)
        );
        table.closed(&first, 3);
        table
            .opened(second, Direction::Outbound, None, 4)
            .expect("room after close");
        assert_eq!(table.len(), 1);
        assert!(
            !table.listening(addr("0.0.0.0:1"), owner(1))
                || !table.listening(addr("0.0.0.0:2"), owner(1))
        );
    }
}
