//! `strata-aggregator`: runs the aggregator, or manages its join tokens.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use aggregator::{
    apps,
    ha::{self, HaConfig, standby::QuicStandby},
    http, ingest,
    master::{self, Master, MasterAddress, MasterConfig, store},
    migration::{self, controller::Migration},
    pki::Pki,
    state::{self, Shared},
    tokens,
    zk::url::ZkUrl,
};
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use proto::{token::JoinToken, zk_url};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// strata's aggregator: merges what every agent sees into one live topology and serves it.
#[derive(Debug, Parser)]
#[command(name = "strata-aggregator", version)]
struct Cli {
    /// Where the CA, issued certificates, join tokens and the master's state are kept.
    #[arg(long, default_value = "./strata-data", global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the aggregator (the default).
    Serve,
    /// Join tokens for agents.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a join token and print it: `strata-agent run --aggregator HOST:PORT --token T`.
    Create {
        /// Hours the token stays valid.
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// HTTP API address.
    #[arg(long, default_value = "127.0.0.1:5050")]
    http: SocketAddr,
    /// QUIC address agents report to (UDP).
    #[arg(long, default_value = "127.0.0.1:5051")]
    quic: SocketAddr,
    /// Extra names (DNS or IP) the server certificate is valid for, besides localhost and the
    /// QUIC address.
    #[arg(long = "tls-name")]
    tls_names: Vec<String>,
    /// Largest report accepted, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_report_bytes: usize,
    /// Seconds a disconnected agent has to come back before its tasks are lost.
    #[arg(long, default_value_t = 75)]
    agent_timeout_secs: u64,
    /// Seconds before an unanswered offer is rescinded (0: never).
    #[arg(long, default_value_t = 60)]
    offer_timeout_secs: u64,
    /// Run highly available, as one of several aggregators on a ZooKeeper ensemble:
    /// `zk://HOST:PORT[,HOST:PORT...]/PATH`. They elect a leader under PATH (Mesos's
    /// `json.info_*` znodes, so `zk://` Mesos clients find it) and the leader keeps the
    /// master's state under PATH/state; standbys redirect. Without it the state is in the
    /// embedded store in the data directory.
    #[arg(long, value_name = "URL")]
    zk: Option<ZkUrl>,
    /// The ZooKeeper session timeout in seconds: how long a dead leader keeps its place,
    /// so about how soon a standby takes over.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    zk_session_timeout_secs: u64,
}

/// mimalloc: the views are rebuilt from many small allocations twice a second while reports
/// arrive on other threads, a pattern glibc's allocator serves poorly (measured with
/// `aggregator-load`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let usage_error = err.use_stderr();
            let _ = err.print();
            return if usage_error {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let filter = EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(err) => Err(anyhow::Error::new(err).context("starting the async runtime")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Token(TokenCommand::Create { ttl_hours })) => {
            create_token(&cli.data_dir, ttl_hours)
        }
        Some(Command::Serve) | None => serve(&cli.data_dir, cli.serve).await,
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    info!("shutting down");
}

fn create_token(data_dir: &std::path::Path, ttl_hours: u64) -> anyhow::Result<()> {
    let pki =
        Pki::open(data_dir, &["localhost".into()]).context("opening the certificate authority")?;
    let secret = tokens::create(data_dir, ttl_hours * 3_600_000, state::now_ms())
        .context("creating a join token")?;
    println!(
        "{}",
        JoinToken {
            secret,
            ca_fingerprint: pki.ca_fingerprint()
        }
    );
    Ok(())
}

/// The new leader's master: the state in ZooKeeper taken over (fencing earlier leaders) and
/// recovered, and its `MasterInfo` published for Mesos clients.
async fn take_over(
    ha: &HaConfig,
    leadership: &ha::lead::Leadership,
    config: MasterConfig,
    address: &MasterAddress,
    data_dir: &std::path::Path,
) -> anyhow::Result<std::sync::Arc<Master>> {
    let (backend, state) = store::zk_backend::ZkBackend::open(
        leadership.client.clone(),
        &ha.state_path(),
        &leadership.candidacy.node,
    )
    .await
    .context("taking over the master's state in ZooKeeper")?;
    let store = store::Store::start(backend, "zookeeper")?;
    watch_session(&leadership.client, store.clone());
    let master = Master::recover(store, state, config, address, data_dir)
        .context("recovering the master's state")?;
    let info = master.lock().master_info.clone();
    leadership
        .candidacy
        .publish(&info)
        .await
        .context("publishing the leader's MasterInfo")?;
    Ok(master)
}

/// Connects to the set's ZooKeeper: where `--zk` says, or where a migration moved the set's
/// masters since (its record says so on the cluster `--zk` names). A record that cannot be
/// read is tried again: electing where the masters no longer are would split the set. A
/// move seen once is remembered in the data directory and tried first, so the old cluster
/// can go away after a cut-over.
async fn join_the_set(
    mut ha: HaConfig,
    data_dir: &std::path::Path,
) -> (HaConfig, zookeeper_client::Client) {
    let given = ha.url.clone();
    if let Some(at) = zk_url::remembered_move(data_dir, &given) {
        let there = HaConfig {
            url: at.clone(),
            ..ha.clone()
        };
        if let Ok(client) = tokio::time::timeout(REMEMBERED_PATIENCE, there.connect()).await
            && migration::stored::masters_at(&client, &at).await.as_ref() == Ok(&at)
        {
            info!(given = %given, at = %at, "joining the set where a migration moved it");
            return (there, client);
        }
    }
    let client = ha.connect().await;
    let at = loop {
        match migration::stored::masters_at(&client, &ha.url).await {
            Ok(at) => break at,
            Err(error) => {
                warn!(%error, "cannot tell where the set's masters are; trying again in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    if let Err(error) = zk_url::remember_move(data_dir, &given, &at) {
        warn!(%error, "cannot remember where the set is");
    }
    if at == ha.url {
        return (ha, client);
    }
    info!(given = %ha.url, at = %at, "a migration moved the set; joining it there");
    ha.url = at;
    let client = ha.connect().await;
    (ha, client)
}

/// How long a remembered cluster may take to answer before `--zk` is asked instead.
const REMEMBERED_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Marks the store unreachable while the ZooKeeper session is disconnected.
fn watch_session(client: &zookeeper_client::Client, store: store::Store) {
    let mut states = client.state_watcher();
    tokio::spawn(async move {
        loop {
            let state = states.changed().await;
            let up = matches!(state, zookeeper_client::SessionState::SyncConnected);
            store.set_reachable(up);
            if state.is_terminated() {
                return;
            }
        }
    });
}

async fn serve(data_dir: &std::path::Path, args: ServeArgs) -> anyhow::Result<()> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !args.quic.ip().is_unspecified() {
        names.push(args.quic.ip().to_string());
    }
    names.extend(args.tls_names);
    names.dedup();
    let ha = match &args.zk {
        Some(url) if url.root == "/" => {
            anyhow::bail!("--zk needs a path of its own, as in zk://HOST:PORT/strata")
        }
        Some(url) => Some(HaConfig {
            url: url.clone(),
            session_timeout: std::time::Duration::from_secs(args.zk_session_timeout_secs.max(1)),
        }),
        None => None,
    };
    // A standby answers HTTP from the start, while ZooKeeper may not answer yet.
    let (leader_tx, leader_rx) = tokio::sync::watch::channel(None);
    let (leading, now_leading) = tokio::sync::oneshot::channel::<()>();
    let standby_http = match &ha {
        Some(_) => Some(
            ha::lead::serve_standby_http(args.http, leader_rx, async {
                let _ = now_leading.await;
            })
            .await?,
        ),
        None => None,
    };
    let ha = match ha {
        Some(ha) => {
            let (ha, client) = join_the_set(ha, data_dir).await;
            ha::shared_ca::agree(&client, &ha.state_path(), data_dir)
                .await
                .context("agreeing on the set's CA")?;
            Some((ha, client))
        }
        None => None,
    };
    let pki = std::sync::Arc::new(
        Pki::open(data_dir, &names).context("opening the certificate authority")?,
    );
    let limits = proto::Limits {
        max_bytes: args.max_report_bytes,
        ..proto::Limits::default()
    };
    let master_config = MasterConfig {
        agent_timeout_ms: args.agent_timeout_secs * 1000,
        offer_timeout_ms: (args.offer_timeout_secs > 0).then_some(args.offer_timeout_secs * 1000),
        ..MasterConfig::default()
    };
    let address = MasterAddress {
        http: args.http,
        quic: Some(args.quic),
    };
    let endpoint = ingest::endpoint(&pki, args.quic).context("starting QUIC ingest")?;
    let (master, mut leadership) = match &ha {
        Some((ha, client)) => {
            // A standby follows the set when a migration moves its masters elsewhere.
            let (follow, home) = (client.clone(), ha.url.clone());
            let moved = tokio::spawn(async move {
                let to = migration::follow(follow, home).await;
                ha::start_over(&format!("the set's masters moved to {to}")).await;
            });
            let candidate =
                master::master_info(&format!("{:016x}", rand::random::<u64>()), &address);
            let leadership = ha::lead::campaign(
                ha,
                client.clone(),
                &candidate,
                leader_tx,
                &endpoint,
                |leader| QuicStandby {
                    pki: pki.clone(),
                    data_dir: data_dir.to_owned(),
                    limits,
                    metrics: aggregator::metrics::Metrics::default(),
                    leader,
                },
            )
            .await?;
            // Elected where the masters were: make sure they still are, before writing.
            match migration::stored::masters_at(client, &ha.url).await {
                Ok(at) if at == ha.url => {}
                Ok(at) => ha::start_over(&format!("the set's masters moved to {at}")).await,
                Err(error) => ha::start_over(&error).await,
            }
            let taken = take_over(ha, &leadership, master_config, &address, data_dir).await;
            let master = taken.unwrap_or_else(|err| ha::restart(&format!("{err:#}")));
            moved.abort();
            (master, Some(leadership))
        }
        None => {
            let master = Master::open(data_dir, master_config, args.http)
                .context("opening the master's state store")?;
            (master, None)
        }
    };
    let shared = Shared::new(pki, data_dir.to_owned(), limits, master.clone());
    let migration = match (&ha, &leadership) {
        (Some((ha, _)), Some(leadership)) => {
            let info = master.lock().master_info.clone();
            Some(
                Migration::resume(
                    ha.url.clone(),
                    leadership.client.clone(),
                    master.clone(),
                    shared.clone(),
                    info,
                )
                .await,
            )
        }
        _ => None,
    };
    tokio::spawn(master.clone().run(
        shared.metrics.master_offers.clone(),
        shared.metrics.allocation_seconds.clone(),
    ));
    // A standby's API gives way only now, right before the leader's binds (connections
    // wait in the new listener's backlog until it serves), so clients meet no refusal.
    let _ = leading.send(());
    if let Some(standby_http) = standby_http {
        let _ = standby_http.await;
    }
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("binding HTTP on {}", args.http))?;
    info!(http = %args.http, quic = %args.quic, data_dir = %data_dir.display(), "aggregator listening");
    tokio::spawn(ingest::serve(endpoint.clone(), shared.clone()));
    let refresher = shared.clone();
    tokio::spawn(async move {
        loop {
            let shared = refresher.clone();
            let started = tokio::time::Instant::now();
            // Building views is CPU work: keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || shared.refresh()).await;
            // Rebuilding takes at most a third of the time, however large the topology.
            let pause = state::REFRESH_INTERVAL.max(started.elapsed() * 2);
            tokio::time::sleep_until(started + pause).await;
        }
    });
    let apps = apps::service::AppService::start(master.clone());
    tokio::spawn(apps::autoscaler::run(apps.clone(), shared.clone()));
    let app = http::router(shared)
        .merge(master::operator_api::router(master.clone()))
        .merge(apps::api::router(apps))
        .merge(migration::api::router(migration))
        .layer(axum::middleware::from_fn_with_state(
            master.clone(),
            ha::guard::refuse_changes_while_store_fails,
        ));
    let fenced_store = master.store().clone();
    let lost = async move {
        match &mut leadership {
            Some(leadership) => {
                tokio::select! {
                    why = leadership.lost() => why,
                    why = fenced_store.fenced() => why,
                }
            }
            None => std::future::pending().await,
        }
    };
    tokio::spawn(async move {
        let why = lost.await;
        ha::restart(&why);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    endpoint.close(0u32.into(), b"aggregator shutting down");
    endpoint.wait_idle().await;
    master.flush();
    Ok(())
}
