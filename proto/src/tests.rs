//! Round trips of every field, and refusal of malformed, truncated and oversized buffers.

use crate::{
    control::Control,
    decode::{self, DecodeError, Limits},
    encode,
    model::*,
};

pub(crate) fn sample_report() -> Report {
    let mut report = Report::new("agent-1", 42, 1_700_000_000_000, ReportKind::Full);
    report.host = Some(Host {
        hostname: "node-a".into(),
        kernel_release: "6.18.0".into(),
        os: Some("Debian".into()),
        cpus: 8,
        memory_total_bytes: 1 << 34,
        memory_available_bytes: 1 << 33,
        load_average: [0.5, 0.25, 0.125],
        uptime_seconds: 1234.5,
        cpu_usage_percent: Some(12.5),
        interfaces: vec![Interface {
            name: "eth0".into(),
            addresses: vec!["10.0.0.1/24".into()],
        }],
    });
    report.processes = vec![Process {
        pid: 7,
        ppid: Some(1),
        comm: "nginx".into(),
        cmdline: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
        user: Some("www".into()),
        cgroup: Some("/docker/abc".into()),
        container_id: Some("abc".into()),
        cpu_percent: Some(1.5),
        rss_bytes: Some(4096),
        start_ns: Some(99),
        exited: false,
    }];
    report.removed_processes = vec![3, 4];
    report.containers = vec![Container {
        id: "abc".into(),
        name: "web".into(),
        image: "nginx:1".into(),
        state: "running".into(),
        labels: vec![("app".into(), "web".into())],
        pid: Some(7),
        ports: vec![Port {
            container_port: 80,
            host_port: Some(8080),
            protocol: "tcp".into(),
            host_ip: Some("0.0.0.0".into()),
        }],
        networks: vec![Network {
            name: "bridge".into(),
            ip_address: Some("172.17.0.2".into()),
        }],
    }];
    report.removed_containers = vec!["old".into()];
    report.connections = vec![
        Connection {
            local: "10.0.0.1:40000".parse().expect("addr"),
            remote: "10.99.0.1:80".parse().expect("addr"),
            nat_destination: Some("172.17.0.2:80".parse().expect("addr")),
            pid: Some(7),
            direction: Direction::Outbound,
            closed: false,
            bytes_sent: 100,
            bytes_received: 2000,
            retransmits: 1,
        },
        Connection {
            local: "[fd00::1]:443".parse().expect("addr"),
            remote: "[fd00::2]:50000".parse().expect("addr"),
            nat_destination: None,
            pid: None,
            direction: Direction::Inbound,
            closed: true,
            bytes_sent: 0,
            bytes_received: 0,
            retransmits: 0,
        },
    ];
    report.removed_connections = vec![(
        "10.0.0.1:1".parse().expect("addr"),
        "10.0.0.2:2".parse().expect("addr"),
    )];
    report.collection_mode = "ebpf".into();
    report.events_lost = 3;
    report
}

#[test]
fn every_field_of_a_report_survives_the_wire() {
    let report = sample_report();
    let bytes = encode::report(&report);
    assert_eq!(
        decode::report(&bytes, &Limits::default()).expect("valid"),
        report
    );
}

#[test]
fn garbage_truncated_and_oversized_buffers_are_refused() {
    let bytes = encode::report(&sample_report());
    let limits = Limits::default();
    assert!(matches!(
        decode::report(&[1, 2, 3], &limits),
        Err(DecodeError::Invalid(_))
    ));
    for cut in [4, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            decode::report(&bytes[..cut], &limits).is_err(),
            "truncated at {cut}"
        );
    }
    let small = Limits {
        max_bytes: bytes.len() - 1,
        ..limits
    };
    assert!(matches!(
        decode::report(&bytes, &small),
        Err(DecodeError::TooLarge { .. })
    ));
    let shallow = Limits {
        max_tables: 3,
        ..limits
    };
    assert!(matches!(
        decode::report(&bytes, &shallow),
        Err(DecodeError::Invalid(_))
    ));
}

#[test]
fn flipped_bytes_never_panic() {
    let bytes = encode::report(&sample_report());
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut corrupt = bytes.clone();
            corrupt[i] ^= bit;
            let _ = decode::report(&corrupt, &Limits::default());
        }
    }
}

#[test]
fn control_messages_round_trip() {
    let limits = Limits::default();
    for message in [
        Control::Hello {
            agent_id: "a".into(),
            version: "0.1.0".into(),
            discovery: None,
        },
        Control::Hello {
            agent_id: "b".into(),
            version: "0.1.0".into(),
            discovery: Some("zk://z1:2181,z2:2181/strata".into()),
        },
        Control::Ack { sequence: 9 },
        Control::RequestFull,
        Control::Enroll {
            token: "t".into(),
            hostname: "h".into(),
        },
        Control::Enrolled {
            agent_id: "a".into(),
            certificate_pem: "c".into(),
            private_key_pem: "k".into(),
        },
        Control::Refused {
            reason: "no".into(),
            leader: None,
        },
        Control::Refused {
            reason: "a standby".into(),
            leader: Some("10.0.0.2:5051".into()),
        },
    ] {
        assert_eq!(
            Control::decode(&message.encode(), &limits).expect("valid"),
            message
        );
    }
    assert!(Control::decode(&encode::report(&sample_report())[..8], &limits).is_err());
}
