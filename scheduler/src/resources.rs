//! Scalar resources by name (`cpus`, `mem`, `disk`, `gpus`, ...) and their arithmetic.
//! Amounts are kept in thousandths so sums and differences are exact and deterministic.

use std::collections::BTreeMap;

/// Thousandths of a unit: 1.5 cpus is 1,500.
type Milli = u64;

/// A bundle of scalar resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    scalars: BTreeMap<String, Milli>,
}

impl Resources {
    /// Resources from `(name, amount)` pairs; amounts are rounded to thousandths, negative
    /// and non-finite amounts count as zero.
    pub fn from_scalars<'a>(scalars: impl IntoIterator<Item = (&'a str, f64)>) -> Self {
        let scalars = scalars
            .into_iter()
            .filter(|(_, amount)| amount.is_finite() && *amount > 0.0)
            .map(|(name, amount)| (name.to_owned(), (amount * 1000.0).round() as Milli))
            .filter(|(_, milli)| *milli > 0)
            .collect();
        Self { scalars }
    }

    /// The amount of `name`.
    pub fn get(&self, name: &str) -> f64 {
        self.scalars.get(name).map_or(0.0, |m| *m as f64 / 1000.0)
    }

    pub fn is_empty(&self) -> bool {
        self.scalars.is_empty()
    }

    /// Whether every amount of `other` fits in `self`.
    pub fn contains(&self, other: &Resources) -> bool {
        other
            .scalars
            .iter()
            .all(|(name, need)| self.scalars.get(name).is_some_and(|have| have >= need))
    }

    /// The sum.
    pub fn plus(&self, other: &Resources) -> Resources {
        let mut sum = self.clone();
        for (name, amount) in &other.scalars {
            *sum.scalars.entry(name.clone()).or_default() += amount;
        }
        sum
    }

    /// What is left after taking `other` (amounts floor at zero).
    pub fn minus(&self, other: &Resources) -> Resources {
        let scalars = self
            .scalars
            .iter()
            .map(|(name, have)| {
                (
                    name.clone(),
                    have.saturating_sub(other.scalars.get(name).copied().unwrap_or(0)),
                )
            })
            .filter(|(_, left)| *left > 0)
            .collect();
        Resources { scalars }
    }

    /// The largest share of `total` this bundle takes, over all resources of `total`.
    pub fn dominant_share(&self, total: &Resources) -> f64 {
        total
            .scalars
            .iter()
            .filter(|(_, t)| **t > 0)
            .map(|(name, t)| self.scalars.get(name).copied().unwrap_or(0) as f64 / *t as f64)
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_exact_and_never_negative() {
        let agent = Resources::from_scalars([("cpus", 4.0), ("mem", 1280.0)]);
        let task = Resources::from_scalars([("cpus", 0.1), ("mem", 128.0)]);
        let mut left = agent.clone();
        for _ in 0..10 {
            assert!(left.contains(&task));
            left = left.minus(&task);
        }
        assert_eq!(left.get("cpus"), 3.0);
        assert_eq!(left.get("mem"), 0.0);
        assert!(!left.contains(&task));
        assert_eq!(
            left.plus(&Resources::from_scalars([("mem", 1280.0)]))
                .get("mem"),
            1280.0
        );
        assert!(Resources::from_scalars([("cpus", -1.0), ("mem", f64::NAN)]).is_empty());
    }

    #[test]
    fn the_dominant_share_is_the_largest_share() {
        let total = Resources::from_scalars([("cpus", 9.0), ("mem", 18.0)]);
        let used = Resources::from_scalars([("cpus", 3.0), ("mem", 12.0)]);
        assert!((used.dominant_share(&total) - 2.0 / 3.0).abs() < 1e-9);
    }
}
