//! `report-size`: what one host costs on the wire. A synthetic host with 100 containers, 1,000
//! processes and 5,000 connections: bytes of a full report, bytes per second of deltas at a
//! steady churn (as `strata-agent run` sends them: a delta every second, a full report every
//! 120th), and the same content as Weave-Scope-style JSON (timestamped string maps per node,
//! endpoint nodes with adjacency, a full report every 3 s), raw and gzip-compressed, in the
//! same run.
//!
//! Run with `cargo xtask bench` or `target/release/report-size [--seconds N]`.

use std::io::Write as _;

use agent::report::delta::Differ;
use flate2::{Compression, write::GzEncoder};
use proto::model::Report;
use rand::{SeedableRng as _, rngs::StdRng};
use serde_json::{Map, Value, json};
use tests::synthetic::{self, Shape};

const SHAPE: Shape = Shape {
    containers: 100,
    processes: 1_000,
    connections: 5_000,
};
/// `strata-agent run`'s default: one full report in 120.
const FULL_EVERY: u64 = 120;
/// Scope probes publish a full report every 3 seconds.
const SCOPE_PUBLISH_SECONDS: f64 = 3.0;

fn gzip(bytes: &[u8]) -> usize {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().map_or(0, |v| v.len())
}

fn latest(fields: &[(&str, String)]) -> Value {
    let stamp = "2026-11-22T02:00:00.000000000Z";
    let map: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!({ "timestamp": stamp, "value": v })))
        .collect();
    Value::Object(map)
}

/// The report's content in the shape of a Weave Scope probe report.
fn scope_style(report: &Report) -> Value {
    let host = report.host.as_ref().map_or("host", |h| h.hostname.as_str());
    let node = |id: String,
                topology: &str,
                fields: &[(&str, String)],
                adjacency: Vec<String>,
                parents: Value| {
        (
            id.clone(),
            json!({ "id": id, "topology": topology, "counters": {}, "sets": {}, "adjacency": adjacency,
            "latest": latest(fields), "parents": parents, "children": null }),
        )
    };
    let endpoints: Map<String, Value> = report
        .connections
        .iter()
        .flat_map(|c| {
            let local = format!("{host};{};{}", c.local.ip(), c.local.port());
            let remote = format!(";{};{}", c.remote.ip(), c.remote.port());
            let pid = c.pid.unwrap_or(0).to_string();
            [
                node(
                    local.clone(),
                    "endpoint",
                    &[
                        ("pid", pid),
                        ("procspied", "true".into()),
                        ("addr", c.local.ip().to_string()),
                        ("port", c.local.port().to_string()),
                    ],
                    vec![remote.clone()],
                    json!({}),
                ),
                node(
                    remote,
                    "endpoint",
                    &[
                        ("addr", c.remote.ip().to_string()),
                        ("port", c.remote.port().to_string()),
                    ],
                    vec![],
                    json!({}),
                ),
            ]
        })
        .collect();
    let processes: Map<String, Value> = report
        .processes
        .iter()
        .map(|p| {
            let parents = json!({ "host": [format!("{host};<host>")], "container": p.container_id.iter().map(|c| format!("{c};<container>")).collect::<Vec<_>>() });
            let (id, mut value) = node(
                format!("{host};{}", p.pid),
                "process",
                &[("pid", p.pid.to_string()), ("name", p.comm.clone()), ("cmdline", p.cmdline.join(" ")), ("ppid", p.ppid.unwrap_or(0).to_string()), ("threads", "4".into())],
                vec![],
                parents,
            );
            value["metrics"] = json!({
                "process_cpu_usage_percent": { "samples": [{ "date": "2026-11-22T02:00:00Z", "value": p.cpu_percent.unwrap_or(0.0) }], "min": 0, "max": 100 },
                "process_memory_usage_bytes": { "samples": [{ "date": "2026-11-22T02:00:00Z", "value": p.rss_bytes.unwrap_or(0) }], "min": 0, "max": 1e10 },
            });
            (id, value)
        })
        .collect();
    let containers: Map<String, Value> = report
        .containers
        .iter()
        .map(|c| {
            let mut fields = vec![
                ("docker_container_id", c.id.clone()),
                ("docker_container_name", c.name.clone()),
                ("docker_image_name", c.image.clone()),
                ("docker_container_state", c.state.clone()),
                ("docker_container_ports", "0.0.0.0:30000->8080/tcp".into()),
                (
                    "docker_container_ips",
                    c.networks
                        .iter()
                        .filter_map(|n| n.ip_address.clone())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ];
            let labels: Vec<(String, String)> = c
                .labels
                .iter()
                .map(|(k, v)| (format!("docker_label_{k}"), v.clone()))
                .collect();
            fields.extend(labels.iter().map(|(k, v)| (k.as_str(), v.clone())));
            node(
                format!("{};<container>", c.id),
                "container",
                &fields,
                vec![],
                json!({ "host": [format!("{host};<host>")] }),
            )
        })
        .collect();
    json!({
        "ID": "3f2a9c", "Plugins": [],
        "Endpoint": { "shape": "circle", "nodes": endpoints },
        "Process": { "shape": "square", "nodes": processes },
        "Container": { "shape": "hexagon", "nodes": containers },
        "Host": { "shape": "circle", "nodes": { format!("{host};<host>"): { "id": host, "latest": latest(&[("host_name", host.to_owned()), ("os", "linux".into())]) } } },
    })
}

fn main() {
    let seconds: u32 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let mut content = synthetic::host("node-00001-0000", 1, 100, SHAPE, 7);
    let full = proto::compress::seal(&content).len();
    let scope = serde_json::to_vec(&scope_style(&content)).unwrap_or_default();

    let mut differ = Differ::new(FULL_EVERY);
    let mut rng = StdRng::seed_from_u64(11);
    let first = differ.next(content.clone());
    let mut sent = 0usize;
    let mut deltas = (0usize, 0usize);
    for second in 1..=seconds {
        synthetic::churn(&mut content, second, 100, SHAPE, &mut rng);
        let report = differ.next(content.clone());
        let bytes = proto::compress::seal(&report).len();
        sent += bytes;
        if report.kind == proto::model::ReportKind::Delta {
            deltas.0 += 1;
            deltas.1 += bytes;
        }
    }
    let _ = first;
    let kib = |bytes: f64| bytes / 1024.0;
    let scope_raw_per_second = scope.len() as f64 / SCOPE_PUBLISH_SECONDS;
    let scope_gzip_per_second = gzip(&scope) as f64 / SCOPE_PUBLISH_SECONDS;
    let ours_per_second = sent as f64 / f64::from(seconds);
    println!(
        "host: {} containers, {} processes, {} connections; {seconds} s of steady churn",
        SHAPE.containers, SHAPE.processes, SHAPE.connections
    );
    println!("| | strata (FlatBuffers, LZ4) | Scope-style JSON | Scope-style JSON, gzip |");
    println!("|---|---|---|---|");
    println!(
        "| full report | {:.1} KiB | {:.1} KiB | {:.1} KiB |",
        kib(full as f64),
        kib(scope.len() as f64),
        kib(gzip(&scope) as f64)
    );
    println!(
        "| mean delta | {:.1} KiB | - | - |",
        kib(deltas.1 as f64 / deltas.0.max(1) as f64)
    );
    println!(
        "| steady state | {:.1} KiB/s | {:.1} KiB/s | {:.1} KiB/s |",
        kib(ours_per_second),
        kib(scope_raw_per_second),
        kib(scope_gzip_per_second)
    );
    println!(
        "ratio at steady state: Scope-style JSON / strata = {:.1}x raw, {:.1}x gzip",
        scope_raw_per_second / ours_per_second,
        scope_gzip_per_second / ours_per_second
    );
}
