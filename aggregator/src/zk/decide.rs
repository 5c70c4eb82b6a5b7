//! What live sync does with a change seen on one side (pure). Both sides' current nodes
//! are compared: equal content needs nothing (this is also how the engine's own writes,
//! echoed back by the other side's watch, stop there: loop prevention without markers).
//! Otherwise the change is applied to the other side, unless that side has changed too
//! since the two were last in step: a conflict, settled by the policy: the source (side A)
//! wins, the last writer by mtime wins (A on a tie), or it is held for an operator.

use super::tree::Node;

/// The two clusters: A is the source of a one-way sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// How concurrent changes to one node on both sides are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// A's version is kept.
    SourceWins,
    /// The version modified last (by the servers' mtime) is kept; a deletion counts as made
    /// when it was seen.
    LastWriterWins,
    /// Neither is applied: the conflict waits in a queue for an operator.
    Manual,
}

/// Where the two sides stood when a path was last in step: each side's modification zxid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InStep {
    pub a_mzxid: i64,
    pub b_mzxid: i64,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing differs.
    Nothing,
    /// Make `to`'s node what the other side has (`None`: delete it).
    Copy { to: Side },
    /// Both changed; the policy is manual.
    Hold,
}

/// One change seen on `from`, with both sides' nodes as they are now.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub from: Side,
    pub a: Option<&'a Node>,
    pub b: Option<&'a Node>,
    pub in_step: Option<InStep>,
    /// When the change was seen (stands for a deletion's time).
    pub seen_ms: i64,
}

impl InStep {
    /// `side`'s modification zxid when the two were in step.
    pub fn mzxid(&self, side: Side) -> i64 {
        match side {
            Side::A => self.a_mzxid,
            Side::B => self.b_mzxid,
        }
    }
}

impl<'a> Change<'a> {
    /// `side`'s node as it is now.
    pub fn node(&self, side: Side) -> Option<&'a Node> {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }

    /// Whether `side` changed since the two were in step (a node never in step counts as
    /// changed where it exists).
    fn changed(&self, side: Side) -> bool {
        let now = self.node(side);
        match self.in_step {
            Some(step) => now.map(|n| n.mzxid) != Some(step.mzxid(side)),
            None => now.is_some(),
        }
    }
}

/// The side a difference found by comparing both trees comes from: B when A is as it was
/// when the two were last in step, A otherwise (also when they never were).
pub fn changed_side(a: Option<&Node>, in_step: Option<InStep>) -> Side {
    match (a, in_step) {
        (Some(n), Some(step)) if n.mzxid == step.a_mzxid => Side::B,
        _ => Side::A,
    }
}

/// Whether the side a change would go to has changed too since the two were in step.
pub fn concurrent(change: &Change<'_>) -> bool {
    change.changed(change.from.other())
}

/// Decides one change.
pub fn decide(change: &Change<'_>, policy: Policy, both_ways: bool) -> Action {
    let (a, b) = (change.a, change.b);
    // Ephemeral nodes belong to one cluster's sessions (a contender's election znode): they
    // are never copied, and never make the other side's node go.
    if [a, b].into_iter().flatten().any(|n| n.ephemeral) {
        return Action::Nothing;
    }
    match (a, b) {
        (None, None) => return Action::Nothing,
        (Some(x), Some(y)) if x.same_content(y) => return Action::Nothing,
        _ => {}
    }
    let to = change.from.other();
    if !both_ways {
        return Action::Copy { to: Side::B };
    }
    if !concurrent(change) {
        return Action::Copy { to };
    }
    match policy {
        Policy::SourceWins => Action::Copy { to: Side::B },
        Policy::Manual => Action::Hold,
        Policy::LastWriterWins => {
            let time = |n: Option<&Node>| n.map_or(change.seen_ms, |n| n.mtime_ms);
            if time(b) > time(a) {
                Action::Copy { to: Side::A }
            } else {
                Action::Copy { to: Side::B }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::tree::node;

    fn at(data: &str, mzxid: i64, mtime_ms: i64) -> Node {
        Node {
            mzxid,
            mtime_ms,
            ..node(data)
        }
    }

    fn change<'a>(
        from: Side,
        a: Option<&'a Node>,
        b: Option<&'a Node>,
        in_step: Option<(i64, i64)>,
    ) -> Change<'a> {
        Change {
            from,
            a,
            b,
            in_step: in_step.map(|(a_mzxid, b_mzxid)| InStep { a_mzxid, b_mzxid }),
            seen_ms: 1_000,
        }
    }

    #[test]
    fn a_change_on_one_side_goes_to_the_other_and_echoes_stop() {
        let (a2, b1) = (at("2", 20, 200), at("1", 10, 100));
        let c = change(Side::A, Some(&a2), Some(&b1), Some((15, 10)));
        assert_eq!(
            decide(&c, Policy::Manual, true),
            Action::Copy { to: Side::B }
        );
        let b2 = at("2", 30, 300);
        let echo = change(Side::B, Some(&a2), Some(&b2), Some((20, 30)));
        assert_eq!(decide(&echo, Policy::Manual, true), Action::Nothing);
        // A deletion on B goes to A.
        let gone = change(Side::B, Some(&a2), None, Some((20, 30)));
        assert_eq!(
            decide(&gone, Policy::Manual, true),
            Action::Copy { to: Side::A }
        );
    }

    #[test]
    fn a_difference_comes_from_the_side_that_moved() {
        let a1 = at("1", 10, 100);
        let step = Some(InStep {
            a_mzxid: 10,
            b_mzxid: 10,
        });
        // A unchanged: the difference is B's.
        assert_eq!(changed_side(Some(&a1), step), Side::B);
        // A changed, or deleted, since: it is A's, and B has not moved, so no conflict.
        let a2 = at("2", 20, 200);
        assert_eq!(changed_side(Some(&a2), step), Side::A);
        assert_eq!(changed_side(None, step), Side::A);
        let b1 = at("1", 10, 100);
        let deleted_on_a = change(Side::A, None, Some(&b1), Some((10, 10)));
        assert!(!concurrent(&deleted_on_a));
        assert_eq!(
            decide(&deleted_on_a, Policy::Manual, true),
            Action::Copy { to: Side::B }
        );
        // Never in step: A's.
        assert_eq!(changed_side(Some(&a1), None), Side::A);
    }

    #[test]
    fn concurrent_changes_follow_the_policy() {
        // Both changed since (10, 10): A at t=200, B at t=300.
        let (a, b) = (at("a", 20, 200), at("b", 30, 300));
        let c = change(Side::A, Some(&a), Some(&b), Some((10, 10)));
        assert_eq!(
            decide(&c, Policy::SourceWins, true),
            Action::Copy { to: Side::B }
        );
        assert_eq!(
            decide(&c, Policy::LastWriterWins, true),
            Action::Copy { to: Side::A }
        );
        assert_eq!(decide(&c, Policy::Manual, true), Action::Hold);
        // Created on both sides independently: a conflict too.
        let fresh = change(Side::B, Some(&a), Some(&b), None);
        assert_eq!(decide(&fresh, Policy::Manual, true), Action::Hold);
        // One way: the target is always made like the source.
        assert_eq!(
            decide(&c, Policy::Manual, false),
            Action::Copy { to: Side::B }
        );
    }

    #[test]
    fn ephemeral_nodes_stay_on_their_side() {
        let mut contender = at("leader", 20, 200);
        contender.ephemeral = true;
        for (a, b) in [(Some(&contender), None), (None, Some(&contender))] {
            let c = change(Side::A, a, b, None);
            assert_eq!(decide(&c, Policy::LastWriterWins, true), Action::Nothing);
            assert_eq!(decide(&c, Policy::SourceWins, false), Action::Nothing);
        }
    }
}
