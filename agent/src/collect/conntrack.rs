//! Conntrack over netlink: an initial dump of NAT-translated TCP connections and live events.
//!
//! Only TCP entries whose destination was translated matter here (DNAT, Docker's published
//! ports, kube-proxy services): the reply direction's source differs from the original
//! direction's destination. [`dump_nat`] reads the table once over a blocking socket;
//! [`ConntrackEvents`] follows the `NEW` multicast group over tokio, with a classic BPF filter
//! on the socket so the kernel delivers only entries whose destination was translated: a host
//! opening thousands of plain connections a second costs the agent nothing here. (`DESTROY`
//! events carry no status to filter on, so they are not followed; mappings leave with their
//! connections and with the periodic re-dump.) The kernel drops events when the socket's
//! receive queue is full; that surfaces as [`ConntrackEvent::Overrun`] and the caller re-dumps. Each netlink message is decoded by a pure
//! function; messages that do not decode are skipped, counted and logged at debug level.

use std::{io, net::SocketAddr, os::fd::AsRawFd};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
    conntrack::{ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple},
};
use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};
use tokio::io::{Interest, unix::AsyncFd};
use tracing::debug;

use crate::model::{NatMapping, SocketPair};

/// `NFNLGRP_CONNTRACK_NEW` from `linux/netfilter/nfnetlink.h`.
const GROUP_NEW: u32 = 1;
/// `CTA_STATUS`, the conntrack attribute holding the entry's status bits (big endian).
const CTA_STATUS: u32 = 3;
/// `IPS_DST_NAT` from `linux/netfilter/nf_conntrack_common.h`: the destination was translated.
const IPS_DST_NAT: u32 = 1 << 5;
/// Length of `nlmsghdr` plus `nfgenmsg`: where a conntrack message's attributes start.
const ATTRIBUTES_OFFSET: u32 = 16 + 4;
/// Receive buffer asked for on the event socket, so bursts of connections are not dropped.
const EVENT_SOCKET_BUFFER: usize = 4 << 20;
/// Conntrack events are one small message per datagram; this is ample.
const EVENT_DATAGRAM_BUFFER: usize = 64 << 10;
/// Most datagrams read per batch, so one batch cannot grow without bound.
const MAX_DATAGRAMS_PER_BATCH: usize = 256;

/// Failures talking to conntrack over netlink.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// The event socket was created outside a tokio runtime.
    #[error("no tokio runtime to register the conntrack event socket with")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    /// `socket(AF_NETLINK, NETLINK_NETFILTER)` failed.
    #[error("failed to open a netfilter netlink socket")]
    Open(#[source] io::Error),
    /// Binding, sizing or registering the socket with tokio failed.
    #[error("failed to set up the netfilter netlink socket")]
    Setup(#[source] io::Error),
    /// Joining the conntrack multicast groups failed (needs `CAP_NET_ADMIN`).
    #[error("failed to join the conntrack multicast groups")]
    Join(#[source] io::Error),
    /// Sending the dump request failed.
    #[error("failed to send the conntrack dump request")]
    Send(#[source] io::Error),
    /// Reading from the socket failed.
    #[error("failed to receive from the netfilter netlink socket")]
    Receive(#[source] io::Error),
    /// The kernel answered the dump request with an error.
    #[error("the kernel refused the conntrack dump")]
    Refused(#[source] io::Error),
}

/// A change to the set of translated TCP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConntrackEvent {
    /// A translated connection was confirmed.
    New(NatMapping),
    /// A translated connection's entry was removed.
    Destroyed(NatMapping),
    /// The kernel dropped events (`ENOBUFS` on the socket): the caller must re-dump.
    Overrun,
}

/// Blocking: dumps the conntrack table (IPv4 and IPv6) and returns the TCP entries whose
/// destination was translated (reply-direction source != original-direction destination,
/// address or port).
pub fn dump_nat() -> Result<Vec<NatMapping>, ConntrackError> {
    let socket = open()?;
    let kernel = netlink_sys::SocketAddr::new(0, 0);
    socket.connect(&kernel).map_err(ConntrackError::Setup)?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    // AF_UNSPEC dumps every layer-3 family at once.
    let family = NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 0);
    let inner = NetfilterMessage::new(family, ConntrackMessage::Get(Vec::new()));
    let mut request = NetlinkMessage::new(header, NetlinkPayload::from(inner));
    request.finalize();
    let mut bytes = vec![0; request.buffer_len()];
    request.serialize(&mut bytes);
    socket.send(&bytes, 0).map_err(ConntrackError::Send)?;

    let (mut events, mut skipped, mut buf) = (Vec::new(), 0, vec![0; 32 << 10]);
    loop {
        let len = recv_datagram(&socket, &mut buf).map_err(ConntrackError::Receive)?;
        let datagram = buf.get(..len).unwrap_or_default();
        match decode(datagram, &mut events, &mut skipped) {
            Ok(false) => {}
            Ok(true) => break,
            Err(code) => return Err(ConntrackError::Refused(io::Error::from_raw_os_error(-code))),
        }
    }
    debug!(entries = events.len(), skipped, "conntrack dump finished");
    let mappings = events.into_iter().filter_map(|event| match event {
        ConntrackEvent::New(mapping) => Some(mapping),
        _ => None,
    });
    Ok(mappings.collect())
}

/// Subscribes to conntrack NEW events of translated entries (IPv4+IPv6 TCP).
#[derive(Debug)]
pub struct ConntrackEvents {
    socket: AsyncFd<Socket>,
    buf: Vec<u8>,
    skipped: u64,
}

impl ConntrackEvents {
    /// Opens the event socket, joins the groups and asks for a 4 MiB receive buffer
    /// (`SO_RCVBUFFORCE`, else `SO_RCVBUF`, which `net.core.rmem_max` caps). Must be called
    /// within a tokio runtime with IO enabled.
    pub fn subscribe() -> Result<Self, ConntrackError> {
        tokio::runtime::Handle::try_current().map_err(ConntrackError::NoRuntime)?;
        let socket = open()?;
        attach_nat_filter(&socket).map_err(ConntrackError::Setup)?;
        socket
            .add_membership(GROUP_NEW)
            .map_err(ConntrackError::Join)?;
        set_receive_buffer(&socket, EVENT_SOCKET_BUFFER).map_err(ConntrackError::Setup)?;
        let bytes = socket.get_rx_buf_sz().ok();
        debug!(?bytes, "conntrack event socket receive buffer");
        socket
            .set_non_blocking(true)
            .map_err(ConntrackError::Setup)?;
        // SAFETY: `Socket` owns its descriptor, closes it only when dropped and always returns
        // the same one from `as_raw_fd`, so it stays valid for as long as the `AsyncFd` owns it.
        let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|e| ConntrackError::Setup(e.into()))?;
        Ok(Self {
            socket,
            buf: vec![0; EVENT_DATAGRAM_BUFFER],
            skipped: 0,
        })
    }

    /// Waits for the next datagram(s) and returns the NAT'd TCP events in them (may be empty
    /// vec); async over tokio. Datagrams already queued are drained without waiting; an
    /// overrun ends the batch with [`ConntrackEvent::Overrun`]. Cancel-safe: the only await
    /// comes before anything is read.
    pub async fn next_batch(&mut self) -> Result<Vec<ConntrackEvent>, ConntrackError> {
        let mut events = Vec::new();
        loop {
            let mut guard = self
                .socket
                .readable()
                .await
                .map_err(ConntrackError::Receive)?;
            let mut received = false;
            for _ in 0..MAX_DATAGRAMS_PER_BATCH {
                let len = match guard.try_io(|fd| fd.get_ref().recv(&mut &mut self.buf[..], 0)) {
                    Ok(Ok(len)) => len,
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        events.push(ConntrackEvent::Overrun);
                        return Ok(events);
                    }
                    Ok(Err(e)) => return Err(ConntrackError::Receive(e)),
                    Err(_would_block) => break,
                };
                received = true;
                let datagram = self.buf.get(..len).unwrap_or_default();
                if let Err(code) = decode(datagram, &mut events, &mut self.skipped) {
                    let error = io::Error::from_raw_os_error(-code);
                    debug!(%error, "netlink error on the conntrack event socket");
                }
            }
            // Nothing was queued after all (a spurious wake-up): wait again.
            if received {
                return Ok(events);
            }
        }
    }

    /// How many event messages were skipped because they did not decode.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// Makes the kernel drop every event whose `CTA_STATUS` lacks `IPS_DST_NAT`, before it is
/// queued on the socket. Classic BPF with the netlink-attribute extension: find the attribute,
/// load its value, test the bit.
fn attach_nat_filter(socket: &Socket) -> io::Result<()> {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let nlattr = (libc::SKF_AD_OFF + libc::SKF_AD_NLATTR) as u32;
    let program = [
        op(libc::BPF_LD | libc::BPF_IMM, 0, 0, ATTRIBUTES_OFFSET), // A = start of attributes
        op(libc::BPF_LDX | libc::BPF_IMM, 0, 0, CTA_STATUS),       // X = attribute type
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, nlattr), // A = offset of it, or 0
        op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 4, 0, 0),  // absent: drop
        op(libc::BPF_MISC | libc::BPF_TAX, 0, 0, 0),               // X = A
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_IND, 0, 0, 4),   // A = status (after header)
        op(
            libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K,
            0,
            1,
            IPS_DST_NAT,
        ),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX), // translated: deliver
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),        // anything else: drop
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    let len = libc::socklen_t::try_from(size_of::<libc::sock_fprog>()).unwrap_or_default();
    // SAFETY: the descriptor belongs to `socket`, which outlives the call; `fprog` points at
    // `program`, which lives until the call returns (the kernel copies it), and `len` is the
    // size of `sock_fprog`, as SO_ATTACH_FILTER expects.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const fprog).cast(),
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A netfilter netlink socket bound to a kernel-chosen port.
fn open() -> Result<Socket, ConntrackError> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(ConntrackError::Open)?;
    socket.bind_auto().map_err(ConntrackError::Setup)?;
    Ok(socket)
}

/// Reads one whole datagram, growing `buf` to fit it; returns its length.
fn recv_datagram(socket: &Socket, buf: &mut Vec<u8>) -> io::Result<usize> {
    // With MSG_TRUNC the kernel reports the datagram's real size even when it does not fit.
    let size = socket.recv(&mut &mut buf[..], libc::MSG_PEEK | libc::MSG_TRUNC)?;
    if size > buf.len() {
        buf.resize(size, 0);
    }
    socket.recv(&mut &mut buf[..], 0)
}

/// Asks for `bytes` of receive buffer, beyond `net.core.rmem_max` when privileged.
fn set_receive_buffer(socket: &Socket, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let len = libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap_or_default();
    let (fd, option) = (socket.as_raw_fd(), (&raw const value).cast());
    // SAFETY: the descriptor belongs to `socket`, which outlives the call; the option value
    // points at a live `c_int` and `len` is exactly its size, as SO_RCVBUFFORCE expects.
    let rc = unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, option, len) };
    if rc != 0 {
        debug!(error = %io::Error::last_os_error(), "SO_RCVBUFFORCE refused, using SO_RCVBUF");
        socket.set_rx_buf_sz(value)?;
    }
    Ok(())
}

/// Decodes a datagram's messages into `events`, counting and logging skipped ones. Returns
/// whether a dump ended, or the code of an `NLMSG_ERROR`.
fn decode(
    datagram: &[u8],
    events: &mut Vec<ConntrackEvent>,
    skipped: &mut u64,
) -> Result<bool, i32> {
    for message in split_datagram(datagram) {
        match parse_message(message) {
            Parsed::Event(event) => events.push(event),
            Parsed::Ignored => {}
            Parsed::Done => return Ok(true),
            Parsed::Error(code) => return Err(code),
            Parsed::Skipped(reason) => {
                *skipped += 1;
                debug!(%reason, skipped = *skipped, "skipped a conntrack message");
            }
        }
    }
    Ok(false)
}

/// Splits a datagram into its netlink messages; stops at the first malformed length.
fn split_datagram(datagram: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        let len = usize::try_from(u32::from_ne_bytes(rest.get(..4)?.try_into().ok()?)).ok()?;
        let Some(message) = rest.get(..len).filter(|_| len >= 16) else {
            debug!(
                len,
                left = rest.len(),
                "malformed netlink length, dropping the rest"
            );
            return None;
        };
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some(message)
    })
}

/// What one netlink message from a conntrack socket says.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A TCP entry whose destination was translated, from a NEW or a DELETE message.
    Event(ConntrackEvent),
    /// Well formed but of no interest: not TCP, not translated, another message type, an ACK.
    Ignored,
    /// The end of a dump.
    Done,
    /// `NLMSG_ERROR` with this (negative errno) code.
    Error(i32),
    /// Did not decode; the reason.
    Skipped(String),
}

/// Decodes one netlink message (header included). Pure: no I/O, no logging.
fn parse_message(bytes: &[u8]) -> Parsed {
    let message = match NetlinkMessage::<NetfilterMessage>::deserialize(bytes) {
        Ok(message) => message,
        Err(e) => return Parsed::Skipped(e.to_string()),
    };
    let (attributes, event): (_, fn(NatMapping) -> ConntrackEvent) = match message.payload {
        NetlinkPayload::Done(_) => return Parsed::Done,
        NetlinkPayload::Error(e) => {
            return e.code.map_or(Parsed::Ignored, |c| Parsed::Error(c.get()));
        }
        NetlinkPayload::InnerMessage(NetfilterMessage {
            inner: NetfilterMessageInner::Conntrack(conntrack),
            ..
        }) => match conntrack {
            ConntrackMessage::New(attributes) => (attributes, ConntrackEvent::New),
            ConntrackMessage::Delete(attributes) => (attributes, ConntrackEvent::Destroyed),
            _ => return Parsed::Ignored,
        },
        _ => return Parsed::Ignored,
    };
    match nat_mapping(&attributes) {
        Ok(Some(mapping)) => Parsed::Event(event(mapping)),
        Ok(None) => Parsed::Ignored,
        Err(reason) => Parsed::Skipped(reason.to_owned()),
    }
}

/// The mapping of a conntrack entry, if it is TCP and its destination was translated.
fn nat_mapping(attributes: &[ConntrackAttribute]) -> Result<Option<NatMapping>, &'static str> {
    let (mut original, mut reply) = (None, None);
    for attribute in attributes {
        match attribute {
            ConntrackAttribute::CtaTupleOrig(tuple) => original = Some(tuple),
            ConntrackAttribute::CtaTupleReply(tuple) => reply = Some(tuple),
            _ => {}
        }
    }
    let original = original.ok_or("no original-direction tuple")?;
    let Some((local, remote)) = tcp_endpoints(original)? else {
        return Ok(None);
    };
    let reply = reply.ok_or("no reply-direction tuple")?;
    let Some((real_destination, _)) = tcp_endpoints(reply)? else {
        return Err("reply tuple is not tcp but the original is");
    };
    let original = SocketPair { local, remote };
    let mapping = NatMapping {
        original,
        real_destination,
    };
    Ok((real_destination != remote).then_some(mapping))
}

/// Source and destination of a TCP tuple; `None` for other protocols.
fn tcp_endpoints(tuple: &[Tuple]) -> Result<Option<(SocketAddr, SocketAddr)>, &'static str> {
    let (mut protocol, mut src, mut dst, mut sport, mut dport) = (None, None, None, None, None);
    for part in tuple {
        match part {
            Tuple::Ip(ips) => ips.iter().for_each(|ip| match ip {
                IPTuple::SourceAddress(a) => src = Some(*a),
                IPTuple::DestinationAddress(a) => dst = Some(*a),
                _ => {}
            }),
            Tuple::Proto(protos) => protos.iter().for_each(|proto| match proto {
                ProtoTuple::Protocol(p) => protocol = Some(*p),
                ProtoTuple::SourcePort(p) => sport = Some(*p),
                ProtoTuple::DestinationPort(p) => dport = Some(*p),
                _ => {}
            }),
            _ => {}
        }
    }
    if protocol.ok_or("tuple without a protocol")? != Protocol::Tcp {
        return Ok(None);
    }
    let (Some(src), Some(dst), Some(sport), Some(dport)) = (src, dst, sport, dport) else {
        return Err("tcp tuple without addresses or ports");
    };
    let (source, destination) = (SocketAddr::new(src, sport), SocketAddr::new(dst, dport));
    Ok(Some((source, destination)))
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use netlink_packet_core::{DoneMessage, ErrorMessage};
    use {ConntrackAttribute::*, ConntrackMessage::*, Protocol::*};

    use super::*;

    fn addrs(pair: &str) -> Vec<SocketAddr> {
        pair.split(' ')
            .map(|a| a.parse().expect("test socket address"))
            .collect()
    }

    /// A conntrack entry; each direction is written `"source destination"`.
    fn entry(protocol: Protocol, original: &str, reply: &str) -> Vec<ConntrackAttribute> {
        let tuple = |pair| {
            let (src, dst) = (addrs(pair)[0], addrs(pair)[1]);
            let ip = vec![
                IPTuple::SourceAddress(src.ip()),
                IPTuple::DestinationAddress(dst.ip()),
            ];
            let (sport, dport) = (src.port(), dst.port());
            let ports = [
                ProtoTuple::SourcePort(sport),
                ProtoTuple::DestinationPort(dport),
            ];
            vec![
                Tuple::Ip(ip),
                Tuple::Proto(
                    [ProtoTuple::Protocol(protocol)]
                        .into_iter()
                        .chain(ports)
                        .collect(),
                ),
            ]
        };
        vec![
            CtaTupleOrig(tuple(original)),
            CtaTupleReply(tuple(reply)),
            CtaTimeout(120),
        ]
    }

    fn emit(payload: NetlinkPayload<NetfilterMessage>) -> Vec<u8> {
        let mut message = NetlinkMessage::new(NetlinkHeader::default(), payload);
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    fn conntrack(message: ConntrackMessage) -> Vec<u8> {
        let header = NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0);
        emit(NetfilterMessage::new(header, message).into())
    }

    fn error(code: i32) -> Vec<u8> {
        let mut error = ErrorMessage::default();
        error.code = NonZeroI32::new(code);
        emit(NetlinkPayload::Error(error))
    }

    fn parse(message: ConntrackMessage) -> Parsed {
        parse_message(&conntrack(message))
    }

    fn nat(original: &str, real: &str) -> NatMapping {
        let (local, remote) = (addrs(original)[0], addrs(original)[1]);
        let original = SocketPair { local, remote };
        NatMapping {
            original,
            real_destination: addrs(real)[0],
        }
    }

    const VIP: &str = "10.0.0.5:40000 10.123.0.1:80";
    const BACKEND: &str = "10.123.0.20:8080 10.0.0.5:40000";

    #[test]
    fn translated_tcp_entries() {
        let event = ConntrackEvent::New(nat(VIP, "10.123.0.20:8080"));
        assert_eq!(parse(New(entry(Tcp, VIP, BACKEND))), Parsed::Event(event));
        let (dialled, real) = (
            "[fd00::5]:1000 [fd00::1]:80",
            "[fd00::1]:8080 [fd00::5]:1000",
        );
        let event = ConntrackEvent::Destroyed(nat(dialled, "[fd00::1]:8080"));
        assert_eq!(
            parse(Delete(entry(Tcp, dialled, real))),
            Parsed::Event(event)
        );
    }

    #[test]
    fn untranslated_and_other_messages_are_ignored() {
        let snat = entry(
            Tcp,
            "10.0.0.5:5000 1.1.1.1:443",
            "1.1.1.1:443 192.0.2.7:5000",
        );
        assert_eq!(parse(New(snat)), Parsed::Ignored);
        assert_eq!(parse(New(entry(Udp, VIP, BACKEND))), Parsed::Ignored);
        assert_eq!(parse(Get(entry(Tcp, VIP, BACKEND))), Parsed::Ignored);
        let done = emit(NetlinkPayload::Done(DoneMessage::default()));
        assert_eq!(parse_message(&done), Parsed::Done);
        assert_eq!(parse_message(&error(0)), Parsed::Ignored);
        assert_eq!(
            parse_message(&error(-libc::EPERM)),
            Parsed::Error(-libc::EPERM)
        );
    }

    #[test]
    fn malformed_messages_are_skipped_without_panicking() {
        let skipped = |reason: &str| Parsed::Skipped(reason.into());
        let mut no_reply = entry(Tcp, VIP, BACKEND);
        no_reply.remove(1);
        assert_eq!(parse(New(no_reply)), skipped("no reply-direction tuple"));
        let no_addresses = CtaTupleOrig(vec![Tuple::Proto(vec![ProtoTuple::Protocol(Tcp)])]);
        let parsed = parse(New(vec![no_addresses]));
        assert_eq!(parsed, skipped("tcp tuple without addresses or ports"));
        assert!(matches!(parse_message(&[0xff; 20]), Parsed::Skipped(_)));

        let valid = conntrack(New(entry(Tcp, VIP, BACKEND)));
        let (mut events, mut skipped) = (Vec::new(), 0);
        for len in 0..valid.len() {
            let _ = decode(&valid[..len], &mut events, &mut skipped);
        }
        for (i, value) in (0..valid.len()).flat_map(|i| [0, 3, 0x7f, 0xff].map(|v| (i, v))) {
            let mut bytes = valid.clone();
            bytes[i] = value;
            let _ = decode(&bytes, &mut events, &mut skipped);
        }
        assert!(skipped > 0);
    }

    #[test]
    fn splits_datagrams() {
        let one = conntrack(New(entry(Tcp, VIP, BACKEND)));
        let done = emit(NetlinkPayload::Done(DoneMessage::default()));
        let datagram = [one.clone(), done.clone(), vec![0xff; 7]].concat();
        let messages: Vec<_> = split_datagram(&datagram).collect();
        assert_eq!(messages, [&one[..], &done[..]]);
        let (mut events, mut skipped) = (Vec::new(), 0);
        assert_eq!(decode(&datagram, &mut events, &mut skipped), Ok(true));
        assert!(matches!(events[..], [ConntrackEvent::New(_)]));
    }
}
