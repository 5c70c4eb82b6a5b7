//! Fuzzes what the aggregator does with bytes from the network: open the report envelope
//! (size check, LZ4, FlatBuffers verification, decoding) and merge whatever decodes into the
//! topology, then build the views. Nothing may panic.
#![no_main]

use aggregator::topology::Topology;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = proto::Limits {
        max_bytes: 1 << 20,
        ..proto::Limits::default()
    };
    for bytes in [data, &data[data.len().min(1)..]] {
        let opened = proto::compress::open(bytes, &limits);
        let decoded = proto::decode::report(bytes, &limits);
        let mut topology = Topology::default();
        for report in [opened, decoded].into_iter().flatten() {
            topology.connected(&report.agent_id);
            let _ = topology.apply(report, 1);
        }
        let _ = topology.refresh();
    }
});
