//! Reading tracepoint record layouts from tracefs `format` files. Rust eBPF has no CO-RE for
//! tracepoint records, so the programs read fields at offsets user space gives them; this
//! module finds those offsets and refuses layouts whose fields are missing or resized.

use std::collections::HashMap;

use agent_common::TracepointLayout;

/// A tracepoint whose record the agent cannot read.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot read the format of tracepoint {tracepoint}")]
    Unreadable {
        tracepoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tracepoint {tracepoint} has no field {field}")]
    MissingField {
        tracepoint: String,
        field: &'static str,
    },
    #[error("field {field} of tracepoint {tracepoint} is {found} bytes, expected {expected}")]
    UnexpectedSize {
        tracepoint: String,
        field: &'static str,
        expected: u32,
        found: u32,
    },
}

/// Offset and size of each field of a record, by field name.
pub type Fields = HashMap<String, (u32, u32)>;

/// Parses the `field:` lines of a tracefs `format` file.
pub fn parse_format(text: &str) -> Fields {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().split(';').map(str::trim);
            let declaration = parts.next()?.strip_prefix("field:")?;
            let name = declaration.split_whitespace().last()?;
            let name = name.split('[').next()?;
            let mut offset = None;
            let mut size = None;
            for part in parts {
                if let Some(value) = part.strip_prefix("offset:") {
                    offset = value.parse().ok();
                } else if let Some(value) = part.strip_prefix("size:") {
                    size = value.parse().ok();
                }
            }
            Some((name.to_owned(), (offset?, size?)))
        })
        .collect()
}

/// The tracepoints the programs attach to, as (category, name).
pub const TRACEPOINTS: [(&str, &str); 5] = [
    ("sched", "sched_process_exec"),
    ("sched", "sched_process_fork"),
    ("sched", "sched_process_exit"),
    ("sock", "inet_sock_set_state"),
    ("tcp", "tcp_retransmit_skb"),
];

/// Builds the layout from the format of each tracepoint, given a reader of `format` files.
pub fn layout(
    mut read_format: impl FnMut(&str, &str) -> std::io::Result<String>,
) -> Result<TracepointLayout, LayoutError> {
    let mut formats = HashMap::new();
    for (category, name) in TRACEPOINTS {
        let tracepoint = format!("{category}/{name}");
        let text = read_format(category, name).map_err(|source| LayoutError::Unreadable {
            tracepoint: tracepoint.clone(),
            source,
        })?;
        formats.insert(name, (tracepoint, parse_format(&text)));
    }
    let field = |name: &str, field: &'static str, size: u32| -> Result<u32, LayoutError> {
        let (tracepoint, fields) = &formats[name];
        let &(offset, found) = fields.get(field).ok_or_else(|| LayoutError::MissingField {
            tracepoint: tracepoint.clone(),
            field,
        })?;
        if found != size {
            return Err(LayoutError::UnexpectedSize {
                tracepoint: tracepoint.clone(),
                field,
                expected: size,
                found,
            });
        }
        Ok(offset)
    };
    let sock = |f, size| field("inet_sock_set_state", f, size);
    let retransmit = |f, size| field("tcp_retransmit_skb", f, size);
    Ok(TracepointLayout {
        exec_filename: field("sched_process_exec", "filename", 4)?,
        fork_child_pid: field("sched_process_fork", "child_pid", 4)?,
        sock_skaddr: sock("skaddr", 8)?,
        sock_oldstate: sock("oldstate", 4)?,
        sock_newstate: sock("newstate", 4)?,
        sock_sport: sock("sport", 2)?,
        sock_dport: sock("dport", 2)?,
        sock_family: sock("family", 2)?,
        sock_protocol: sock("protocol", 2)?,
        sock_saddr_v6: sock("saddr_v6", 16)?,
        sock_daddr_v6: sock("daddr_v6", 16)?,
        retransmit_sport: retransmit("sport", 2)?,
        retransmit_dport: retransmit("dport", 2)?,
        retransmit_saddr_v6: retransmit("saddr_v6", 16)?,
        retransmit_daddr_v6: retransmit("daddr_v6", 16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK_6_18: &str = "name: sched_process_fork\nID: 300\nformat:\n\
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
        \tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
        \tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\
        \tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n\
        \tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
    const FORK_6_1: &str = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
        \tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
        \tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;\n\
        \tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n";

    #[test]
    fn fields_are_parsed_with_arrays_and_data_locations() {
        let fields = parse_format(FORK_6_18);
        assert_eq!(fields.get("child_pid"), Some(&(20, 4)));
        assert_eq!(fields.get("parent_comm"), Some(&(8, 4)));
        assert_eq!(parse_format(FORK_6_1).get("child_comm"), Some(&(28, 16)));
    }

    /// Formats of a 6.18 kernel, with `fork` replaced by `fork_format`.
    fn formats(fork_format: &'static str) -> impl FnMut(&str, &str) -> std::io::Result<String> {
        move |_, name| {
            Ok(match name {
                "sched_process_exec" => {
                    "\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;".into()
                }
                "sched_process_fork" => fork_format.into(),
                "sched_process_exit" => String::new(),
                "inet_sock_set_state" => [
                    ("const void * skaddr", 8, 8),
                    ("int oldstate", 16, 4),
                    ("int newstate", 20, 4),
                    ("__u16 sport", 24, 2),
                    ("__u16 dport", 26, 2),
                    ("__u16 family", 28, 2),
                    ("__u16 protocol", 30, 2),
                    ("__u8 saddr_v6[16]", 40, 16),
                    ("__u8 daddr_v6[16]", 56, 16),
                ]
                .iter()
                .map(|(f, o, s)| format!("\tfield:{f};\toffset:{o};\tsize:{s};\tsigned:0;\n"))
                .collect(),
                _ => [
                    ("__u16 sport", 28, 2),
                    ("__u16 dport", 30, 2),
                    ("__u8 saddr_v6[16]", 42, 16),
                    ("__u8 daddr_v6[16]", 58, 16),
                ]
                .iter()
                .map(|(f, o, s)| format!("\tfield:{f};\toffset:{o};\tsize:{s};\tsigned:0;\n"))
                .collect(),
            })
        }
    }

    #[test]
    fn the_layout_follows_the_kernel_and_matches_the_built_in_default() {
        assert_eq!(
            layout(formats(FORK_6_18)).expect("layout"),
            TracepointLayout::LINUX_6_18
        );
        assert_eq!(
            layout(formats(FORK_6_1)).expect("layout").fork_child_pid,
            44
        );
    }

    #[test]
    fn a_missing_or_resized_field_is_refused_with_its_name() {
        let err =
            layout(formats("\tfield:pid_t parent_pid;\toffset:12;\tsize:4;")).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "tracepoint sched/sched_process_fork has no field child_pid"
        );
        let err =
            layout(formats("\tfield:long child_pid;\toffset:20;\tsize:8;")).expect_err("refused");
        assert!(err.to_string().contains("is 8 bytes, expected 4"), "{err}");
    }
}
