//! What the agent offers: resources detected on the host (CPUs, memory, disk of the work
//! directory, a port range), overridden by `--resources`, and its `--attributes`. The parsers
//! are pure and take Mesos's syntax: `cpus:4;mem:2048;ports:[31000-32000,33000-33100]` and
//! `rack:a;zone:eu;level:3`.

use std::{collections::BTreeMap, path::Path};

use proto::exec::{AttributeValue, ResourceSpec};

const MIB: u64 = 1024 * 1024;
/// Memory kept for the host: min(1 GiB, half), in MB.
const MEM_RESERVED_MB: f64 = 1024.0;
/// Disk kept for the host: min(5 GiB, half), in MB.
const DISK_RESERVED_MB: f64 = 5120.0;
/// Ports offered when `--resources` names none.
pub const DEFAULT_PORTS: (u64, u64) = (31000, 32000);

/// Why `--resources` or `--attributes` could not be read; names the bad piece.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad piece `{piece}`: {why}")]
pub struct ParseError {
    pub piece: String,
    pub why: &'static str,
}

fn bad(piece: &str, why: &'static str) -> ParseError {
    ParseError {
        piece: piece.to_owned(),
        why,
    }
}

/// The `name:value` pieces of a `;`-separated list (empty pieces are skipped).
fn pieces(text: &str) -> impl Iterator<Item = Result<(&str, &str, &str), ParseError>> {
    text.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|piece| {
            let (name, value) = piece
                .split_once(':')
                .ok_or_else(|| bad(piece, "expected NAME:VALUE"))?;
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() {
                return Err(bad(piece, "empty name"));
            }
            if value.is_empty() {
                return Err(bad(piece, "empty value"));
            }
            Ok((piece, name, value))
        })
}

/// Parses `--resources`: scalars (`cpus:4`), ranges (`ports:[31000-32000,33000-33100]`) and
/// sets (`disks:{a,b}`).
pub fn parse_resources(text: &str) -> Result<ResourceSpec, ParseError> {
    let mut spec = ResourceSpec::default();
    for piece in pieces(text) {
        let (piece, name, value) = piece?;
        if let Some(inner) = value.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| bad(piece, "a range list ends with `]`"))?;
            let mut ranges = Vec::new();
            for range in inner.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                let (begin, end) = range
                    .split_once('-')
                    .ok_or_else(|| bad(piece, "ranges are BEGIN-END"))?;
                let number = |s: &str| {
                    s.trim()
                        .parse::<u64>()
                        .map_err(|_| bad(piece, "range bounds are whole numbers"))
                };
                let (begin, end) = (number(begin)?, number(end)?);
                if begin > end {
                    return Err(bad(piece, "a range begins after it ends"));
                }
                ranges.push((begin, end));
            }
            spec.ranges.insert(name.to_owned(), ranges);
        } else if let Some(inner) = value.strip_prefix('{') {
            let inner = inner
                .strip_suffix('}')
                .ok_or_else(|| bad(piece, "a set ends with `}`"))?;
            let items = inner.split(',').map(str::trim).filter(|i| !i.is_empty());
            spec.sets
                .insert(name.to_owned(), items.map(str::to_owned).collect());
        } else {
            let amount: f64 = value
                .parse()
                .map_err(|_| bad(piece, "a scalar is a number"))?;
            if !amount.is_finite() || amount < 0.0 {
                return Err(bad(piece, "a scalar is a finite number, zero or more"));
            }
            spec.scalars.insert(name.to_owned(), amount);
        }
    }
    Ok(spec)
}

/// Parses `--attributes`: numbers become [`AttributeValue::Number`], the rest text.
pub fn parse_attributes(text: &str) -> Result<BTreeMap<String, AttributeValue>, ParseError> {
    let mut attributes = BTreeMap::new();
    for piece in pieces(text) {
        let (_, name, value) = piece?;
        let value = match value.parse::<f64>() {
            Ok(number) if number.is_finite() => AttributeValue::Number(number),
            _ => AttributeValue::Text(value.to_owned()),
        };
        attributes.insert(name.to_owned(), value);
    }
    Ok(attributes)
}

/// What the host has, as read from the system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostCapacity {
    pub cpus: f64,
    pub mem_total_mb: f64,
    pub disk_free_mb: f64,
}

/// The detected offer from the host's capacity: memory and disk less a reserve for the host.
pub fn detected(capacity: HostCapacity) -> ResourceSpec {
    let keep = |total: f64, cap: f64| (total - cap.min(total / 2.0)).max(0.0).floor();
    let mut spec = ResourceSpec::default();
    spec.scalars.insert("cpus".into(), capacity.cpus);
    spec.scalars
        .insert("mem".into(), keep(capacity.mem_total_mb, MEM_RESERVED_MB));
    spec.scalars
        .insert("disk".into(), keep(capacity.disk_free_mb, DISK_RESERVED_MB));
    spec.ranges.insert("ports".into(), vec![DEFAULT_PORTS]);
    spec
}

/// `detected` with every resource named in `overrides` replaced.
pub fn merged(mut detected: ResourceSpec, overrides: &ResourceSpec) -> ResourceSpec {
    for (name, amount) in &overrides.scalars {
        detected.ranges.remove(name);
        detected.sets.remove(name);
        detected.scalars.insert(name.clone(), *amount);
    }
    for (name, ranges) in &overrides.ranges {
        detected.scalars.remove(name);
        detected.sets.remove(name);
        detected.ranges.insert(name.clone(), ranges.clone());
    }
    for (name, items) in &overrides.sets {
        detected.scalars.remove(name);
        detected.ranges.remove(name);
        detected.sets.insert(name.clone(), items.clone());
    }
    detected
}

/// Reads this host's capacity; `work_dir` is where sandboxes go (its file system's free
/// space is the disk offered). Unreadable figures count as zero.
pub fn host_capacity(work_dir: &Path) -> HostCapacity {
    // SAFETY: sysconf has no memory-safety preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let mem_total_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    HostCapacity {
        cpus: online.max(1) as f64,
        mem_total_mb: (mem_total_kb / 1024) as f64,
        disk_free_mb: free_bytes(work_dir).map_or(0.0, |b| (b / MIB) as f64),
    }
}

fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is a valid NUL-terminated string and stat points to writable memory of
    // the right type; statvfs initialises it when it returns 0.
    let stat = unsafe {
        if libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_parse_scalars_ranges_and_sets() {
        let spec =
            parse_resources("cpus:4; mem:2048.5;ports:[31000-32000, 33000-33100];gpus:{a,b}")
                .expect("parses");
        assert_eq!(spec.scalar("cpus"), 4.0);
        assert_eq!(spec.scalar("mem"), 2048.5);
        assert_eq!(spec.ranges["ports"], vec![(31000, 32000), (33000, 33100)]);
        assert_eq!(spec.sets["gpus"], vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(parse_resources("").expect("empty"), ResourceSpec::default());
    }

    #[test]
    fn resource_errors_name_the_bad_piece() {
        for (text, piece) in [
            ("cpus:4;mem", "mem"),
            ("cpus:four", "cpus:four"),
            ("ports:[1-2", "ports:[1-2"),
            ("ports:[5-2]", "ports:[5-2]"),
            ("ports:[a-b]", "ports:[a-b]"),
            (":3", ":3"),
            ("cpus:-1", "cpus:-1"),
        ] {
            let err = parse_resources(text).expect_err(text);
            assert_eq!(err.piece, piece, "{text}: {err}");
            assert!(err.to_string().contains(piece));
        }
    }

    #[test]
    fn attributes_are_numbers_or_text() {
        let attributes = parse_attributes("rack:a;zone:eu;level:3").expect("parses");
        assert_eq!(attributes["rack"], AttributeValue::Text("a".into()));
        assert_eq!(attributes["level"], AttributeValue::Number(3.0));
        assert_eq!(attributes.len(), 3);
        assert!(parse_attributes("rack").is_err());
    }

    #[test]
    fn detection_keeps_a_reserve_and_overrides_replace() {
        let big = detected(HostCapacity {
            cpus: 2.0,
            mem_total_mb: 24_000.0,
            disk_free_mb: 100_000.0,
        });
        assert_eq!(big.scalar("mem"), 24_000.0 - 1024.0);
        assert_eq!(big.scalar("disk"), 100_000.0 - 5120.0);
        assert_eq!(big.ranges["ports"], vec![DEFAULT_PORTS]);
        let small = detected(HostCapacity {
            cpus: 1.0,
            mem_total_mb: 1000.0,
            disk_free_mb: 2000.0,
        });
        assert_eq!(small.scalar("mem"), 500.0);
        assert_eq!(small.scalar("disk"), 1000.0);
        let overrides = parse_resources("cpus:8;ports:[1-2]").expect("parses");
        let offer = merged(big, &overrides);
        assert_eq!(offer.scalar("cpus"), 8.0);
        assert_eq!(offer.scalar("mem"), 24_000.0 - 1024.0);
        assert_eq!(offer.ranges["ports"], vec![(1, 2)]);
    }

    #[test]
    fn capacity_is_read_from_this_host() {
        let capacity = host_capacity(Path::new("/"));
        assert!(capacity.cpus >= 1.0);
        assert!(capacity.mem_total_mb > 0.0);
    }
}
