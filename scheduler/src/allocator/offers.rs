//! The life of an offer after it is made: taken by an accept or a decline and settled
//! (what was used stays allocated, the rest returns, optionally behind a filter), rescinded,
//! or timed out; and resources of ended tasks coming back.

use super::{Allocator, Filter, Millis, Offer, OfferId};
use crate::pools::Allotment;

/// Why offers could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("offer {0} is unknown: it was never made, or was already used, declined or rescinded")]
    Unknown(OfferId),
    #[error("offer {offer} was made to another framework")]
    NotYours { offer: OfferId },
    #[error("offers {first} and {other} are for different agents")]
    MixedAgents { first: OfferId, other: OfferId },
    #[error("no offers named")]
    Empty,
    #[error("framework {0} is unknown")]
    UnknownFramework(String),
}

impl Allocator {
    /// Takes the named offers of `framework`, all on one agent, out of circulation and
    /// returns the agent and the resources they held. On error, the valid offers named are
    /// recovered (with no filter) and nothing is taken, as in Mesos.
    pub fn take_offers(
        &mut self,
        framework: &str,
        ids: &[OfferId],
    ) -> Result<(String, Allotment), OfferError> {
        let checked = self.check_offers(framework, ids);
        let valid: Vec<OfferId> = ids
            .iter()
            .copied()
            .filter(|id| {
                self.offers
                    .get(id)
                    .is_some_and(|o| o.framework == framework)
            })
            .collect();
        if let Err(err) = checked {
            self.rescind(&valid);
            return Err(err);
        }
        let mut agent = String::new();
        let mut resources = Allotment::default();
        for id in valid {
            let offer = self.forget_offer(id).expect("checked above");
            agent = offer.agent;
            resources = resources.plus(&offer.resources);
        }
        Ok((agent, resources))
    }

    fn check_offers(&self, framework: &str, ids: &[OfferId]) -> Result<(), OfferError> {
        if !self.framework_index.contains_key(framework) {
            return Err(OfferError::UnknownFramework(framework.to_owned()));
        }
        let first = *ids.first().ok_or(OfferError::Empty)?;
        let mut agent = None;
        for &id in ids {
            let offer = self.offers.get(&id).ok_or(OfferError::Unknown(id))?;
            if offer.framework != framework {
                return Err(OfferError::NotYours { offer: id });
            }
            match agent {
                None => agent = Some(&offer.agent),
                Some(a) if *a != offer.agent => {
                    return Err(OfferError::MixedAgents { first, other: id });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn forget_offer(&mut self, id: OfferId) -> Option<Offer> {
        let offer = self.offers.remove(&id)?;
        if let Some(timeout) = self.config.offer_timeout_ms {
            self.expiries
                .remove(&(offer.created_ms.saturating_add(timeout), id));
        }
        if let Some(&f) = self.framework_index.get(&offer.framework) {
            self.frameworks[f].offers.remove(&id);
        }
        Some(offer)
    }

    /// Settles taken offers: `used` stays allocated to the framework, the rest of `offered`
    /// returns to the agent. With `refuse_ms` > 0 the framework is not offered that rest
    /// again (alone) on this agent until the filter expires or it revives.
    pub fn settle(
        &mut self,
        framework: &str,
        agent: &str,
        offered: &Allotment,
        used: &Allotment,
        refuse_ms: Millis,
        now: Millis,
    ) {
        let unused = offered.minus(used);
        self.recover(framework, agent, &unused);
        let (Some(&f), Some(&a)) = (
            self.framework_index.get(framework),
            self.agent_index.get(agent),
        ) else {
            return;
        };
        if refuse_ms == 0 || unused.is_empty() {
            return;
        }
        if let Some(slot) = self.agents[a].as_mut() {
            slot.filters.insert(
                f,
                Filter {
                    until_ms: now.saturating_add(refuse_ms),
                    resources: unused,
                },
            );
            self.frameworks[f].filtered_agents.insert(a);
        }
    }

    /// Declines offers: everything returns, behind a `refuse_ms` filter.
    pub fn decline(
        &mut self,
        framework: &str,
        ids: &[OfferId],
        refuse_ms: Millis,
        now: Millis,
    ) -> Result<(), OfferError> {
        let (agent, offered) = self.take_offers(framework, ids)?;
        self.settle(
            framework,
            &agent,
            &offered,
            &Allotment::default(),
            refuse_ms,
            now,
        );
        Ok(())
    }

    /// Resources of `framework` on `agent` come back (a task ended, or an offer was not
    /// used).
    pub fn recover(&mut self, framework: &str, agent: &str, resources: &Allotment) {
        if resources.is_empty() {
            return;
        }
        if let Some(slot) = self
            .agent_index
            .get(agent)
            .and_then(|&a| self.agents[a].as_mut())
        {
            slot.available = slot.available.plus(resources).intersect_total(&slot.total);
        }
        if let Some(&f) = self.framework_index.get(framework) {
            let merged = resources.merged();
            let fw = &self.frameworks[f];
            let role = &mut self.roles[fw.role];
            role.frameworks.released(fw.client, &merged);
            self.role_sorter.released(role.client, &merged);
        }
    }

    /// Records resources already in use by `framework` on `agent` (tasks found running when
    /// an agent registers after a master restart).
    pub fn restore(&mut self, framework: &str, role: &str, agent: &str, resources: &Allotment) {
        if !self.framework_index.contains_key(framework) {
            self.add_framework(framework, role, false);
        }
        if let Some(slot) = self
            .agent_index
            .get(agent)
            .and_then(|&a| self.agents[a].as_mut())
        {
            slot.available = slot.available.minus(resources);
        }
        let f = self.framework_index[framework];
        let merged = resources.merged();
        let fw = &self.frameworks[f];
        let role = &mut self.roles[fw.role];
        role.frameworks.allocated(fw.client, &merged);
        self.role_sorter.allocated(role.client, &merged);
    }

    /// Withdraws outstanding offers; their resources return with no filter.
    pub(super) fn rescind(&mut self, ids: &[OfferId]) -> Vec<Offer> {
        let mut rescinded = Vec::new();
        for &id in ids {
            if let Some(offer) = self.forget_offer(id) {
                self.recover(&offer.framework, &offer.agent, &offer.resources);
                rescinded.push(offer);
            }
        }
        rescinded
    }

    /// Rescinds offers that timed out and drops expired filters; returns the rescinded
    /// offers.
    pub fn expire(&mut self, now: Millis) -> Vec<Offer> {
        let due: Vec<OfferId> = self
            .expiries
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect();
        for (f, fw) in self.frameworks.iter_mut().enumerate() {
            fw.filtered_agents.retain(|&a| {
                let Some(agent) = self.agents[a].as_mut() else {
                    return false;
                };
                let live = agent.filters.get(&f).is_some_and(|flt| flt.until_ms > now);
                if !live {
                    agent.filters.remove(&f);
                }
                live
            });
        }
        self.rescind(&due)
    }
}
