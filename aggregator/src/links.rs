//! The agents connected to this aggregator right now: how each found it (directly or
//! through a `zk://` address) and its connection, so that a migration between ZooKeeper
//! clusters can see where agents look for their leader and ask them to look again.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use quinn::{Connection, VarInt};

/// Close code of a connection that the aggregator ends so the agent finds its leader anew.
pub const REDISCOVER: u32 = 0x5d;

#[derive(Debug)]
struct Link {
    discovery: Option<String>,
    connection: Connection,
}

/// Connected agents by id.
#[derive(Debug, Default)]
pub struct Links {
    by_agent: Mutex<HashMap<String, Link>>,
}

impl Links {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Link>> {
        self.by_agent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An agent's report connection is up.
    pub fn up(&self, agent_id: &str, discovery: Option<String>, connection: &Connection) {
        let link = Link {
            discovery,
            connection: connection.clone(),
        };
        self.lock().insert(agent_id.to_owned(), link);
    }

    /// An agent's report connection ended (a newer one of the same agent stays).
    pub fn down(&self, agent_id: &str, connection: &Connection) {
        let mut links = self.lock();
        if links
            .get(agent_id)
            .is_some_and(|l| l.connection.stable_id() == connection.stable_id())
        {
            links.remove(agent_id);
        }
    }

    /// Each connected agent and the `zk://` address it found this aggregator through
    /// (`None`: given the aggregator's address directly).
    pub fn discovery(&self) -> Vec<(String, Option<String>)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(id, link)| (id.clone(), link.discovery.clone()))
            .collect();
        all.sort();
        all
    }

    /// Closes the connections of agents that found this aggregator through ZooKeeper, so
    /// that they look for their leader again; returns how many.
    pub fn rediscover(&self, reason: &str) -> usize {
        let links = self.lock();
        let mut asked = 0;
        for link in links.values().filter(|l| l.discovery.is_some()) {
            link.connection
                .close(VarInt::from_u32(REDISCOVER), reason.as_bytes());
            asked += 1;
        }
        asked
    }
}
