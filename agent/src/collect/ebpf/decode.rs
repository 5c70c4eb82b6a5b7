//! Turning the kernel's records into core events. Pure: records in, events out.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use agent_common::{ConnKey, ConnStats, ProcEvent, SockOwner, TcpEvent, proc_kind, tcp_kind};

use crate::{
    core::events::{Counters, Event, ExecEvent, Owner},
    model::{Direction, SocketPair},
};

/// Reads a record of type `T` from ring-buffer bytes; `None` when too short.
pub fn read_record<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the length is checked above; `T` is one of the `#[repr(C)]` integer-only record
    // types of agent-common, valid for any bit pattern; `read_unaligned` allows any alignment.
    Some(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// A NUL-terminated byte string as text.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// An address in the kernel side's IPv6 form, IPv4-mapped turned back into IPv4.
pub fn address(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

pub fn pair(key: &ConnKey) -> SocketPair {
    SocketPair {
        local: SocketAddr::new(address(key.local_addr), key.local_port),
        remote: SocketAddr::new(address(key.remote_addr), key.remote_port),
    }
}

/// The inverse of [`pair`], to look counters up.
pub fn key(pair: &SocketPair) -> ConnKey {
    let bytes = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    ConnKey {
        local_addr: bytes(pair.local.ip()),
        remote_addr: bytes(pair.remote.ip()),
        local_port: pair.local.port(),
        remote_port: pair.remote.port(),
    }
}

fn owner(owner: &SockOwner) -> Option<Owner> {
    (owner.pid != 0).then(|| Owner {
        pid: owner.pid,
        comm: Some(c_string(&owner.comm)),
        cgroup_id: Some(owner.cgroup_id),
    })
}

/// A process record as a core event; `None` for an unknown kind.
pub fn proc_event(record: &ProcEvent) -> Option<Event> {
    match record.kind {
        proc_kind::EXEC => Some(Event::ProcessExec(ExecEvent {
            pid: record.pid,
            ppid: (record.ppid != 0).then_some(record.ppid),
            comm: c_string(&record.comm),
            filename: Some(c_string(&record.filename)).filter(|f| !f.is_empty()),
            cgroup_id: Some(record.cgroup_id),
            start: (record.start_boot_ns != 0).then_some(record.start_boot_ns),
        })),
        proc_kind::EXIT => Some(Event::ProcessExit { pid: record.pid }),
        _ => None,
    }
}

/// A TCP record as a core event; `None` for an unknown kind.
pub fn tcp_event(record: &TcpEvent) -> Option<Event> {
    let pair = pair(&record.key);
    let opened = |direction| Event::ConnectionOpened {
        pair,
        direction,
        owner: owner(&record.owner),
    };
    match record.kind {
        tcp_kind::CONNECT => Some(opened(Direction::Outbound)),
        tcp_kind::ACCEPT => Some(opened(Direction::Inbound)),
        tcp_kind::CLOSE => Some(Event::ConnectionClosed { pair }),
        tcp_kind::LISTEN => owner(&record.owner).map(|owner| Event::Listening {
            local: pair.local,
            owner,
        }),
        _ => None,
    }
}

/// Per-CPU counters summed into one.
pub fn counters<'a>(per_cpu: impl IntoIterator<Item = &'a ConnStats>) -> Counters {
    per_cpu
        .into_iter()
        .fold(Counters::default(), |sum, cpu| Counters {
            bytes_sent: sum.bytes_sent + cpu.tx_bytes,
            bytes_received: sum.bytes_received + cpu.rx_bytes,
            packets_sent: sum.packets_sent + cpu.tx_packets,
            packets_received: sum.packets_received + cpu.rx_packets,
            retransmits: sum.retransmits + cpu.retransmits,
        })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn mapped(v4: [u8; 4]) -> [u8; 16] {
        Ipv4Addr::from(v4).to_ipv6_mapped().octets()
    }

    fn tcp_record(kind: u32, pid: u32) -> TcpEvent {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        TcpEvent {
            kind,
            family: 2,
            key: ConnKey {
                local_addr: mapped([10, 0, 0, 1]),
                remote_addr: mapped([10, 0, 0, 2]),
                local_port: 40000,
                remote_port: 80,
            },
            _pad: 0,
            owner: SockOwner {
                pid,
                _pad: 0,
                cgroup_id: 9,
                comm,
            },
            event_boot_ns: 1,
        }
    }

    #[test]
    fn a_connect_record_becomes_an_outbound_connection_with_its_owner() {
        let event = tcp_event(&tcp_record(tcp_kind::CONNECT, 42)).expect("known kind");
        let expected_pair = SocketPair {
            local: "10.0.0.1:40000".parse().expect("addr"),
            remote: "10.0.0.2:80".parse().expect("addr"),
        };
        assert_eq!(
            event,
            Event::ConnectionOpened {
                pair: expected_pair,
                direction: Direction::Outbound,
                owner: Some(Owner {
                    pid: 42,
                    comm: Some("curl".into()),
                    cgroup_id: Some(9)
                }),
            }
        );
        assert_eq!(key(&expected_pair), tcp_record(0, 0).key);
    }

    #[test]
    fn an_accept_without_a_known_listener_has_no_owner_and_unknown_kinds_are_ignored() {
        let Some(Event::ConnectionOpened {
            owner, direction, ..
        }) = tcp_event(&tcp_record(tcp_kind::ACCEPT, 0))
        else {
            panic!("an accept is an opened connection");
        };
        assert_eq!((owner, direction), (None, Direction::Inbound));
        assert_eq!(tcp_event(&tcp_record(99, 1)), None);
    }

    #[test]
    fn ipv6_addresses_stay_ipv6() {
        let v6: Ipv6Addr = "fd00::1".parse().expect("addr");
        assert_eq!(address(v6.octets()), IpAddr::V6(v6));
        assert_eq!(
            address(mapped([127, 0, 0, 1])),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
    }

    #[test]
    fn records_are_read_from_bytes_and_short_buffers_are_refused() {
        let record = ProcEvent {
            kind: proc_kind::EXEC,
            pid: 7,
            ppid: 1,
            _pad: 0,
            cgroup_id: 3,
            event_boot_ns: 10,
            start_boot_ns: 5,
            comm: *b"sleep\0\0\0\0\0\0\0\0\0\0\0",
            filename: [0; agent_common::FILENAME_LEN],
        };
        // SAFETY: viewing a plain-old-data record as its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts((&raw const record).cast::<u8>(), size_of::<ProcEvent>())
        };
        let decoded: ProcEvent = read_record(bytes).expect("long enough");
        let Some(Event::ProcessExec(exec)) = proc_event(&decoded) else {
            panic!("an exec")
        };
        assert_eq!(
            (exec.pid, exec.ppid, exec.comm.as_str(), exec.filename),
            (7, Some(1), "sleep", None)
        );
        assert!(read_record::<ProcEvent>(&bytes[..10]).is_none());
    }

    #[test]
    fn per_cpu_counters_are_summed() {
        let cpu = ConnStats {
            tx_bytes: 10,
            rx_bytes: 20,
            tx_packets: 1,
            rx_packets: 2,
            retransmits: 1,
        };
        let sum = counters(&[cpu, cpu]);
        assert_eq!(
            (sum.bytes_sent, sum.bytes_received, sum.retransmits),
            (20, 40, 2)
        );
    }
}
