//! The hierarchical DRF allocator, with Mesos's semantics: roles are ordered by weighted
//! dominant share, frameworks within a role by their own; each cycle offers every agent's
//! available resources to the first eligible framework (active, not suppressed, not
//! filtered for that agent), unreserved resources together with the framework role's static
//! reservation, then each remaining reservation to a framework of its role.
//!
//! Offered resources count as allocated until they are accepted (and stay allocated to the
//! tasks), declined (optionally with a `refuse_seconds` filter), rescinded, or timed out.
//! Nothing here reads a clock: every call that depends on time takes `now` in milliseconds.
//!
//! - [`cycle`](self::cycle): one allocation cycle.
//! - [`offers`](self::offers): accepting, declining, recovering, expiring.

mod cycle;
mod offers;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};

pub use offers::OfferError;

use crate::{
    pools::Allotment,
    resources::Resources,
    sorter::{ClientIndex, Sorter},
};

/// Milliseconds on the caller's clock.
pub type Millis = u64;
/// Offers are numbered from 1 by their allocator.
pub type OfferId = u64;

/// Tunables.
#[derive(Debug, Clone)]
pub struct AllocatorConfig {
    /// Offers not answered within this time are rescinded (`None`: never).
    pub offer_timeout_ms: Option<Millis>,
    /// An agent's leftovers are offered only when they hold one of these (Mesos: 0.01 cpus
    /// or 32 MB of memory), so frameworks are not flooded with crumbs.
    pub min_allocatable: Vec<Resources>,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        Self {
            offer_timeout_ms: Some(60_000),
            min_allocatable: vec![
                Resources::from_scalars([("cpus", 0.01)]),
                Resources::from_scalars([("mem", 32.0)]),
            ],
        }
    }
}

/// Resources offered to one framework on one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub id: OfferId,
    pub framework: String,
    pub agent: String,
    pub resources: Allotment,
    pub created_ms: Millis,
}

/// A framework's refusal of an agent's resources.
#[derive(Debug, Clone)]
struct Filter {
    until_ms: Millis,
    /// Offers that would hold only these are not made.
    resources: Allotment,
}

#[derive(Debug)]
struct AgentSlot {
    id: String,
    total: Allotment,
    available: Allotment,
    active: bool,
    filters: HashMap<usize, Filter>,
}

#[derive(Debug)]
struct FrameworkSlot {
    id: String,
    role: usize,
    client: ClientIndex,
    active: bool,
    suppressed: bool,
    /// In its role's order: active and not suppressed.
    listed: bool,
    filtered_agents: HashSet<usize>,
    offers: HashSet<OfferId>,
}

#[derive(Debug)]
struct RoleSlot {
    name: String,
    weight: f64,
    client: ClientIndex,
    frameworks: Sorter,
    framework_of: Vec<usize>,
    listed_frameworks: usize,
}

/// The allocator's whole state.
#[derive(Debug)]
pub struct Allocator {
    config: AllocatorConfig,
    agents: Vec<Option<AgentSlot>>,
    agent_index: HashMap<String, usize>,
    frameworks: Vec<FrameworkSlot>,
    framework_index: HashMap<String, usize>,
    roles: Vec<RoleSlot>,
    role_index: HashMap<String, usize>,
    role_sorter: Sorter,
    total: Resources,
    offers: HashMap<OfferId, Offer>,
    expiries: BTreeSet<(Millis, OfferId)>,
    next_offer: OfferId,
}

/// A role's standing, for the operator API.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleStanding {
    pub name: String,
    pub weight: f64,
    pub allocated: Resources,
    pub share: f64,
    pub frameworks: Vec<String>,
}

impl Allocator {
    pub fn new(config: AllocatorConfig) -> Self {
        Self {
            config,
            agents: Vec::new(),
            agent_index: HashMap::new(),
            frameworks: Vec::new(),
            framework_index: HashMap::new(),
            roles: Vec::new(),
            role_index: HashMap::new(),
            role_sorter: Sorter::default(),
            total: Resources::default(),
            offers: HashMap::new(),
            expiries: BTreeSet::new(),
            next_offer: 1,
        }
    }

    fn role(&mut self, name: &str) -> usize {
        if let Some(&r) = self.role_index.get(name) {
            return r;
        }
        let client = self.role_sorter.add(1.0);
        let mut frameworks = Sorter::default();
        frameworks.set_total(self.total.clone());
        self.roles.push(RoleSlot {
            name: name.to_owned(),
            weight: 1.0,
            client,
            frameworks,
            framework_of: Vec::new(),
            listed_frameworks: 0,
        });
        let r = self.roles.len() - 1;
        self.role_index.insert(name.to_owned(), r);
        r
    }

    /// Sets a role's weight (1 by default): a role of weight 2 gets twice the share.
    pub fn set_role_weight(&mut self, role: &str, weight: f64) {
        let r = self.role(role);
        self.roles[r].weight = weight;
        self.role_sorter.set_weight(self.roles[r].client, weight);
    }

    /// Changes the cluster total by `added` minus `removed` (scalars only).
    fn adjust_total(&mut self, added: &Allotment, removed: &Allotment) {
        self.total = self
            .total
            .plus(&added.merged().scalars_only())
            .minus(&removed.merged().scalars_only());
        self.role_sorter.set_total(self.total.clone());
        for role in &mut self.roles {
            role.frameworks.set_total(self.total.clone());
        }
    }

    /// Adds an agent, or updates the total of a known one (keeping what is in use).
    pub fn add_agent(&mut self, id: &str, total: Allotment) {
        match self
            .agent_index
            .get(id)
            .and_then(|&a| self.agents[a].as_mut())
        {
            Some(agent) => {
                let used = agent.total.minus(&agent.available);
                let old = std::mem::replace(&mut agent.total, total.clone());
                agent.available = total.minus(&used);
                agent.active = true;
                self.adjust_total(&total, &old);
            }
            None => {
                self.adjust_total(&total, &Allotment::default());
                self.agents.push(Some(AgentSlot {
                    id: id.to_owned(),
                    available: total.clone(),
                    total,
                    active: true,
                    filters: HashMap::new(),
                }));
                self.agent_index
                    .insert(id.to_owned(), self.agents.len() - 1);
            }
        }
    }

    /// Stops (or resumes) offering an agent's resources; stopping rescinds its offers.
    pub fn set_agent_active(&mut self, id: &str, active: bool) -> Vec<Offer> {
        let Some(&a) = self.agent_index.get(id) else {
            return Vec::new();
        };
        if let Some(agent) = self.agents[a].as_mut() {
            agent.active = active;
        }
        if active {
            return Vec::new();
        }
        let ids: Vec<OfferId> = self
            .offers
            .values()
            .filter(|o| o.agent == id)
            .map(|o| o.id)
            .collect();
        self.rescind(&ids)
    }

    /// Removes an agent; its offers are rescinded and returned.
    pub fn remove_agent(&mut self, id: &str) -> Vec<Offer> {
        let rescinded = self.set_agent_active(id, false);
        if let Some(a) = self.agent_index.remove(id)
            && let Some(agent) = self.agents[a].take()
        {
            self.adjust_total(&Allotment::default(), &agent.total);
        }
        rescinded
    }

    /// Adds a framework in `role` (or re-activates a known one).
    pub fn add_framework(&mut self, id: &str, role: &str, active: bool) {
        if self.framework_index.contains_key(id) {
            self.set_framework_active(id, active);
            return;
        }
        let r = self.role(role);
        let client = self.roles[r].frameworks.add(1.0);
        self.roles[r].framework_of.push(self.frameworks.len());
        self.frameworks.push(FrameworkSlot {
            id: id.to_owned(),
            role: r,
            client,
            active,
            suppressed: false,
            listed: false,
            filtered_agents: HashSet::new(),
            offers: HashSet::new(),
        });
        self.framework_index
            .insert(id.to_owned(), self.frameworks.len() - 1);
        self.relist(self.frameworks.len() - 1);
    }

    /// Lists a framework in its role's order when it is active and not suppressed.
    fn relist(&mut self, f: usize) {
        let fw = &mut self.frameworks[f];
        let listed = fw.active && !fw.suppressed;
        if listed == fw.listed {
            return;
        }
        fw.listed = listed;
        let role = &mut self.roles[fw.role];
        role.frameworks.list(fw.client, listed);
        if listed {
            role.listed_frameworks += 1;
        } else {
            role.listed_frameworks -= 1;
        }
        self.role_sorter
            .list(role.client, role.listed_frameworks > 0);
    }

    /// Connects (or disconnects) a framework; disconnecting rescinds its offers.
    pub fn set_framework_active(&mut self, id: &str, active: bool) -> Vec<Offer> {
        let Some(&f) = self.framework_index.get(id) else {
            return Vec::new();
        };
        self.frameworks[f].active = active;
        self.relist(f);
        if active {
            return Vec::new();
        }
        let ids: Vec<OfferId> = self.frameworks[f].offers.iter().copied().collect();
        self.rescind(&ids)
    }

    /// Removes a framework for good; its offers are rescinded. Its tasks' resources come back
    /// through [`Allocator::recover`] as the tasks end.
    pub fn remove_framework(&mut self, id: &str) -> Vec<Offer> {
        let rescinded = self.set_framework_active(id, false);
        if let Some(&f) = self.framework_index.get(id) {
            self.clear_filters(f);
        }
        rescinded
    }

    /// No more offers for the framework until it revives.
    pub fn suppress(&mut self, id: &str) {
        if let Some(&f) = self.framework_index.get(id) {
            self.frameworks[f].suppressed = true;
            self.relist(f);
        }
    }

    /// Offers again, and forget every filter the framework set.
    pub fn revive(&mut self, id: &str) {
        if let Some(&f) = self.framework_index.get(id) {
            self.frameworks[f].suppressed = false;
            self.clear_filters(f);
            self.relist(f);
        }
    }

    fn clear_filters(&mut self, f: usize) {
        for a in std::mem::take(&mut self.frameworks[f].filtered_agents) {
            if let Some(agent) = self.agents[a].as_mut() {
                agent.filters.remove(&f);
            }
        }
    }

    /// The sum of all agents' scalars.
    pub fn total(&self) -> &Resources {
        &self.total
    }

    /// What an agent has neither offered nor in use.
    pub fn available(&self, agent: &str) -> Option<&Allotment> {
        let a = *self.agent_index.get(agent)?;
        self.agents[a].as_ref().map(|a| &a.available)
    }

    /// The offer with this id, while it is outstanding.
    pub fn offer(&self, id: OfferId) -> Option<&Offer> {
        self.offers.get(&id)
    }

    /// Outstanding offers.
    pub fn offers(&self) -> impl Iterator<Item = &Offer> {
        self.offers.values()
    }

    /// A framework's dominant share within the cluster.
    pub fn framework_share(&self, id: &str) -> f64 {
        self.framework_index.get(id).map_or(0.0, |&f| {
            let fw = &self.frameworks[f];
            self.roles[fw.role].frameworks.share(fw.client)
        })
    }

    /// Every role's weight, allocation and share.
    pub fn roles(&self) -> Vec<RoleStanding> {
        self.roles
            .iter()
            .map(|role| RoleStanding {
                name: role.name.clone(),
                weight: role.weight,
                allocated: self
                    .role_sorter
                    .allocation(role.client)
                    .cloned()
                    .unwrap_or_default(),
                share: self.role_sorter.share(role.client),
                frameworks: role
                    .framework_of
                    .iter()
                    .map(|&f| self.frameworks[f].id.clone())
                    .collect(),
            })
            .collect()
    }
}
