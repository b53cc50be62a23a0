//! The jd-server role: the SV2 Job Declaration Protocol over Noise. A miner's job declarator
//! client declares the block it wants to mine (its coinbase and its transactions, by wtxid);
//! the jd-server checks that the coinbase pays the pool the whole reward and that every
//! transaction is known or provided, and answers with a signed token the pool checks the
//! miner's `SetCustomMiningJob` against. Pushed solutions go to the jd-server's node.

pub mod coinbase;
pub mod config;
pub mod metrics;
pub mod node;
pub mod session;
pub mod token;

pub use config::JdServerConfig;
pub use token::{CustomJobFields, TokenError, TokenVerifier};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::bitcoin::secp256k1::Keypair;
use stratum_core::bitcoin::{Network, ScriptBuf};
use sv2_io::{AuthorityKeypair, AuthorityPublicKey};
use tokio_util::sync::CancellationToken;

/// Errors starting a jd-server.
#[derive(Debug, thiserror::Error)]
pub enum JdServerError {
    /// Invalid configuration value.
    #[error("invalid jd-server config `{key}`: {reason}")]
    Config {
        /// Key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// Key file.
    #[error(transparent)]
    Key(#[from] sv2_io::KeyError),
    /// Listener.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// What a declaration must satisfy, and how long its tokens live.
#[derive(Debug, Clone)]
pub struct DeclarationPolicy {
    /// The pool's coinbase script: every output with value must pay it.
    pub payout: ScriptBuf,
    /// Network (for the subsidy schedule).
    pub network: Network,
    /// Lifetime of a declared job's token.
    pub token_lifetime: Duration,
    /// Lifetime of an allocated (not yet used) token.
    pub allocation_lifetime: Duration,
    /// How long a declaration waits for the transactions it was asked for.
    pub missing_txs_timeout: Duration,
}

/// Counters of a jd-server.
#[derive(Debug, Default)]
pub struct JdServerStats {
    /// Jobs declared and signed.
    pub declared_jobs: AtomicU64,
    /// Solutions pushed by clients.
    pub solutions_pushed: AtomicU64,
    /// Pushed blocks the node accepted.
    pub blocks_submitted: AtomicU64,
    refused: Mutex<BTreeMap<String, u64>>,
}

impl JdServerStats {
    fn refused(&self, code: &str) {
        if let Ok(mut r) = self.refused.lock() {
            *r.entry(code.to_string()).or_default() += 1;
        }
    }

    /// Declarations refused, by SV2 error code.
    pub fn refused_by_code(&self) -> BTreeMap<String, u64> {
        self.refused.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// An allocated token not yet used by a declaration.
struct Allocation {
    connection: u64,
    expires: Instant,
}

/// Allocated tokens, bounded: the oldest allocation goes first when the book is full.
#[derive(Default)]
struct AllocationBook {
    by_token: HashMap<[u8; 16], Allocation>,
    order: std::collections::VecDeque<[u8; 16]>,
}

/// Transactions a jd-server knows besides its node's mempool, e.g. those of the pool's recent
/// templates when it runs inside the pool: a declaration may name them without providing them.
pub trait TransactionSource: Send + Sync {
    /// The transaction with this wtxid (internal byte order), if known.
    fn transaction(&self, wtxid: &[u8; 32]) -> Option<Arc<stratum_core::bitcoin::Transaction>>;
}

/// State shared by all job declaration connections.
pub struct JobDeclarator {
    policy: DeclarationPolicy,
    signer: Keypair,
    node: node::NodeView,
    also_known: Option<Arc<dyn TransactionSource>>,
    allocations: Mutex<AllocationBook>,
    next_connection: AtomicU64,
    /// Counters.
    pub stats: Arc<JdServerStats>,
}

/// Allocated tokens kept at most (older unused ones are dropped).
const MAX_ALLOCATIONS: usize = 100_000;

impl JobDeclarator {
    /// A declarator signing with `keys`, checking against `policy`, seeing the chain via `node`.
    pub fn new(
        policy: DeclarationPolicy,
        keys: &AuthorityKeypair,
        node: node_rpc::BitcoinRpc,
    ) -> Result<Self, JdServerError> {
        Ok(Self {
            policy,
            signer: keys.keypair()?,
            node: node::NodeView::new(node),
            also_known: None,
            allocations: Mutex::new(AllocationBook::default()),
            next_connection: AtomicU64::new(1),
            stats: Arc::new(JdServerStats::default()),
        })
    }

    /// Also looks declared transactions up in `source` (after the node's mempool, which knows
    /// their fees).
    pub fn with_transactions_from(mut self, source: Arc<dyn TransactionSource>) -> Self {
        self.also_known = Some(source);
        self
    }

    /// A declared transaction: from the node's mempool (with its fee), else from the other
    /// source (fee unknown, so not required of the coinbase).
    fn lookup(&self, wtxid: &[u8; 32]) -> Option<node::KnownTx> {
        self.node.get(wtxid).or_else(|| {
            let tx = self.also_known.as_ref()?.transaction(wtxid)?;
            Some(node::KnownTx { tx, fee: None })
        })
    }

    /// A fresh single-use token for a declaration on `connection`.
    fn allocate(&self, connection: u64) -> [u8; 16] {
        let token: [u8; 16] = rand::random();
        if let Ok(mut a) = self.allocations.lock() {
            while a.order.len() >= MAX_ALLOCATIONS {
                if let Some(oldest) = a.order.pop_front() {
                    a.by_token.remove(&oldest);
                }
            }
            a.order.push_back(token);
            a.by_token.insert(
                token,
                Allocation {
                    connection,
                    expires: Instant::now() + self.policy.allocation_lifetime,
                },
            );
        }
        token
    }

    /// Uses up an allocated token; refuses unknown, reused, expired or foreign ones.
    fn redeem(&self, token: &[u8], connection: u64) -> Result<(), &'static str> {
        let key: [u8; 16] = token
            .try_into()
            .map_err(|_| "not a token of this jd-server")?;
        let mut a = self
            .allocations
            .lock()
            .map_err(|_| "allocations poisoned")?;
        let alloc = a
            .by_token
            .remove(&key)
            .ok_or("unknown or already used token")?;
        if alloc.connection != connection {
            return Err("token allocated to another connection");
        }
        if alloc.expires <= Instant::now() {
            return Err("token expired");
        }
        Ok(())
    }
}

/// A running jd-server.
pub struct JdServerHandle {
    /// Listening address.
    pub addr: SocketAddr,
    /// Authority key clients pin and the pool trusts for tokens.
    pub authority: AuthorityPublicKey,
    /// Counters.
    pub stats: Arc<JdServerStats>,
    /// Where `/metrics` and `/health` are served (standalone, if configured).
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl JdServerHandle {
    /// Stops listening and drops all connections.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Declared jobs so far.
    pub fn declared_jobs(&self) -> u64 {
        self.stats.declared_jobs.load(Ordering::Relaxed)
    }
}

/// Listens on `listen` and serves job declaration with `declarator` (authenticated as `keys`)
/// until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    keys: AuthorityKeypair,
    declarator: Arc<JobDeclarator>,
    shutdown: CancellationToken,
) -> Result<JdServerHandle, JdServerError> {
    let (listener, addr) = sv2_io::bind(listen)
        .await
        .map_err(|source| JdServerError::Bind {
            addr: listen,
            source,
        })?;
    let authority = keys.public();
    let stats = declarator.stats.clone();
    let task = tokio::spawn(sv2_io::serve(
        listener,
        keys,
        "jd-server",
        shutdown.clone(),
        move |r, s, peer| session::serve(declarator.clone(), r, s, peer),
    ));
    tracing::info!(%addr, %authority, "jd-server started");
    Ok(JdServerHandle {
        addr,
        authority,
        stats,
        metrics_addr: None,
        shutdown,
        tasks: vec![task],
    })
}

/// Starts a standalone jd-server from its config file's settings.
pub async fn start(config: JdServerConfig) -> Result<JdServerHandle, JdServerError> {
    let (policy, keys) = config.resolve()?;
    let declarator = Arc::new(JobDeclarator::new(
        policy,
        &keys,
        node_rpc::BitcoinRpc::new(config.node_rpc.clone()),
    )?);
    let shutdown = CancellationToken::new();
    let mut handle = serve(config.listen, keys, declarator, shutdown.clone()).await?;
    let stats = handle.stats.clone();
    handle.metrics_addr = hashpool_ops_http::serve_configured(
        config.metrics_listen,
        || {
            let stats = stats.clone();
            hashpool_ops_http::FnCollector::new(move || metrics::families(&stats)).registry()
        },
        || std::sync::Arc::new(|| Box::pin(async { Ok(serde_json::json!({})) })),
        axum::Router::new,
        shutdown,
        &mut handle.tasks,
    )
    .await
    .map_err(|e| JdServerError::Config {
        key: "metrics_listen",
        reason: e.to_string(),
    })?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declarator(allocation_lifetime: Duration) -> JobDeclarator {
        let policy = DeclarationPolicy {
            payout: ScriptBuf::from_bytes(vec![0x51]),
            network: Network::Regtest,
            token_lifetime: Duration::from_secs(600),
            allocation_lifetime,
            missing_txs_timeout: Duration::from_secs(10),
        };
        let node = node_rpc::BitcoinRpc::new(node_rpc::ChainRpcConfig {
            url: "http://127.0.0.1:1".into(),
            cookie_file: None,
            user: None,
            password: None,
        });
        JobDeclarator::new(policy, &AuthorityKeypair::generate(), node).expect("declarator")
    }

    #[test]
    fn a_token_serves_one_declaration_on_its_own_connection() {
        let jd = declarator(Duration::from_secs(600));
        let t = jd.allocate(1);
        assert_eq!(jd.redeem(&t, 1), Ok(()));
        assert_eq!(jd.redeem(&t, 1), Err("unknown or already used token"));
        let t = jd.allocate(1);
        assert_eq!(
            jd.redeem(&t, 2),
            Err("token allocated to another connection")
        );
        assert_eq!(
            jd.redeem(&[1, 2, 3], 1),
            Err("not a token of this jd-server")
        );
        let expired = declarator(Duration::from_millis(1));
        let t = expired.allocate(1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(expired.redeem(&t, 1), Err("token expired"));
    }

    struct OneTransaction(Arc<stratum_core::bitcoin::Transaction>);

    impl TransactionSource for OneTransaction {
        fn transaction(&self, wtxid: &[u8; 32]) -> Option<Arc<stratum_core::bitcoin::Transaction>> {
            use stratum_core::bitcoin::hashes::Hash;
            (self.0.compute_wtxid().to_byte_array() == *wtxid).then(|| self.0.clone())
        }
    }

    #[test]
    fn declared_transactions_are_also_looked_up_in_the_other_source() {
        use stratum_core::bitcoin::hashes::Hash;
        let tx = Arc::new(stratum_core::bitcoin::Transaction {
            version: stratum_core::bitcoin::transaction::Version::TWO,
            lock_time: stratum_core::bitcoin::absolute::LockTime::ZERO,
            input: Vec::new(),
            output: Vec::new(),
        });
        let wtxid = tx.compute_wtxid().to_byte_array();
        let alone = declarator(Duration::from_secs(600));
        assert!(alone.lookup(&wtxid).is_none());
        let jd = declarator(Duration::from_secs(600))
            .with_transactions_from(Arc::new(OneTransaction(tx.clone())));
        let found = jd.lookup(&wtxid).expect("from the other source");
        assert_eq!(found.tx, tx);
        assert_eq!(found.fee, None);
        assert!(jd.lookup(&[7; 32]).is_none());
    }

    #[test]
    fn the_allocation_book_stays_bounded() {
        let jd = declarator(Duration::from_secs(600));
        let first = jd.allocate(1);
        for _ in 0..MAX_ALLOCATIONS {
            jd.allocate(1);
        }
        let book = jd.allocations.lock().expect("lock");
        assert_eq!(book.order.len(), MAX_ALLOCATIONS);
        assert_eq!(book.by_token.len(), MAX_ALLOCATIONS);
        assert!(!book.by_token.contains_key(&first), "the oldest went first");
    }
}
