//! Choosing what to send: a full report first, every Nth report, after a reconnect and when the
//! aggregator asks; otherwise a delta of what changed since the last report sent.

use std::{collections::HashMap, net::SocketAddr};

use proto::model::{Connection, Container, Host, Process, Report, ReportKind};

/// The content of the last report sent, by key.
#[derive(Debug, Default)]
struct Sent {
    host: Option<Host>,
    processes: HashMap<u32, Process>,
    containers: HashMap<String, Container>,
    connections: HashMap<(SocketAddr, SocketAddr), Connection>,
}

impl Sent {
    fn of(report: &Report) -> Self {
        Self {
            host: report.host.clone(),
            processes: report
                .processes
                .iter()
                .map(|p| (p.pid, p.clone()))
                .collect(),
            containers: report
                .containers
                .iter()
                .map(|c| (c.id.clone(), c.clone()))
                .collect(),
            connections: report
                .connections
                .iter()
                .map(|c| ((c.local, c.remote), c.clone()))
                .collect(),
        }
    }
}

/// Numbers reports and turns full content into deltas.
#[derive(Debug)]
pub struct Differ {
    sent: Option<Sent>,
    sequence: u64,
    full_every: u64,
    since_full: u64,
}

/// The changed entries of `current` and the keys of `previous` that are gone.
fn changes<K: std::hash::Hash + Eq + Clone, V: Clone + PartialEq>(
    previous: &HashMap<K, V>,
    current: &[V],
    key: impl Fn(&V) -> K,
) -> (Vec<V>, Vec<K>) {
    let mut seen = std::collections::HashSet::with_capacity(current.len());
    let changed = current
        .iter()
        .filter(|v| {
            let k = key(v);
            let same = previous.get(&k) == Some(*v);
            seen.insert(k);
            !same
        })
        .cloned()
        .collect();
    let removed = previous
        .keys()
        .filter(|k| !seen.contains(*k))
        .cloned()
        .collect();
    (changed, removed)
}

impl Differ {
    /// A full report is sent at least every `full_every` reports.
    pub fn new(full_every: u64) -> Self {
        Self {
            sent: None,
            sequence: 0,
            full_every: full_every.max(1),
            since_full: 0,
        }
    }

    /// The next full report is sent whatever the count (after a reconnect, or when asked).
    pub fn force_full(&mut self) {
        self.sent = None;
    }

    /// The report to send for `content` (a full report of the node now).
    pub fn next(&mut self, mut content: Report) -> Report {
        self.sequence += 1;
        content.sequence = self.sequence;
        let full = self.since_full + 1 >= self.full_every;
        let Some(sent) = self.sent.as_ref().filter(|_| !full) else {
            self.since_full = 0;
            self.sent = Some(Sent::of(&content));
            content.kind = ReportKind::Full;
            return content;
        };
        self.since_full += 1;
        let mut delta = Report::new(
            content.agent_id.clone(),
            self.sequence,
            content.timestamp_ms,
            ReportKind::Delta,
        );
        (delta.processes, delta.removed_processes) =
            changes(&sent.processes, &content.processes, |p| p.pid);
        (delta.containers, delta.removed_containers) =
            changes(&sent.containers, &content.containers, |c| c.id.clone());
        (delta.connections, delta.removed_connections) =
            changes(&sent.connections, &content.connections, |c| {
                (c.local, c.remote)
            });
        delta.host = content
            .host
            .clone()
            .filter(|h| sent.host.as_ref() != Some(h));
        delta.collection_mode = content.collection_mode.clone();
        delta.events_lost = content.events_lost;
        self.sent = Some(Sent::of(&content));
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(pids: &[u32]) -> Report {
        let mut report = Report::new("a", 0, 0, ReportKind::Full);
        report.processes = pids
            .iter()
            .map(|&pid| Process {
                pid,
                ..Process::default()
            })
            .collect();
        report
    }

    #[test]
    fn deltas_carry_changes_and_removals_and_full_reports_recur() {
        let mut differ = Differ::new(3);
        let first = differ.next(content(&[1, 2]));
        assert_eq!(
            (first.kind, first.sequence, first.processes.len()),
            (ReportKind::Full, 1, 2)
        );
        let changed = || {
            let mut report = content(&[2, 3]);
            report.processes[0].comm = "renamed".into();
            report
        };
        let delta = differ.next(changed());
        assert_eq!(delta.kind, ReportKind::Delta);
        assert_eq!(
            delta.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(delta.removed_processes, [1]);
        let quiet = differ.next(changed());
        assert_eq!(quiet.kind, ReportKind::Delta);
        assert!(quiet.processes.is_empty() && quiet.removed_processes.is_empty());
        let fourth = differ.next(content(&[2, 3]));
        assert_eq!(
            (fourth.kind, fourth.sequence),
            (ReportKind::Full, 4),
            "one full report in three"
        );
        differ.force_full();
        assert_eq!(differ.next(content(&[2, 3])).kind, ReportKind::Full);
    }

    #[test]
    fn applying_the_deltas_rebuilds_the_content() {
        let mut differ = Differ::new(100);
        let mut state: HashMap<u32, Process> = HashMap::new();
        for pids in [&[1, 2, 3][..], &[2, 3, 4], &[4], &[], &[5, 6]] {
            let report = differ.next(content(pids));
            if report.kind == ReportKind::Full {
                state.clear();
            }
            for pid in &report.removed_processes {
                state.remove(pid);
            }
            state.extend(report.processes.into_iter().map(|p| (p.pid, p)));
            let mut have: Vec<u32> = state.keys().copied().collect();
            have.sort_unstable();
            assert_eq!(have, pids);
        }
    }
}
