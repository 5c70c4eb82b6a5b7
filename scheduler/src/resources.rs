//! Resources by name and their exact arithmetic: scalars (`cpus`, `mem`, `disk`, `gpus`),
//! ranges (`ports`) and sets. Scalar amounts are kept in thousandths so sums and differences
//! are exact and deterministic; ranges are kept merged and sorted.

use std::collections::{BTreeMap, BTreeSet};

/// Thousandths of a unit: 1.5 cpus is 1,500.
type Milli = u64;

/// Sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// Ranges from inclusive `(begin, end)` pairs in any order; reversed pairs are dropped.
    pub fn new(ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut pairs: Vec<(u64, u64)> = ranges.into_iter().filter(|(b, e)| b <= e).collect();
        pairs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(pairs.len());
        for (begin, end) in pairs {
            match merged.last_mut() {
                Some(last) if begin <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((begin, end)),
            }
        }
        Self(merged)
    }

    pub fn pairs(&self) -> &[(u64, u64)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many values the ranges hold.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|(b, e)| e - b + 1).sum()
    }

    pub fn contains(&self, other: &Ranges) -> bool {
        other.0.iter().all(|&(b, e)| {
            let i = self.0.partition_point(|&(_, end)| end < b);
            self.0
                .get(i)
                .is_some_and(|&(begin, end)| begin <= b && e <= end)
        })
    }

    pub fn plus(&self, other: &Ranges) -> Ranges {
        Ranges::new(self.0.iter().chain(&other.0).copied())
    }

    pub fn minus(&self, other: &Ranges) -> Ranges {
        let mut left = Vec::with_capacity(self.0.len());
        for &(begin, end) in &self.0 {
            let mut start = begin;
            for &(b, e) in other.0.iter().filter(|(b, e)| *e >= begin && *b <= end) {
                if b > start {
                    left.push((start, b - 1));
                }
                start = start.max(e.saturating_add(1));
            }
            if start <= end && start >= begin {
                left.push((start, end));
            }
        }
        Ranges(left)
    }

    /// The first `count` values, as ranges (a task asking for `count` ports).
    pub fn take(&self, count: u64) -> Option<Ranges> {
        let mut taken = Vec::new();
        let mut needed = count;
        for &(begin, end) in &self.0 {
            if needed == 0 {
                break;
            }
            let n = (end - begin + 1).min(needed);
            taken.push((begin, begin + n - 1));
            needed -= n;
        }
        (needed == 0).then_some(Ranges(taken))
    }
}

/// A bundle of resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    scalars: BTreeMap<String, Milli>,
    ranges: BTreeMap<String, Ranges>,
    sets: BTreeMap<String, BTreeSet<String>>,
}

impl Resources {
    /// Resources from `(name, amount)` pairs; amounts are rounded to thousandths, negative
    /// and non-finite amounts count as zero.
    pub fn from_scalars<'a>(scalars: impl IntoIterator<Item = (&'a str, f64)>) -> Self {
        let mut resources = Self::default();
        for (name, amount) in scalars {
            resources.add_scalar(name, amount);
        }
        resources
    }

    /// Adds `amount` of scalar `name` (see [`Resources::from_scalars`] for rounding).
    pub fn add_scalar(&mut self, name: &str, amount: f64) {
        if amount.is_finite() && amount > 0.0 {
            let milli = (amount * 1000.0).round() as Milli;
            if milli > 0 {
                *self.scalars.entry(name.to_owned()).or_default() += milli;
            }
        }
    }

    /// Adds the ranges of `name`.
    pub fn add_ranges(&mut self, name: &str, ranges: &Ranges) {
        if !ranges.is_empty() {
            let merged = self
                .ranges
                .get(name)
                .map_or_else(|| ranges.clone(), |r| r.plus(ranges));
            self.ranges.insert(name.to_owned(), merged);
        }
    }

    /// Adds items to the set `name`.
    pub fn add_set<'a>(&mut self, name: &str, items: impl IntoIterator<Item = &'a str>) {
        let set = self.sets.entry(name.to_owned()).or_default();
        set.extend(items.into_iter().map(str::to_owned));
        if set.is_empty() {
            self.sets.remove(name);
        }
    }

    /// The amount of scalar `name`.
    pub fn get(&self, name: &str) -> f64 {
        self.scalars.get(name).map_or(0.0, |m| *m as f64 / 1000.0)
    }

    /// The ranges of `name` (empty when absent).
    pub fn ranges(&self, name: &str) -> Ranges {
        self.ranges.get(name).cloned().unwrap_or_default()
    }

    /// The items of set `name`.
    pub fn set(&self, name: &str) -> impl Iterator<Item = &str> {
        self.sets
            .get(name)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Scalar names and amounts.
    pub fn scalars(&self) -> impl Iterator<Item = (&str, f64)> {
        self.scalars
            .iter()
            .map(|(n, m)| (n.as_str(), *m as f64 / 1000.0))
    }

    /// Range names and ranges.
    pub fn all_ranges(&self) -> impl Iterator<Item = (&str, &Ranges)> {
        self.ranges.iter().map(|(n, r)| (n.as_str(), r))
    }

    /// Set names and items.
    pub fn all_sets(&self) -> impl Iterator<Item = (&str, &BTreeSet<String>)> {
        self.sets.iter().map(|(n, s)| (n.as_str(), s))
    }

    /// The scalars alone (what fair shares are computed on).
    pub fn scalars_only(&self) -> Resources {
        Resources {
            scalars: self.scalars.clone(),
            ..Resources::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.scalars.is_empty() && self.ranges.is_empty() && self.sets.is_empty()
    }

    /// Whether all of `other` fits in `self`.
    pub fn contains(&self, other: &Resources) -> bool {
        other
            .scalars
            .iter()
            .all(|(name, need)| self.scalars.get(name).is_some_and(|have| have >= need))
            && other.ranges.iter().all(|(name, need)| {
                self.ranges
                    .get(name)
                    .is_some_and(|have| have.contains(need))
            })
            && other.sets.iter().all(|(name, need)| {
                self.sets
                    .get(name)
                    .is_some_and(|have| have.is_superset(need))
            })
    }

    /// The sum.
    pub fn plus(&self, other: &Resources) -> Resources {
        let mut sum = self.clone();
        for (name, amount) in &other.scalars {
            *sum.scalars.entry(name.clone()).or_default() += amount;
        }
        for (name, ranges) in &other.ranges {
            sum.add_ranges(name, ranges);
        }
        for (name, items) in &other.sets {
            sum.sets
                .entry(name.clone())
                .or_default()
                .extend(items.iter().cloned());
        }
        sum
    }

    /// What is left after taking `other` (scalars floor at zero).
    pub fn minus(&self, other: &Resources) -> Resources {
        let scalars = self
            .scalars
            .iter()
            .map(|(name, have)| {
                let take = other.scalars.get(name).copied().unwrap_or(0);
                (name.clone(), have.saturating_sub(take))
            })
            .filter(|(_, left)| *left > 0)
            .collect();
        let ranges = self
            .ranges
            .iter()
            .map(|(name, have)| match other.ranges.get(name) {
                Some(take) => (name.clone(), have.minus(take)),
                None => (name.clone(), have.clone()),
            })
            .filter(|(_, left)| !left.is_empty())
            .collect();
        let sets = self
            .sets
            .iter()
            .map(|(name, have)| match other.sets.get(name) {
                Some(take) => (name.clone(), have.difference(take).cloned().collect()),
                None => (name.clone(), have.clone()),
            })
            .filter(|(_, left): &(String, BTreeSet<String>)| !left.is_empty())
            .collect();
        Resources {
            scalars,
            ranges,
            sets,
        }
    }

    /// The largest share of `total` this bundle takes, over the scalars of `total`.
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

    #[test]
    fn ranges_merge_split_and_take() {
        let ports = Ranges::new([(31005, 31010), (31000, 31004), (32000, 32000)]);
        assert_eq!(ports.pairs(), &[(31000, 31010), (32000, 32000)]);
        assert_eq!(ports.len(), 12);
        let taken = ports.take(3).expect("enough ports");
        assert_eq!(taken.pairs(), &[(31000, 31002)]);
        let left = ports.minus(&Ranges::new([(31002, 31003), (32000, 32000)]));
        assert_eq!(left.pairs(), &[(31000, 31001), (31004, 31010)]);
        assert!(ports.contains(&left));
        assert!(!left.contains(&Ranges::new([(31001, 31004)])));
        assert_eq!(
            left.plus(&Ranges::new([(31002, 31003)])).pairs(),
            &[(31000, 31010)]
        );
        assert!(ports.take(13).is_none());
    }

    #[test]
    fn bundles_with_ranges_and_sets_fit_and_subtract() {
        let mut agent = Resources::from_scalars([("cpus", 2.0)]);
        agent.add_ranges("ports", &Ranges::new([(31000, 31009)]));
        agent.add_set("gpus_ids", ["gpu0", "gpu1"]);
        let mut task = Resources::from_scalars([("cpus", 1.0)]);
        task.add_ranges("ports", &Ranges::new([(31003, 31003)]));
        task.add_set("gpus_ids", ["gpu1"]);
        assert!(agent.contains(&task));
        let left = agent.minus(&task);
        assert!(!left.contains(&task), "port 31003 and gpu1 are taken");
        assert_eq!(left.ranges("ports").len(), 9);
        assert_eq!(left.set("gpus_ids").collect::<Vec<_>>(), ["gpu0"]);
        assert_eq!(left.plus(&task), agent);
    }
}
