//! Host network interfaces and their addresses through rtnetlink (netlink-packet-route).
//!
//! [`links`] dumps `RTM_GETLINK` and `RTM_GETADDR` (every address family) over one blocking
//! socket and joins the addresses to their interfaces by index. Only the attributes the model
//! needs are decoded, one at a time, so an attribute this version of netlink-packet-route cannot
//! decode costs only itself; a message that does not decode at all is skipped and logged at
//! debug level.

use std::io;

use netlink_packet_core::{
    ErrorBuffer, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NlasIterator, Parseable, ParseableParametrized,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    address::{AddressAttribute, AddressHeader, AddressMessage},
    link::{LinkAttribute, LinkFlags, LinkHeader, LinkMessage},
};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use tracing::debug;

use crate::model::{InterfaceAddress, Link};

/// `sizeof(struct ifinfomsg)`: the link attributes follow it.
const LINK_HEADER_LEN: usize = 16;
/// `sizeof(struct ifaddrmsg)`: the address attributes follow it.
const ADDRESS_HEADER_LEN: usize = 8;
/// The `IFLA_*` attributes a [`Link`] is made of.
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;

/// Failures dumping links or addresses over rtnetlink. The `&str` names the dump.
#[derive(Debug, thiserror::Error)]
pub enum LinksError {
    /// `socket(AF_NETLINK, NETLINK_ROUTE)` failed.
    #[error("failed to open a route netlink socket")]
    Open(#[source] io::Error),
    /// Binding or connecting the socket failed.
    #[error("failed to set up the route netlink socket")]
    Setup(#[source] io::Error),
    /// Sending a dump request failed.
    #[error("failed to send the {0} dump request")]
    Send(&'static str, #[source] io::Error),
    /// Reading a dump failed.
    #[error("failed to receive the {0} dump")]
    Receive(&'static str, #[source] io::Error),
    /// The kernel answered a dump request with an error.
    #[error("the kernel refused the {0} dump")]
    Refused(&'static str, #[source] io::Error),
}

/// Blocking: dumps links (RTM_GETLINK) and addresses (RTM_GETADDR, v4+v6) and joins them by
/// interface index. Links come sorted by index; `up` is the administrative `IFF_UP` flag.
pub fn links() -> Result<Vec<Link>, LinksError> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(LinksError::Open)?;
    socket.bind_auto().map_err(LinksError::Setup)?;
    socket
        .connect(&netlink_sys::SocketAddr::new(0, 0))
        .map_err(LinksError::Setup)?;
    let (mut links, mut addresses) = (Vec::new(), Vec::new());
    let request = RouteNetlinkMessage::GetLink(LinkMessage::default());
    dump(&socket, request, "link", |payload| {
        parse_link(payload).map(|link| links.push(link))
    })?;
    let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
    dump(&socket, request, "address", |payload| {
        parse_address(payload).map(|a| addresses.push(a))
    })?;
    Ok(join(links, addresses))
}

/// Sends one dump request and hands each reply's payload to `on_reply` until `NLMSG_DONE`.
fn dump(
    socket: &Socket,
    request: RouteNetlinkMessage,
    what: &'static str,
    mut on_reply: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), LinksError> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(header, NetlinkPayload::from(request));
    request.finalize();
    let mut bytes = vec![0; request.buffer_len()];
    request.serialize(&mut bytes);
    socket
        .send(&bytes, 0)
        .map_err(|e| LinksError::Send(what, e))?;

    let mut buf = vec![0; 32 << 10];
    loop {
        let len = recv_datagram(socket, &mut buf).map_err(|e| LinksError::Receive(what, e))?;
        let mut rest = buf.get(..len).unwrap_or_default();
        while !rest.is_empty() {
            let message = match NetlinkBuffer::new_checked(rest) {
                Ok(message) => message,
                Err(error) => {
                    debug!(%error, what, "malformed rtnetlink datagram, dropping the rest");
                    break;
                }
            };
            match message.message_type() {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = ErrorBuffer::new_checked(message.payload())
                        .ok()
                        .and_then(|e| e.code());
                    if let Some(code) = code {
                        let error = io::Error::from_raw_os_error(-code.get());
                        return Err(LinksError::Refused(what, error));
                    }
                }
                _ => {
                    if let Err(reason) = on_reply(message.payload()) {
                        debug!(%reason, what, "skipped an rtnetlink message");
                    }
                }
            }
            let next = usize::try_from(message.length()).unwrap_or(rest.len());
            rest = rest.get(next.next_multiple_of(4)..).unwrap_or_default();
        }
    }
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

/// Decodes an `RTM_NEWLINK` payload (`ifinfomsg` and attributes).
fn parse_link(payload: &[u8]) -> Result<Link, String> {
    let header = LinkHeader::parse(payload).map_err(|e| e.to_string())?;
    let mut link = Link {
        index: header.index,
        name: String::new(),
        mac_address: None,
        mtu: None,
        up: header.flags.contains(LinkFlags::Up),
        addresses: Vec::new(),
    };
    for nla in NlasIterator::new(payload.get(LINK_HEADER_LEN..).unwrap_or_default()) {
        let nla = nla.map_err(|e| e.to_string())?;
        if !matches!(nla.kind(), IFLA_ADDRESS | IFLA_IFNAME | IFLA_MTU) {
            continue;
        }
        match LinkAttribute::parse_with_param(&nla, header.interface_family) {
            Ok(LinkAttribute::IfName(name)) => link.name = name,
            Ok(LinkAttribute::Mtu(mtu)) => link.mtu = Some(mtu),
            Ok(LinkAttribute::Address(address)) => link.mac_address = format_mac(&address),
            Ok(_) => {}
            Err(e) => return Err(format!("link {}: {e}", link.index)),
        }
    }
    if link.name.is_empty() {
        return Err(format!("link {} has no name", link.index));
    }
    Ok(link)
}

/// Decodes an `RTM_NEWADDR` payload (`ifaddrmsg` and attributes) into the interface index
/// and the address.
fn parse_address(payload: &[u8]) -> Result<(u32, InterfaceAddress), String> {
    let header = AddressHeader::parse(payload).map_err(|e| e.to_string())?;
    let (mut local, mut address) = (None, None);
    for nla in NlasIterator::new(payload.get(ADDRESS_HEADER_LEN..).unwrap_or_default()) {
        match AddressAttribute::parse(&nla.map_err(|e| e.to_string())?) {
            Ok(AddressAttribute::Local(ip)) => local = Some(ip),
            Ok(AddressAttribute::Address(ip)) => address = Some(ip),
            Ok(_) | Err(_) => {}
        }
    }
    // IFA_LOCAL is the interface's own address; on point-to-point links IFA_ADDRESS is the
    // peer's. IPv6 sends only IFA_ADDRESS.
    let Some(address) = local.or(address) else {
        return Err(format!(
            "address on link {} without IFA_LOCAL or IFA_ADDRESS",
            header.index
        ));
    };
    Ok((
        header.index,
        InterfaceAddress {
            address,
            prefix_len: header.prefix_len,
        },
    ))
}

/// `aa:bb:cc:dd:ee:ff` for a 6-byte hardware address; `None` for anything else: loopback's
/// zeros, tunnels' IP-shaped addresses, interfaces without one.
fn format_mac(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 6 || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Attaches each address to the link with its index, keeping the dump's order; addresses of
/// links that are not (or no longer) in `links` are dropped. Returns links sorted by index.
fn join(mut links: Vec<Link>, addresses: Vec<(u32, InterfaceAddress)>) -> Vec<Link> {
    links.sort_by_key(|link| link.index);
    links.dedup_by_key(|link| link.index);
    for (index, address) in addresses {
        let position = links.binary_search_by_key(&index, |link| link.index).ok();
        match position.and_then(|i| links.get_mut(i)) {
            Some(link) => link.addresses.push(address),
            None => debug!(index, %address.address, "address of an unknown link, dropped"),
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use netlink_packet_core::Emitable;

    use super::*;

    fn link(index: u32, name: &str) -> Link {
        let (mac_address, mtu, up, addresses) = (None, None, false, Vec::new());
        Link {
            index,
            name: name.into(),
            mac_address,
            mtu,
            up,
            addresses,
        }
    }

    fn address(ip: &str, prefix_len: u8) -> InterfaceAddress {
        InterfaceAddress {
            address: ip.parse().expect("test address"),
            prefix_len,
        }
    }

    #[test]
    fn join_attaches_addresses_by_index() {
        let links = vec![link(3, "eth1"), link(1, "lo"), link(2, "eth0")];
        let addresses = vec![
            (1, address("127.0.0.1", 8)),
            (2, address("10.0.0.2", 24)),
            (9, address("10.9.9.9", 24)),
            (1, address("::1", 128)),
        ];
        let joined = join(links, addresses);
        let names: Vec<_> = joined.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "eth1"]);
        assert_eq!(
            joined[0].addresses,
            [address("127.0.0.1", 8), address("::1", 128)]
        );
        assert_eq!(joined[1].addresses, [address("10.0.0.2", 24)]);
        assert!(joined[2].addresses.is_empty());
    }

    #[test]
    fn formats_macs() {
        let mac = [0x02, 0x42, 0xac, 0x11, 0x00, 0x0a];
        assert_eq!(format_mac(&mac).as_deref(), Some("02:42:ac:11:00:0a"));
        assert_eq!(format_mac(&[0; 6]), None);
        assert_eq!(format_mac(&[10, 0, 0, 1]), None);
        assert_eq!(format_mac(&[]), None);
    }

    #[test]
    fn parses_emitted_messages() {
        let mut message = LinkMessage::default();
        message.header.index = 7;
        message.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        message.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Mtu(1500),
            LinkAttribute::Address(vec![0x02, 0x42, 0xac, 0x11, 0x00, 0x0a]),
            LinkAttribute::TxQueueLen(1000),
        ];
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        let parsed = parse_link(&bytes).expect("link decodes");
        assert_eq!(
            (parsed.index, parsed.name.as_str(), parsed.mtu, parsed.up),
            (7, "eth0", Some(1500), true)
        );
        assert_eq!(parsed.mac_address.as_deref(), Some("02:42:ac:11:00:0a"));
        assert!(parse_link(&bytes[..LINK_HEADER_LEN]).is_err(), "no name");
        assert!(parse_link(&bytes[..3]).is_err());

        let mut message = AddressMessage::default();
        message.header.index = 7;
        message.header.prefix_len = 24;
        let (peer, local): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        message.attributes = vec![
            AddressAttribute::Address(peer),
            AddressAttribute::Local(local),
        ];
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        assert_eq!(parse_address(&bytes), Ok((7, address("10.0.0.2", 24))));
        assert!(parse_address(&bytes[..ADDRESS_HEADER_LEN]).is_err());
    }
}
