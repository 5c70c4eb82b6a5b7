//! Resources split by the role they are reserved for: [`UNRESERVED`] (`*`) is everyone's,
//! any other key is a static reservation for that role. An agent's total, an offer, and a
//! task's resources are each an [`Allotment`].

use std::collections::BTreeMap;

use crate::resources::Resources;

/// The pool of unreserved resources.
pub const UNRESERVED: &str = "*";

/// Resources by reservation role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Allotment(BTreeMap<String, Resources>);

impl Allotment {
    /// Only unreserved resources.
    pub fn unreserved(resources: Resources) -> Self {
        let mut allotment = Self::default();
        allotment.add(UNRESERVED, &resources);
        allotment
    }

    /// Adds `resources` to the pool of `role` ([`UNRESERVED`] for none).
    pub fn add(&mut self, role: &str, resources: &Resources) {
        if resources.is_empty() {
            return;
        }
        let pool = self.0.entry(role.to_owned()).or_default();
        *pool = pool.plus(resources);
    }

    /// The pool of `role`.
    pub fn pool(&self, role: &str) -> Option<&Resources> {
        self.0.get(role)
    }

    /// Pools by role.
    pub fn pools(&self) -> impl Iterator<Item = (&str, &Resources)> {
        self.0.iter().map(|(role, r)| (role.as_str(), r))
    }

    /// Roles with a reservation (pools other than [`UNRESERVED`]).
    pub fn reserved_roles(&self) -> impl Iterator<Item = &str> {
        self.0
            .keys()
            .map(String::as_str)
            .filter(|r| *r != UNRESERVED)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every pool merged into one bundle.
    pub fn merged(&self) -> Resources {
        self.0
            .values()
            .fold(Resources::default(), |sum, r| sum.plus(r))
    }

    /// Whether each pool of `other` fits in the same pool of `self`.
    pub fn contains(&self, other: &Allotment) -> bool {
        other
            .0
            .iter()
            .all(|(role, need)| self.0.get(role).is_some_and(|have| have.contains(need)))
    }

    pub fn plus(&self, other: &Allotment) -> Allotment {
        let mut sum = self.clone();
        for (role, resources) in &other.0 {
            sum.add(role, resources);
        }
        sum
    }

    /// Pool-by-pool difference; empty pools disappear.
    pub fn minus(&self, other: &Allotment) -> Allotment {
        Allotment(
            self.0
                .iter()
                .map(|(role, have)| match other.0.get(role) {
                    Some(take) => (role.clone(), have.minus(take)),
                    None => (role.clone(), have.clone()),
                })
                .filter(|(_, left)| !left.is_empty())
                .collect(),
        )
    }

    /// Each pool capped at the same pool of `total` (scalars at its amount; ranges and sets
    /// at its members), so recovering twice can never create resources.
    pub fn intersect_total(&self, total: &Allotment) -> Allotment {
        Allotment(
            self.0
                .iter()
                .filter_map(|(role, have)| {
                    let cap = total.0.get(role)?;
                    let over = have.minus(cap);
                    let capped = have.minus(&over);
                    (!capped.is_empty()).then(|| (role.clone(), capped))
                })
                .collect(),
        )
    }

    /// What a framework of `role` may be offered from this allotment: the unreserved pool
    /// and `role`'s reservation.
    pub fn offerable_to(&self, role: &str, with_unreserved: bool) -> Allotment {
        Allotment(
            self.0
                .iter()
                .filter(|(pool, _)| *pool == role || (with_unreserved && *pool == UNRESERVED))
                .map(|(pool, r)| (pool.clone(), r.clone()))
                .collect(),
        )
    }
}

impl FromIterator<(String, Resources)> for Allotment {
    fn from_iter<I: IntoIterator<Item = (String, Resources)>>(iter: I) -> Self {
        let mut allotment = Allotment::default();
        for (role, resources) in iter {
            allotment.add(&role, &resources);
        }
        allotment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_stay_apart() {
        let cpus = |n| Resources::from_scalars([("cpus", n)]);
        let mut agent = Allotment::unreserved(cpus(4.0));
        agent.add("analytics", &cpus(2.0));
        assert_eq!(agent.merged().get("cpus"), 6.0);
        assert_eq!(agent.reserved_roles().collect::<Vec<_>>(), ["analytics"]);
        let web = agent.offerable_to("web", true);
        assert_eq!(web, Allotment::unreserved(cpus(4.0)));
        let analytics = agent.offerable_to("analytics", false);
        assert_eq!(analytics.merged().get("cpus"), 2.0);
        assert!(!analytics.contains(&Allotment::unreserved(cpus(1.0))));
        assert!(agent.minus(&analytics).pool("analytics").is_none());
    }
}
