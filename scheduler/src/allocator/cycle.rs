//! One allocation cycle: every active agent with available resources is offered, in agent
//! order, to the first eligible framework of the fairest role (unreserved resources plus
//! that role's reservation), then each reservation left is offered to its own role.

use super::{Allocator, Filter, Millis, Offer};
use crate::{
    pools::{Allotment, UNRESERVED},
    resources::Resources,
};

/// Whether framework `f` refuses `offerable` on this agent at `now`.
fn filtered(
    filters: &std::collections::HashMap<usize, Filter>,
    f: usize,
    offerable: &Allotment,
    now: Millis,
) -> bool {
    filters
        .get(&f)
        .is_some_and(|filter| filter.until_ms > now && filter.resources.contains(offerable))
}

/// Whether `offerable` is worth offering: it holds one of the `minimums`.
fn allocatable(minimums: &[Resources], offerable: &Allotment) -> bool {
    let merged = offerable.merged();
    minimums.iter().any(|min| merged.contains(min))
}

impl Allocator {
    /// Runs one cycle and returns the offers made.
    pub fn allocate(&mut self, now: Millis) -> Vec<Offer> {
        let mut made = Vec::new();
        for a in 0..self.agents.len() {
            let Some(agent) = self.agents[a].as_ref() else {
                continue;
            };
            if !agent.active || agent.available.is_empty() {
                continue;
            }
            let mut served_role = None;
            if agent.available.pool(UNRESERVED).is_some()
                && let Some((r, f, offerable)) = self.pick(a, None, now)
            {
                served_role = Some(r);
                made.push(self.make_offer(a, f, offerable, now));
            }
            let reserved: Vec<String> = self.agents[a]
                .as_ref()
                .map(|agent| {
                    agent
                        .available
                        .reserved_roles()
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            for role in reserved {
                let Some(&r) = self.role_index.get(&role) else {
                    continue;
                };
                if served_role == Some(r) {
                    continue;
                }
                if let Some((_, f, offerable)) = self.pick(a, Some(r), now) {
                    made.push(self.make_offer(a, f, offerable, now));
                }
            }
        }
        made
    }

    /// The fairest (role, framework) eligible for agent `a`, with what it would be offered:
    /// with `only_role`, that role's reservation alone; otherwise the unreserved pool and the
    /// role's reservation.
    fn pick(
        &mut self,
        a: usize,
        only_role: Option<usize>,
        now: Millis,
    ) -> Option<(usize, usize, Allotment)> {
        let agent = self.agents[a].as_ref()?;
        let minimums = &self.config.min_allocatable;
        // Without a reservation for the role, every role is offered the same thing: the
        // unreserved pool. Build it once.
        let common = agent
            .available
            .offerable_to(UNRESERVED, only_role.is_none());
        let common_allocatable = !common.is_empty() && allocatable(minimums, &common);
        let roles = &mut self.roles;
        let mut try_role = |r: usize| {
            let role = &mut roles[r];
            if role.listed_frameworks == 0 {
                return None;
            }
            let own;
            let offerable = if agent.available.pool(&role.name).is_some() {
                own = agent
                    .available
                    .offerable_to(&role.name, only_role.is_none());
                if own.is_empty() || !allocatable(minimums, &own) {
                    return None;
                }
                &own
            } else if common_allocatable && only_role.is_none() {
                &common
            } else {
                return None;
            };
            let framework_of = &role.framework_of;
            let client = role.frameworks.first(|client| {
                !filtered(
                    &agent.filters,
                    framework_of[client as usize],
                    offerable,
                    now,
                )
            })?;
            Some((r, framework_of[client as usize], offerable.clone()))
        };
        // Role clients were added in step with `roles`, so a role's client is its index.
        match only_role {
            Some(r) => try_role(r),
            None => self
                .role_sorter
                .order()
                .find_map(|client| try_role(client as usize)),
        }
    }

    fn make_offer(&mut self, a: usize, f: usize, resources: Allotment, now: Millis) -> Offer {
        let id = self.next_offer;
        self.next_offer += 1;
        let agent = self.agents[a].as_mut().expect("picked agents exist");
        agent.available = agent.available.minus(&resources);
        let merged = resources.merged();
        let fw = &mut self.frameworks[f];
        fw.offers.insert(id);
        let role = &mut self.roles[fw.role];
        role.frameworks.allocated(fw.client, &merged);
        self.role_sorter.allocated(role.client, &merged);
        let offer = Offer {
            id,
            framework: fw.id.clone(),
            agent: agent.id.clone(),
            resources,
            created_ms: now,
        };
        if let Some(timeout) = self.config.offer_timeout_ms {
            self.expiries.insert((now.saturating_add(timeout), id));
        }
        self.offers.insert(id, offer.clone());
        offer
    }
}
