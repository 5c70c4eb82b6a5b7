//! What the aggregator holds for each agent: the last state its reports describe, applied in
//! sequence. A full report replaces it; a delta must follow the last applied sequence, or the
//! agent is asked for a full report.

use std::{collections::HashMap, net::SocketAddr};

use proto::model::{Connection, Container, Host, Process, Report, ReportKind};

/// Milliseconds since the Unix epoch, the aggregator's clock as passed in.
pub type Millis = u64;

/// Why a report was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("delta {got} does not follow sequence {expected}; a full report is needed")]
    SequenceGap { expected: u64, got: u64 },
    #[error("delta before any full report; a full report is needed")]
    NoBase,
    #[error("report {got} is older than the applied sequence {applied}")]
    Stale { applied: u64, got: u64 },
}

/// One agent's node as last reported.
#[derive(Debug, Clone, Default)]
pub struct AgentState {
    pub agent_id: String,
    pub host: Host,
    pub processes: HashMap<u32, Process>,
    pub containers: HashMap<String, Container>,
    pub connections: HashMap<(SocketAddr, SocketAddr), Connection>,
    pub collection_mode: String,
    pub events_lost: u64,
    /// Sequence of the last applied report; `None` until a full report arrived.
    pub sequence: Option<u64>,
    pub last_report_ms: Millis,
    /// Whether the agent's connection is up; a disconnected agent's host is stale.
    pub connected: bool,
    pub disconnected_at_ms: Option<Millis>,
    /// Counts the agent's connections; the latest one is the live one.
    pub generation: u64,
}

impl AgentState {
    pub fn new(agent_id: &str) -> Self {
        Self {
            agent_id: agent_id.to_owned(),
            ..Self::default()
        }
    }

    /// Applies `report`, received at `now`.
    pub fn apply(&mut self, report: Report, now: Millis) -> Result<(), ApplyError> {
        match (report.kind, self.sequence) {
            (ReportKind::Full, Some(applied)) if report.sequence < applied => {
                return Err(ApplyError::Stale {
                    applied,
                    got: report.sequence,
                });
            }
            (ReportKind::Full, _) => {
                self.processes.clear();
                self.containers.clear();
                self.connections.clear();
            }
            (ReportKind::Delta, None) => return Err(ApplyError::NoBase),
            (ReportKind::Delta, Some(applied)) if report.sequence != applied + 1 => {
                return Err(if report.sequence <= applied {
                    ApplyError::Stale {
                        applied,
                        got: report.sequence,
                    }
                } else {
                    ApplyError::SequenceGap {
                        expected: applied + 1,
                        got: report.sequence,
                    }
                });
            }
            (ReportKind::Delta, Some(_)) => {}
        }
        if let Some(host) = report.host {
            self.host = host;
        }
        for pid in report.removed_processes {
            self.processes.remove(&pid);
        }
        self.processes
            .extend(report.processes.into_iter().map(|p| (p.pid, p)));
        for id in report.removed_containers {
            self.containers.remove(&id);
        }
        self.containers
            .extend(report.containers.into_iter().map(|c| (c.id.clone(), c)));
        for key in report.removed_connections {
            self.connections.remove(&key);
        }
        self.connections.extend(
            report
                .connections
                .into_iter()
                .map(|c| ((c.local, c.remote), c)),
        );
        self.collection_mode = report.collection_mode;
        self.events_lost = report.events_lost;
        self.sequence = Some(report.sequence);
        self.last_report_ms = now;
        Ok(())
    }

    /// A new connection from the agent: it may have restarted and begun counting again, so
    /// the next full report applies whatever its sequence.
    pub fn connected(&mut self) {
        self.sequence = None;
        self.connected = true;
        self.disconnected_at_ms = None;
        self.generation += 1;
    }

    /// The agent's connection ended at `now`; its data stays, marked stale.
    pub fn disconnected(&mut self, now: Millis) {
        self.connected = false;
        self.disconnected_at_ms = Some(now);
    }

    /// The name the host goes by in the topology.
    pub fn hostname(&self) -> &str {
        if self.host.hostname.is_empty() {
            &self.agent_id
        } else {
            &self.host.hostname
        }
    }
}

#[cfg(test)]
mod tests {
    use proto::model::Direction;

    use super::*;

    fn connection(local: &str, remote: &str) -> Connection {
        Connection {
            local: local.parse().expect("addr"),
            remote: remote.parse().expect("addr"),
            nat_destination: None,
            pid: Some(1),
            direction: Direction::Outbound,
            closed: false,
            bytes_sent: 0,
            bytes_received: 0,
            retransmits: 0,
        }
    }

    #[test]
    fn deltas_apply_in_sequence_and_gaps_ask_for_a_full_report() {
        let mut state = AgentState::new("a");
        let delta = |seq| Report::new("a", seq, 0, ReportKind::Delta);
        assert_eq!(state.apply(delta(1), 0), Err(ApplyError::NoBase));
        let mut full = Report::new("a", 5, 0, ReportKind::Full);
        full.connections = vec![connection("10.0.0.1:1", "10.0.0.2:80")];
        full.processes = vec![Process {
            pid: 1,
            comm: "curl".into(),
            ..Process::default()
        }];
        state.apply(full, 10).expect("full applies");
        let mut next = delta(6);
        next.removed_processes = vec![1];
        next.connections = vec![connection("10.0.0.1:2", "10.0.0.2:80")];
        state.apply(next, 11).expect("delta in sequence");
        assert_eq!((state.processes.len(), state.connections.len()), (0, 2));
        assert_eq!(
            state.apply(delta(8), 12),
            Err(ApplyError::SequenceGap {
                expected: 7,
                got: 8
            })
        );
        assert_eq!(
            state.apply(delta(6), 12),
            Err(ApplyError::Stale { applied: 6, got: 6 })
        );
        let restart = Report::new("a", 1, 0, ReportKind::Full);
        assert!(
            state.apply(restart.clone(), 13).is_err(),
            "an older full report is stale"
        );
        state.connected();
        state
            .apply(restart, 14)
            .expect("after a reconnect the agent may count from 1 again");
        assert!(state.processes.is_empty() && state.connections.is_empty());
    }
}
