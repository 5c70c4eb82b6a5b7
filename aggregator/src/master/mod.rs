//! The Mesos-style master hosted by the aggregator: frameworks subscribe over the Mesos v1
//! scheduler HTTP API and get offers from the DRF allocator; accepted tasks go to agents
//! over their QUIC control streams; status updates come back and are forwarded until
//! acknowledged. State survives restarts in the embedded store.
//!
//! - [`core`]: the state machine (no I/O).
//! - [`scheduler_api`], [`operator_api`]: the HTTP APIs.
//! - [`resources`], [`taskinfo`], [`events`]: Mesos JSON.
//! - [`store`]: the embedded durable store.
//! - [`files`]: tasks' sandbox files, read through their agents.
//!
//! The async shell here owns the core behind one mutex (every call is short: no I/O inside)
//! and runs the allocation loop: a cycle soon after anything that may free resources or
//! want them (a wake-up), and at least every second. Wake-ups that come close together
//! share a cycle.

pub mod core;
pub mod events;
pub mod files;
pub mod operator_api;
pub mod resources;
pub mod scheduler_api;
pub mod store;
pub mod taskinfo;

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use serde_json::json;
use tokio::sync::Notify;
use tracing::info;

pub use self::core::MasterConfig;
use self::{
    core::{AgentRecord, Core, FrameworkRecord, TaskRecord},
    store::{RawState, Store, redb_backend::RedbBackend},
};
use crate::state::now_ms;

/// The Mesos version whose APIs the master speaks.
pub const MESOS_COMPAT_VERSION: &str = "1.11.0";

/// The shortest pause before an allocation cycle, which gathers the wake-ups of a burst.
const MIN_CYCLE_GAP: Duration = Duration::from_millis(2);

/// Where the master is reached: its HTTP API and, for agents, its QUIC endpoint.
#[derive(Debug, Clone)]
pub struct MasterAddress {
    pub http: SocketAddr,
    pub quic: Option<SocketAddr>,
}

/// Mesos's `MasterInfo` as JSON (what Mesos writes into its `json.info_*` znodes), plus the
/// QUIC address agents follow (`strata_quic`; Mesos clients ignore it).
pub fn master_info(master_id: &str, address: &MasterAddress) -> serde_json::Value {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let ip = address.http.ip();
    // Mesos packs an IPv4 address into a 32-bit number in network byte order.
    let packed = match ip {
        std::net::IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
        std::net::IpAddr::V6(_) => 0,
    };
    let mut info = json!({
        "id": master_id,
        "ip": packed,
        "port": address.http.port(),
        "hostname": hostname,
        "version": MESOS_COMPAT_VERSION,
        "address": { "hostname": hostname, "ip": ip.to_string(), "port": address.http.port() },
    });
    if let Some(quic) = address.quic {
        info["strata_quic"] = json!(quic.to_string());
    }
    info
}

/// The master and its allocation loop's wake-up.
#[derive(Debug)]
pub struct Master {
    core: Mutex<Core>,
    wake: Notify,
    store: Store,
    /// The app service's records read at start, until it takes them.
    recovered_apps: Mutex<Vec<serde_json::Value>>,
    /// Flags shown by GET_FLAGS.
    pub flags: Vec<(String, String)>,
    /// Sandbox reads waiting for their agents.
    files: files::FileReads,
}

impl Master {
    /// Opens the embedded store in `data_dir` and recovers the state it holds.
    pub fn open(
        data_dir: &Path,
        config: MasterConfig,
        http: SocketAddr,
    ) -> Result<Arc<Self>, store::StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| store::StoreError::Read(e.into()))?;
        let (backend, state) = RedbBackend::open(&data_dir.join("master.redb"))?;
        let store = Store::start(backend, "redb")?;
        let address = MasterAddress { http, quic: None };
        Self::recover(store, state, config, &address, data_dir)
    }

    /// Recovers the master from `state`, read from `store`'s backend.
    pub fn recover(
        store: Store,
        state: RawState,
        config: MasterConfig,
        address: &MasterAddress,
        data_dir: &Path,
    ) -> Result<Arc<Self>, store::StoreError> {
        let mut recovered = state.decode::<FrameworkRecord, AgentRecord, TaskRecord>()?;
        let master_id = recovered.master_id.clone().unwrap_or_else(|| {
            let id = format!("{:016x}", rand::random::<u64>());
            store.put_master_id(&id);
            id
        });
        let master_info = master_info(&master_id, address);
        info!(
            master_id,
            frameworks = recovered.frameworks.len(),
            agents = recovered.agents.len(),
            tasks = recovered.tasks.len(),
            "master state recovered"
        );
        let flags = vec![
            (
                "agent_timeout".to_owned(),
                format!("{}ms", config.agent_timeout_ms),
            ),
            (
                "heartbeat_interval".to_owned(),
                format!("{}secs", config.heartbeat_seconds),
            ),
            (
                "offer_timeout".to_owned(),
                config
                    .offer_timeout_ms
                    .map_or("none".into(), |t| format!("{t}ms")),
            ),
            ("registry".to_owned(), store.kind.to_owned()),
            ("work_dir".to_owned(), data_dir.display().to_string()),
        ];
        let recovered_apps = Mutex::new(std::mem::take(&mut recovered.apps));
        let core = Core::new(
            config,
            master_id,
            master_info,
            Some(store.clone()),
            (recovered.frameworks, recovered.agents, recovered.tasks),
            now_ms(),
        );
        Ok(Arc::new(Self {
            core: Mutex::new(core),
            wake: Notify::new(),
            store,
            recovered_apps,
            flags,
            files: files::FileReads::default(),
        }))
    }

    /// The core, for one short call.
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.core
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks for an allocation cycle soon.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The durable store, for services hosted beside the master (the app service).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The app records read at start; empty after the first call.
    pub fn take_recovered_apps(&self) -> Vec<serde_json::Value> {
        std::mem::take(
            &mut *self
                .recovered_apps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Waits (a bounded time) until every state change so far is committed; whether it was.
    pub fn flush(&self) -> bool {
        self.store.flush()
    }

    /// Runs the allocation loop and the periodic checks forever.
    pub async fn run(
        self: Arc<Self>,
        offers_made: prometheus_client::metrics::counter::Counter,
        cycle_seconds: prometheus_client::metrics::histogram::Histogram,
    ) {
        let heartbeat_every = {
            let seconds = self.lock().config.heartbeat_seconds;
            Duration::from_secs_f64(seconds.max(1.0))
        };
        let mut last_heartbeat = tokio::time::Instant::now();
        let mut next_cycle = tokio::time::Instant::now();
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
            // Wake-ups that come before the next cycle may start join it: under a burst of
            // calls the allocator takes at most about half of the core's time.
            tokio::time::sleep_until(next_cycle).await;
            let now = now_ms();
            let heartbeat = last_heartbeat.elapsed() >= heartbeat_every;
            if heartbeat {
                last_heartbeat = tokio::time::Instant::now();
            }
            let started = std::time::Instant::now();
            let mut core = self.lock();
            core.tick(now, heartbeat);
            let offers = core.allocate(now);
            offers_made.inc_by(offers as u64);
            drop(core);
            let took = started.elapsed();
            next_cycle = tokio::time::Instant::now() + took.max(MIN_CYCLE_GAP);
            cycle_seconds.observe(took.as_secs_f64());
        }
    }
}
