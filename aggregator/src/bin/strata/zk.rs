//! `strata zk`: copy a ZooKeeper subtree to another cluster, compare two subtrees, or keep
//! them in sync (one way or both) with metrics and a conflict queue served over HTTP.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use aggregator::zk::{
    self, copy,
    decide::{Policy, Side},
    live::{Engine, SyncConfig},
    read::read_tree,
    tree::Difference,
    url::ZkUrl,
};
use axum::{
    Json, Router,
    extract::{Query, State},
    routing::{get, post},
};
use serde_json::json;

use crate::Failure;

#[derive(Debug, clap::Subcommand)]
pub enum ZkCommand {
    /// Copy a subtree: data and ACLs, parents first, in pipelined multi transactions.
    /// Ephemeral nodes are listed, not copied; sequence counters are raised to the source's.
    Copy {
        /// zk://HOST:PORT[,HOST:PORT...]/PATH to copy from.
        #[arg(long)]
        from: ZkUrl,
        /// zk://HOST:PORT[,...]/PATH to copy to.
        #[arg(long)]
        to: ZkUrl,
        /// Also delete what only the target has.
        #[arg(long)]
        mirror: bool,
    },
    /// Compare two subtrees (data, ACLs, children); exit 1 when they differ.
    Check {
        #[arg(long)]
        a: ZkUrl,
        #[arg(long)]
        b: ZkUrl,
    },
    /// Keep B like A (or both alike with --both-ways) until stopped.
    Sync {
        #[arg(long)]
        a: ZkUrl,
        #[arg(long)]
        b: ZkUrl,
        /// Changes on B go to A too.
        #[arg(long)]
        both_ways: bool,
        /// How concurrent changes on both sides are settled.
        #[arg(long, value_enum, default_value = "last-writer-wins")]
        policy: Policy,
        /// Where to serve /metrics, GET /conflicts and POST /conflicts/resolve?path=&keep=a|b.
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: SocketAddr,
    },
}

fn zk_failure(err: zk::ZkError) -> Failure {
    Failure::Unfinished(err.to_string())
}

pub fn run(command: ZkCommand) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Unfinished(format!("starting the async runtime: {e}")))?;
    runtime.block_on(async move {
        match command {
            ZkCommand::Copy { from, to, mirror } => copy_tree(&from, &to, mirror).await,
            ZkCommand::Check { a, b } => check(&a, &b).await,
            ZkCommand::Sync {
                a,
                b,
                both_ways,
                policy,
                listen,
            } => {
                sync(
                    SyncConfig {
                        a,
                        b,
                        both_ways,
                        policy,
                        skip: Vec::new(),
                        a_wins_first_pass: false,
                    },
                    listen,
                )
                .await
            }
        }
    })
}

async fn copy_tree(from: &ZkUrl, to: &ZkUrl, mirror: bool) -> Result<(), Failure> {
    let started = Instant::now();
    let (source, target) = (
        zk::connect(from).await.map_err(zk_failure)?,
        zk::connect(to).await.map_err(zk_failure)?,
    );
    eprintln!("reading {from} and {to}");
    let (a, b) = futures_util::try_join!(read_tree(&source, from), read_tree(&target, to))
        .map_err(zk_failure)?;
    let plan = copy::plan(&a, &b, mirror);
    eprintln!(
        "{} node(s) read; {} write(s) to make",
        a.nodes.len(),
        plan.writes.len()
    );
    let report = copy::apply(&target, to, &plan).await.map_err(zk_failure)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "copied {from} to {to}: {} created, {} updated, {} deleted, {} counter bump(s) in {seconds:.2} s ({:.0} znodes/s)",
        report.created,
        report.updated,
        report.deleted,
        report.counter_bumps,
        a.nodes.len() as f64 / seconds
    );
    if !plan.ephemerals.is_empty() {
        println!("{} ephemeral node(s) not copied:", plan.ephemerals.len());
        for path in plan.ephemerals.iter().take(20) {
            println!("  {}", from.absolute(path));
        }
    }
    for path in &report.counters_left {
        println!(
            "sequence counter of {} lags too far to raise",
            from.absolute(path)
        );
    }
    if report.errors.is_empty() {
        Ok(())
    } else {
        for error in report.errors.iter().take(20) {
            eprintln!("  {error}");
        }
        Err(Failure::Unfinished(format!(
            "{} write(s) failed",
            report.errors.len()
        )))
    }
}

async fn check(a: &ZkUrl, b: &ZkUrl) -> Result<(), Failure> {
    let (ca, cb) = (
        zk::connect(a).await.map_err(zk_failure)?,
        zk::connect(b).await.map_err(zk_failure)?,
    );
    let (ta, tb) =
        futures_util::try_join!(read_tree(&ca, a), read_tree(&cb, b)).map_err(zk_failure)?;
    let differences = ta.differences(&tb);
    for (path, difference) in differences.iter().take(100) {
        let what = match difference {
            Difference::OnlyInFirst => format!("only in {a}"),
            Difference::OnlyInSecond => format!("only in {b}"),
            Difference::Data => "data differs".into(),
            Difference::Acl => "ACL differs".into(),
        };
        println!("{}: {what}", if path.is_empty() { "/" } else { path });
    }
    if differences.is_empty() {
        println!(
            "{a} and {b} are identical: {} node(s)",
            ta.split_ephemerals().0.nodes.len()
        );
        Ok(())
    } else {
        Err(Failure::Unfinished(format!(
            "{} difference(s)",
            differences.len()
        )))
    }
}

async fn sync(config: SyncConfig, listen: SocketAddr) -> Result<(), Failure> {
    let engine = Engine::connect(config).await.map_err(zk_failure)?;
    let mut registry = prometheus_client::registry::Registry::default();
    engine.metrics.register(&mut registry);
    let registry = Arc::new(registry);
    let app = Router::new()
        .route(
            "/metrics",
            get({
                let registry = registry.clone();
                move || async move {
                    let mut text = String::new();
                    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                    text
                }
            }),
        )
        .route("/conflicts", get(conflicts))
        .route("/conflicts/resolve", post(resolve))
        .with_state(engine.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::Input(format!("binding {listen}: {e}")))?;
    eprintln!(
        "syncing {} {} {} (policy {:?}); metrics on http://{listen}/metrics",
        engine.config.a,
        if engine.config.both_ways { "<->" } else { "->" },
        engine.config.b,
        engine.config.policy
    );
    tokio::spawn(engine.clone().run());
    tokio::select! {
        served = axum::serve(listener, app) => served.map_err(|e| Failure::Unfinished(format!("serving: {e}"))),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

async fn conflicts(State(engine): State<Arc<Engine>>) -> Json<serde_json::Value> {
    let show = |n: &Option<zk::tree::Node>| {
        n.as_ref()
            .map(|n| json!({ "data": String::from_utf8_lossy(&n.data), "mtime_ms": n.mtime_ms }))
    };
    let held: Vec<_> = engine
        .held()
        .iter()
        .map(|(path, h)| json!({ "path": path, "a": show(&h.a), "b": show(&h.b) }))
        .collect();
    Json(json!({ "conflicts": held }))
}

async fn resolve(
    State(engine): State<Arc<Engine>>,
    Query(params): Query<Vec<(String, String)>>,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let keep = match get("keep") {
        Some("a") => Side::A,
        Some("b") => Side::B,
        _ => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                Json(json!({ "message": "keep=a or keep=b" })),
            );
        }
    };
    let Some(path) = get("path") else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({ "message": "path is required" })),
        );
    };
    match engine.resolve(path, keep).await {
        Ok(true) => (
            axum::http::StatusCode::OK,
            Json(json!({ "resolved": path })),
        ),
        Ok(false) => (
            axum::http::StatusCode::NOT_FOUND,
            Json(json!({ "message": format!("no conflict held at {path}") })),
        ),
        Err(err) => (
            axum::http::StatusCode::BAD_GATEWAY,
            Json(json!({ "message": err.to_string() })),
        ),
    }
}
