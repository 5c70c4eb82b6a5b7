//! TCP connections: state changes from `sock/inet_sock_set_state`, retransmits from
//! `tcp/tcp_retransmit_skb`, and bytes and packets from `cgroup_skb` ingress and egress.
//!
//! Addresses are kept in IPv6 form (IPv4 as IPv4-mapped): the tracepoints fill their `_v6`
//! fields that way for IPv4 sockets, and the byte counter builds the same form, so one
//! [`ConnKey`] names a connection everywhere.

use agent_common::{ConnKey, ConnStats, SockOwner, TcpEvent, bounds, drop_slot, tcp_kind};
use core::ptr::read_volatile;

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::generated::bpf_ktime_get_boot_ns,
    macros::{cgroup_skb, map, tracepoint},
    maps::{LruHashMap, LruPerCpuHashMap},
    programs::{SkBuffContext, TracePointContext},
};
use aya_log_ebpf::debug;

use crate::{LAYOUT, TCP_EVENTS, count_drop, current_owner, wakeup_flags};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u8 = 6;

const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_CLOSE: i32 = 7;
const TCP_LISTEN: i32 = 10;

/// A listening socket: local address (IPv6 form) and port.
#[repr(C)]
#[derive(Clone, Copy)]
struct ListenKey {
    addr: [u8; 16],
    port: u16,
    _pad: u16,
}

/// Socket address (`skaddr`) -> the process that called connect on it.
#[map]
static CONNECTING: LruHashMap<u64, SockOwner> = LruHashMap::with_max_entries(bounds::CONNECTING, 0);

/// Listening address and port -> the process that called listen.
#[map]
static LISTENERS: LruHashMap<ListenKey, SockOwner> =
    LruHashMap::with_max_entries(bounds::LISTENERS, 0);

/// Per-connection counters, per CPU; user space sums them and deletes closed connections.
#[map]
static CONN_STATS: LruPerCpuHashMap<ConnKey, ConnStats> =
    LruPerCpuHashMap::with_max_entries(bounds::CONN_STATS, 0);

/// Reads a tracepoint field at a user-space-provided offset.
#[inline(always)]
fn field<T>(ctx: &TracePointContext, offset: u32) -> Result<T, i32> {
    // SAFETY: offsets come from the tracepoint's format file, checked by user space, and
    // `read_at` goes through bpf_probe_read, so a wrong offset fails instead of faulting.
    unsafe { ctx.read_at::<T>(offset as usize) }
}

#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    if sock_state_changed(&ctx).is_err() {
        count_drop(drop_slot::RECORD_READ);
    }
    0
}

fn sock_state_changed(ctx: &TracePointContext) -> Result<(), i32> {
    let layout = LAYOUT.load();
    if field::<u16>(ctx, layout.sock_protocol)? != u16::from(IPPROTO_TCP) {
        return Ok(());
    }
    let old = field::<i32>(ctx, layout.sock_oldstate)?;
    let new = field::<i32>(ctx, layout.sock_newstate)?;
    let skaddr = field::<u64>(ctx, layout.sock_skaddr)?;
    let family = u32::from(field::<u16>(ctx, layout.sock_family)?);
    let key = ConnKey {
        local_addr: field(ctx, layout.sock_saddr_v6)?,
        remote_addr: field(ctx, layout.sock_daddr_v6)?,
        local_port: field(ctx, layout.sock_sport)?,
        remote_port: field(ctx, layout.sock_dport)?,
    };
    match (old, new) {
        (TCP_CLOSE, TCP_SYN_SENT) => {
            // Process context: the caller of connect owns the socket.
            let _ = CONNECTING.insert(skaddr, current_owner(), 0);
        }
        (TCP_SYN_SENT, TCP_ESTABLISHED) => {
            // Softirq context: the owner was recorded at connect.
            // SAFETY: the value is copied out at once.
            let owner = unsafe { CONNECTING.get(skaddr) }.copied();
            let _ = CONNECTING.remove(skaddr);
            emit(tcp_kind::CONNECT, family, key, owner);
        }
        (TCP_SYN_SENT, TCP_CLOSE) => {
            let _ = CONNECTING.remove(skaddr);
        }
        (TCP_SYN_RECV, TCP_ESTABLISHED) => {
            emit(tcp_kind::ACCEPT, family, key, listener_owner(&key));
        }
        (_, TCP_LISTEN) => {
            let owner = current_owner();
            let listen = ListenKey {
                addr: key.local_addr,
                port: key.local_port,
                _pad: 0,
            };
            let _ = LISTENERS.insert(listen, owner, 0);
            debug!(ctx, "pid {} listens on port {}", owner.pid, key.local_port);
            emit(tcp_kind::LISTEN, family, key, Some(owner));
        }
        (TCP_LISTEN, TCP_CLOSE) => {
            let listen = ListenKey {
                addr: key.local_addr,
                port: key.local_port,
                _pad: 0,
            };
            let _ = LISTENERS.remove(listen);
        }
        (TCP_SYN_RECV | TCP_CLOSE, TCP_CLOSE) => {}
        (_, TCP_CLOSE) => emit(tcp_kind::CLOSE, family, key, None),
        _ => {}
    }
    Ok(())
}

/// The owner of the socket that accepted `key`: the listener on its exact local address,
/// else on the IPv4 or IPv6 wildcard address.
#[inline(always)]
fn listener_owner(key: &ConnKey) -> Option<SockOwner> {
    let mut v4_any = [0u8; 16];
    v4_any[10] = 0xff;
    v4_any[11] = 0xff;
    for addr in [key.local_addr, v4_any, [0; 16]] {
        let listen = ListenKey {
            addr,
            port: key.local_port,
            _pad: 0,
        };
        // SAFETY: the value is copied out at once.
        if let Some(owner) = unsafe { LISTENERS.get(listen) } {
            return Some(*owner);
        }
    }
    None
}

/// Writes one [`TcpEvent`] into the ring buffer, counting a drop when it is full.
#[inline(always)]
fn emit(kind: u32, family: u32, key: ConnKey, owner: Option<SockOwner>) {
    let owner = owner.unwrap_or(SockOwner {
        pid: 0,
        _pad: 0,
        cgroup_id: 0,
        comm: [0; 16],
    });
    let event = TcpEvent {
        kind,
        family,
        key,
        _pad: 0,
        owner,
        // SAFETY: a helper without arguments.
        event_boot_ns: unsafe { bpf_ktime_get_boot_ns() },
    };
    if TCP_EVENTS
        .output::<TcpEvent>(event, wakeup_flags(&TCP_EVENTS))
        .is_err()
    {
        count_drop(drop_slot::TCP_RING_FULL);
    }
}

#[tracepoint]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    let layout = LAYOUT.load();
    let key = (|| {
        Ok::<_, i32>(ConnKey {
            local_addr: field(&ctx, layout.retransmit_saddr_v6)?,
            remote_addr: field(&ctx, layout.retransmit_daddr_v6)?,
            local_port: field(&ctx, layout.retransmit_sport)?,
            remote_port: field(&ctx, layout.retransmit_dport)?,
        })
    })();
    match key {
        Ok(key) => update_stats(&key, |stats| stats.retransmits += 1),
        Err(_) => count_drop(drop_slot::RECORD_READ),
    }
    0
}

#[cgroup_skb]
pub fn count_egress(ctx: SkBuffContext) -> i32 {
    count_packet(&ctx, true);
    1
}

#[cgroup_skb]
pub fn count_ingress(ctx: SkBuffContext) -> i32 {
    count_packet(&ctx, false);
    1
}

/// Adds one packet to its socket's counters. `cgroup_skb` data starts at the IP header.
#[inline(always)]
fn count_packet(ctx: &SkBuffContext, egress: bool) {
    let skb = &ctx.skb;
    let l4_protocol = match skb.load::<u8>(0).map(|b| b >> 4) {
        Ok(4) => skb.load::<u8>(9),
        Ok(6) => skb.load::<u8>(6),
        _ => return,
    };
    if l4_protocol != Ok(IPPROTO_TCP) {
        return;
    }
    let raw: *const __sk_buff = skb.skb;
    // Context fields must be loaded at constant offsets. Every field is read up front, in
    // straight-line code: reading them inside branches lets the compiler merge the loads
    // into one through a pointer chosen at run time, which the verifier rejects.
    macro_rules! ctx_field {
        ($($field:tt)+) => {
            // SAFETY: `raw` is the program's context pointer, valid for the whole run; this
            // is a plain load of one of its fields.
            unsafe { read_volatile(&raw const (*raw).$($field)+) }
        };
    }
    let remote_port = ctx_field!(remote_port);
    let local_port = ctx_field!(local_port);
    let family = ctx_field!(family);
    let len = ctx_field!(len);
    let local_ip4 = ctx_field!(local_ip4);
    let remote_ip4 = ctx_field!(remote_ip4);
    let local_ip6 = [
        ctx_field!(local_ip6[0]),
        ctx_field!(local_ip6[1]),
        ctx_field!(local_ip6[2]),
        ctx_field!(local_ip6[3]),
    ];
    let remote_ip6 = [
        ctx_field!(remote_ip6[0]),
        ctx_field!(remote_ip6[1]),
        ctx_field!(remote_ip6[2]),
        ctx_field!(remote_ip6[3]),
    ];
    // `remote_port` holds the port in network order in its upper half on little endian
    // (the kernel shifts it so ntohl gives the port); `local_port` is in host order.
    let remote_port = u32::from_be(remote_port) as u16;
    if remote_port == 0 {
        return; // a listener's packet (SYN, handshake ACK): no connection yet
    }
    let (local_addr, remote_addr) = match family as u16 {
        AF_INET => (mapped_v4(local_ip4), mapped_v4(remote_ip4)),
        AF_INET6 => (v6_bytes(local_ip6), v6_bytes(remote_ip6)),
        _ => return,
    };
    let local_port = local_port as u16;
    let len = u64::from(len);
    let key = ConnKey {
        local_addr,
        remote_addr,
        local_port,
        remote_port,
    };
    update_stats(&key, |stats| {
        if egress {
            stats.tx_bytes += len;
            stats.tx_packets += 1;
        } else {
            stats.rx_bytes += len;
            stats.rx_packets += 1;
        }
    });
}

/// An IPv4 address (network order in a `u32`) as an IPv4-mapped IPv6 address.
#[inline(always)]
fn mapped_v4(addr: u32) -> [u8; 16] {
    let b = addr.to_ne_bytes();
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, b[0], b[1], b[2], b[3],
    ]
}

/// An IPv6 address given as four network-order words.
#[inline(always)]
fn v6_bytes(words: [u32; 4]) -> [u8; 16] {
    let [a, b, c, d] = words.map(u32::to_ne_bytes);
    [
        a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1], d[2],
        d[3],
    ]
}

/// Applies `change` to this CPU's counters for `key`, inserting them on first sight.
#[inline(always)]
fn update_stats(key: &ConnKey, change: impl FnOnce(&mut ConnStats)) {
    if let Some(stats) = CONN_STATS.get_ptr_mut(key) {
        // SAFETY: a per-CPU value of this CPU, written only by programs on this CPU, which
        // do not migrate while running.
        change(unsafe { &mut *stats });
        return;
    }
    let mut stats = ConnStats::default();
    change(&mut stats);
    if CONN_STATS.insert(key, stats, 0).is_err() {
        count_drop(drop_slot::STATS_MAP_FULL);
    }
}
