//! What the phases check on the clusters: that a target is fit (phase 1), and which
//! sessions are still open on the source (phase 5), read with ZooKeeper's `cons` command.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use zookeeper_client as zk;

use crate::zk::url::ZkUrl;

/// How long one cluster may take to answer a check.
const PATIENCE: Duration = Duration::from_secs(5);

/// Connects to `url` for a check, giving up after [`PATIENCE`].
pub async fn connect(url: &ZkUrl) -> Result<zk::Client, String> {
    match tokio::time::timeout(PATIENCE, crate::zk::connect(url)).await {
        Ok(connected) => connected.map_err(|err| err.to_string()),
        Err(_) => Err(format!("{url} did not answer within {PATIENCE:?}")),
    }
}

/// Checks that `target` can take the set now at `source` (whose client is `source_client`):
/// reachable, a different cluster, ZooKeeper 3.6+ (persistent recursive watches), writable,
/// and its path holding nothing but a migration record. Returns what was checked.
pub async fn verify_target(
    source_client: &zk::Client,
    source: &ZkUrl,
    target: &ZkUrl,
) -> Result<String, String> {
    let client = connect(target).await?;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client
        .mkdir(&target.root, &open)
        .await
        .or_else(|e| {
            if e == zk::Error::NodeExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| format!("cannot create {} on the target: {e}", target.root))?;
    let children = client
        .list_children(&target.root)
        .await
        .map_err(|e| format!("cannot list {} on the target: {e}", target.root))?;
    let others: Vec<_> = children.iter().filter(|c| *c != "migration").collect();
    if !others.is_empty() {
        return Err(format!(
            "{target} already holds {} node(s) ({}); the set's path on the target must be empty",
            others.len(),
            others
                .iter()
                .take(5)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let watch = client
        .watch(&target.root, zk::AddWatchMode::PersistentRecursive)
        .await;
    if let Err(err) = watch {
        return Err(format!(
            "{target} cannot place a persistent recursive watch ({err}): ZooKeeper 3.6 or later is needed"
        ));
    }
    let probe = format!(
        "{}/migration-probe-{:016x}",
        target.root,
        rand::random::<u64>()
    );
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    client
        .create(&probe, b"probe", &ephemeral)
        .await
        .map_err(|e| format!("cannot write to the target ({probe}): {e}"))?;
    let seen_on_source = source_client
        .check_stat(&probe)
        .await
        .map_err(|e| format!("cannot read the source ({source}): {e}"))?
        .is_some();
    let _ = client.delete(&probe, None).await;
    if seen_on_source {
        return Err(format!(
            "{target} is the same cluster as the source {source}: a node written to one appeared on the other"
        ));
    }
    Ok(format!(
        "{target} is reachable, writable, a cluster of its own, supports persistent recursive watches, and its path is empty"
    ))
}

/// One client session open on a server, as `cons` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub client: String,
    pub id: i64,
}

/// The established sessions in a `cons` answer (connections still handshaking have none).
pub fn parse_cons(answer: &str) -> Vec<Session> {
    answer
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let client = line.strip_prefix('/')?.split('[').next()?.to_owned();
            let sid = line
                .split(['(', ',', ')'])
                .find_map(|f| f.strip_prefix("sid="))?;
            let id = u64::from_str_radix(sid.trim_start_matches("0x"), 16).ok()? as i64;
            Some(Session { client, id })
        })
        .collect()
}

/// Sends a four-letter command to one server and reads its whole answer.
async fn four_letter(server: &str, command: &str) -> Result<String, String> {
    let talk = async {
        let mut stream = tokio::net::TcpStream::connect(server).await?;
        stream.write_all(command.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(PATIENCE, talk).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(format!("{server}: {err}")),
        Err(_) => Err(format!("{server} did not answer `{command}` in time")),
    }
}

/// The sessions open on every server of `url`'s cluster, except those in `ours`.
pub async fn foreign_sessions(url: &ZkUrl, ours: &[i64]) -> Result<Vec<Session>, String> {
    let mut found = Vec::new();
    for server in url.servers.split(',') {
        let answer = four_letter(server, "cons").await?;
        if answer.contains("not in the whitelist") || answer.contains("not executed") {
            return Err(format!(
                "{server} does not answer `cons` (add it to 4lw.commands.whitelist to let the drain be checked)"
            ));
        }
        found.extend(
            parse_cons(&answer)
                .into_iter()
                .filter(|s| !ours.contains(&s.id)),
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cons_lists_established_sessions() {
        let answer = " /127.0.0.1:40312[1](queued=0,recved=12,sent=12,sid=0x1000a3f5c2d0001,lop=PING,est=1764633600000,to=10000,lcxid=0x3,lzxid=0x20,lresp=1,llat=0,minlat=0,avglat=0,maxlat=2)\n /127.0.0.1:40400[0](queued=0,recved=1,sent=0)\n\n";
        assert_eq!(
            parse_cons(answer),
            [Session {
                client: "127.0.0.1:40312".into(),
                id: 0x1000a3f5c2d0001,
            }]
        );
        assert!(
            parse_cons("cons is not executed because it is not in the whitelist.\n").is_empty()
        );
    }
}
