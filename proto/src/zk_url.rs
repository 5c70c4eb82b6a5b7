//! `zk://HOST:PORT[,HOST:PORT...]/PATH` addresses: the servers to connect to and the znode
//! subtree to work on. Shared: aggregators keep their state and elect under one, agents
//! find the leader through one.

use std::fmt;

/// A parsed `zk://` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkUrl {
    /// `host:port,host:port`, as the client connects.
    pub servers: String,
    /// The subtree: `/` or a path without a trailing slash.
    pub root: String,
}

/// Why an address is not a `zk://` URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not zk://HOST:PORT[,HOST:PORT...][/PATH]: {why}")]
pub struct BadZkUrl {
    pub given: String,
    pub why: &'static str,
}

impl std::str::FromStr for ZkUrl {
    type Err = BadZkUrl;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadZkUrl {
            given: given.to_owned(),
            why,
        };
        let rest = given
            .strip_prefix("zk://")
            .ok_or_else(|| bad("it must start with zk://"))?;
        let (servers, path) = match rest.find('/') {
            Some(cut) => (&rest[..cut], &rest[cut..]),
            None => (rest, "/"),
        };
        if servers.is_empty() {
            return Err(bad("no server"));
        }
        for server in servers.split(',') {
            let (host, port) = server
                .rsplit_once(':')
                .ok_or_else(|| bad("every server needs a port"))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad("every server is HOST:PORT"));
            }
        }
        let root = if path == "/" {
            "/".to_owned()
        } else {
            path.trim_end_matches('/').to_owned()
        };
        if root.contains("//") {
            return Err(bad("the path has an empty segment"));
        }
        Ok(Self {
            servers: servers.to_owned(),
            root,
        })
    }
}

impl fmt::Display for ZkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "zk://{}{}",
            self.servers,
            if self.root == "/" { "" } else { &self.root }
        )
    }
}

impl ZkUrl {
    /// The absolute path of `relative` (`""` or `/a/b`) under the root.
    pub fn absolute(&self, relative: &str) -> String {
        match (self.root.as_str(), relative) {
            ("/", "") => "/".to_owned(),
            ("/", rel) => rel.to_owned(),
            (root, rel) => format!("{root}{rel}"),
        }
    }

    /// The path of `absolute` relative to the root, if it is under it.
    pub fn relative<'a>(&self, absolute: &'a str) -> Option<&'a str> {
        if self.root == "/" {
            return Some(if absolute == "/" { "" } else { absolute });
        }
        let rest = absolute.strip_prefix(self.root.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

/// The prefix of the contenders' znodes under a set's path, as Mesos masters name theirs
/// (`json.info_0000000012`): the lowest sequence leads.
pub const CONTENDER_PREFIX: &str = "json.info_";

/// The contender with the smallest sequence among a set path's `children`: the leader's
/// znode. Other names, and contenders without a sequence, are ignored.
pub fn lowest_contender(children: &[String]) -> Option<&String> {
    children
        .iter()
        .filter_map(|c| {
            let sequence = c.strip_prefix(CONTENDER_PREFIX)?.parse::<u64>().ok()?;
            Some((sequence, c))
        })
        .min()
        .map(|(_, c)| c)
}

/// The migration record under a set's path: where its masters and agents are now.
pub const MIGRATION_RECORD: &str = "/migration";

/// The file, in an aggregator's data directory or an agent's state directory, that
/// remembers where a migration moved the set from the `zk://` address it was given, so it
/// goes there directly once the old cluster is gone.
pub const MOVED_FILE: &str = "zk-moved.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct Moved {
    given: String,
    at: String,
}

/// Remembers that the set found through `given` is at `at` (forgets it when they are the
/// same: the move was rolled back).
pub fn remember_move(dir: &std::path::Path, given: &ZkUrl, at: &ZkUrl) -> std::io::Result<()> {
    let path = dir.join(MOVED_FILE);
    if given == at {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let moved = Moved {
        given: given.to_string(),
        at: at.to_string(),
    };
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec(&moved).expect("always serializes");
    let partial = dir.join(format!("{MOVED_FILE}.partial"));
    std::fs::write(&partial, json)?;
    std::fs::rename(partial, path)
}

/// Where the set found through `given` was last seen to have moved, if it was.
pub fn remembered_move(dir: &std::path::Path, given: &ZkUrl) -> Option<ZkUrl> {
    let bytes = std::fs::read(dir.join(MOVED_FILE)).ok()?;
    let moved: Moved = serde_json::from_slice(&bytes).ok()?;
    (moved.given == given.to_string())
        .then(|| moved.at.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_paths_map() {
        let url: ZkUrl = "zk://a:2181,b:2182/mesos/".parse().expect("valid");
        assert_eq!(
            (url.servers.as_str(), url.root.as_str()),
            ("a:2181,b:2182", "/mesos")
        );
        assert_eq!(url.absolute("/x"), "/mesos/x");
        assert_eq!(url.relative("/mesos/x"), Some("/x"));
        assert_eq!(url.relative("/mesosphere"), None);
        let root: ZkUrl = "zk://a:1".parse().expect("valid");
        assert_eq!(
            (root.absolute(""), root.absolute("/q")),
            ("/".into(), "/q".into())
        );
        for bad in [
            "http://a:1/x",
            "zk:///x",
            "zk://a/x",
            "zk://a:b/x",
            "zk://a:1//x",
        ] {
            assert!(bad.parse::<ZkUrl>().is_err(), "{bad}");
        }
        assert_eq!(url.to_string(), "zk://a:2181,b:2182/mesos");
    }

    #[test]
    fn a_move_is_remembered_per_given_address_and_forgotten_when_rolled_back() {
        let dir = std::env::temp_dir().join(format!("strata-moved-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (given, at): (ZkUrl, ZkUrl) = (
            "zk://a:1/s".parse().expect("url"),
            "zk://b:1,c:1/s".parse().expect("url"),
        );
        assert_eq!(remembered_move(&dir, &given), None);
        remember_move(&dir, &given, &at).expect("remembers");
        assert_eq!(remembered_move(&dir, &given), Some(at.clone()));
        let other: ZkUrl = "zk://x:1/s".parse().expect("url");
        assert_eq!(remembered_move(&dir, &other), None);
        remember_move(&dir, &given, &given).expect("forgets");
        assert_eq!(remembered_move(&dir, &given), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
