//! The ehash wallet: a CDK wallet on SQLite whose outputs are derived from the seed (NUT-13),
//! so anything the mint signed can be restored (NUT-09) after a crash or a lost ack.

use cdk::dhke::{blind_message, construct_proofs};
use cdk::mint_url::MintUrl;
use cdk::nuts::{
    BlindSignature, BlindSignatureDleq, CurrencyUnit, Id, Keys, PublicKey, SecretKey, State,
};
use cdk::secret::Secret;
use cdk::types::ProofInfo;
use cdk::wallet::{Wallet, WalletBuilder};
use cdk::Amount;
use cdk_sqlite::WalletSqliteDatabase;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

mod exchange;
mod faucet;
pub use exchange::{split_amount, EpochHolding, Holdings, SatsReceived};
pub mod mint_api;
mod restore;
pub use restore::Restored;

/// Errors of the wallet.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// Seed file problem.
    #[error("wallet seed {path}: {reason}")]
    Seed {
        /// File.
        path: String,
        /// Why.
        reason: String,
    },
    /// CDK wallet error.
    #[error("cdk wallet: {0}")]
    Cdk(#[from] cdk::Error),
    /// Wallet database error.
    #[error("wallet database: {0}")]
    Database(#[from] cdk::cdk_database::Error),
    /// A signature did not verify or does not match what we sent.
    #[error("rejected signature: {0}")]
    BadSignature(String),
    /// No wallet there.
    #[error("no wallet: {0} does not exist")]
    Missing(String),
    /// Derivation failed.
    #[error("derivation: {0}")]
    Derive(String),
    /// The mint could not be reached or answered nonsense.
    #[error("mint: {0}")]
    Mint(String),
    /// The mint refused the request.
    #[error("mint refused ({code}): {detail}")]
    Refused {
        /// Stable code (`ehash_api::codes`).
        code: String,
        /// Explanation.
        detail: String,
    },
    /// The wallet cannot do what was asked with what it holds.
    #[error("{0}")]
    Unavailable(String),
}

/// A blinded message we sent and the secrets to unblind its signature.
#[derive(Clone)]
struct Outstanding {
    keyset: Id,
    secret: Secret,
    r: SecretKey,
    blinded: PublicKey,
    counter: u32,
    since: std::time::Instant,
}

/// NUT-13 counters reserved per database write (one write per 256 shares keeps the database off
/// the share path). Restore scans up to the highest reserved counter, so a crash that wastes the
/// rest of a block loses nothing.
const COUNTER_BLOCK: u32 = 256;

/// The translator's ehash wallet.
pub struct EhashWallet {
    wallet: Wallet,
    /// The same database and seed, for the sat ecash redemptions pay (the mint's `/sat` view).
    sat_wallet: Wallet,
    seed: [u8; 64],
    /// Reserved, not yet used counters per keyset: `[next, end)`.
    counters: Mutex<HashMap<Id, (u32, u32)>>,
    /// Keys per keyset, and whether the keyset is the sat unit's.
    keys: Mutex<HashMap<Id, (Keys, bool)>>,
    outstanding: Mutex<HashMap<[u8; 33], Outstanding>>,
    /// Blinded messages of shares the pool rejected: never signed, so used again for the next
    /// shares instead of burning counters (a run of rejections, e.g. while the mint is down,
    /// would otherwise leave a gap restore has to scan across).
    reusable: Mutex<Vec<Outstanding>>,
}

/// Reads the 64-byte wallet seed, creating it (0600) on first run.
fn load_or_create_seed(path: &Path) -> Result<[u8; 64], WalletError> {
    let err = |reason: String| WalletError::Seed {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(s) => hex::decode(s.trim())
            .map_err(|e| err(e.to_string()))?
            .try_into()
            .map_err(|_| err("expected 64 bytes".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 64];
            rand::Rng::fill(&mut rand::thread_rng(), &mut seed[..]);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            sv2_io::keys::write_private(path, &hex::encode(seed))
                .map_err(|e| err(e.to_string()))?;
            Ok(seed)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// A blind signature as it arrives from the pool.
#[derive(Debug, Clone)]
pub struct IncomingSignature {
    /// B_ it signs.
    pub blinded: [u8; 33],
    /// Keyset that signed (the mint signs with its active keyset, which after a rotation may
    /// differ from the keyset the message was derived for).
    pub keyset: Id,
    /// Amount.
    pub amount: u64,
    /// C_.
    pub c: Vec<u8>,
    /// DLEQ e.
    pub dleq_e: [u8; 32],
    /// DLEQ s.
    pub dleq_s: [u8; 32],
}

impl IncomingSignature {
    /// The signature the mint returned over HTTP for `blinded`; none without a DLEQ proof.
    pub fn from_blind_signature(blinded: &PublicKey, sig: &BlindSignature) -> Option<Self> {
        let dleq = sig.dleq.as_ref()?;
        Some(Self {
            blinded: blinded.to_bytes(),
            keyset: sig.keyset_id,
            amount: u64::from(sig.amount),
            c: sig.c.to_bytes().to_vec(),
            dleq_e: dleq.e.to_secret_bytes(),
            dleq_s: dleq.s.to_secret_bytes(),
        })
    }
}

/// What an existing wallet database holds, read without contacting any mint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WalletSummary {
    /// Unspent ehash.
    pub balance: u64,
    /// Unspent proofs.
    pub proofs: u64,
    /// Unspent sats (from redemptions and sales).
    pub sat: u64,
    /// Mints the wallet knows.
    pub mints: Vec<String>,
}

impl EhashWallet {
    /// Reads balance and proofs of the wallet in `data_dir` offline; errors if there is none.
    pub async fn summarize_offline(data_dir: &Path) -> Result<WalletSummary, WalletError> {
        let path = data_dir.join("wallet.sqlite");
        if !path.exists() {
            return Err(WalletError::Missing(path.display().to_string()));
        }
        let db = WalletSqliteDatabase::new(&path).await?;
        use cdk::cdk_database::WalletDatabase;
        let mints = db
            .get_mints()
            .await?
            .into_keys()
            .map(|u| u.to_string())
            .collect();
        let proofs = db
            .get_proofs(
                None,
                Some(CurrencyUnit::custom("HASH")),
                Some(vec![State::Unspent]),
                None,
            )
            .await?;
        let mut balance = 0u64;
        for p in &proofs {
            balance = balance
                .checked_add(u64::from(p.proof.amount))
                .ok_or_else(|| WalletError::Derive("balance overflows u64".into()))?;
        }
        let sat = db
            .get_proofs(
                None,
                Some(CurrencyUnit::Sat),
                Some(vec![State::Unspent]),
                None,
            )
            .await?
            .iter()
            .map(|p| u64::from(p.proof.amount))
            .sum();
        Ok(WalletSummary {
            balance,
            proofs: proofs.len() as u64,
            sat,
            mints,
        })
    }

    /// Opens an existing wallet for the mint it already knows (for restore from the CLI).
    pub async fn open_existing(data_dir: &Path) -> Result<Arc<Self>, WalletError> {
        let summary = Self::summarize_offline(data_dir).await?;
        // The sat view of the same mint is not a mint of its own.
        let ehash_mints: Vec<String> = summary
            .mints
            .into_iter()
            .filter(|m| !m.trim_end_matches('/').ends_with(ehash_api::SAT_MINT_PATH))
            .collect();
        let url = match ehash_mints.as_slice() {
            [one] => one.clone(),
            [] => return Err(WalletError::Missing("a mint in the wallet database".into())),
            _ => {
                return Err(WalletError::Derive(format!(
                    "wallet knows several mints: {ehash_mints:?}"
                )))
            }
        };
        Self::open(data_dir, &url).await
    }

    /// Opens the wallet in `data_dir` for the mint at `mint_url`.
    pub async fn open(data_dir: &Path, mint_url: &str) -> Result<Arc<Self>, WalletError> {
        let seed = load_or_create_seed(&data_dir.join("wallet.seed"))?;
        let db = Arc::new(WalletSqliteDatabase::new(&data_dir.join("wallet.sqlite")).await?);
        let url: MintUrl = mint_url
            .parse()
            .map_err(|e| WalletError::Derive(format!("mint url {mint_url}: {e}")))?;
        let sat_url: MintUrl = mint_api::MintApi::new(mint_url)
            .sat_url()
            .parse()
            .map_err(|e| WalletError::Derive(format!("sat mint url of {mint_url}: {e}")))?;
        let wallet = WalletBuilder::new()
            .mint_url(url)
            .unit(CurrencyUnit::custom("HASH"))
            .localstore(db.clone())
            .seed(seed)
            .without_rate_limiting()
            .build()?;
        let sat_wallet = WalletBuilder::new()
            .mint_url(sat_url)
            .unit(CurrencyUnit::Sat)
            .localstore(db)
            .seed(seed)
            .without_rate_limiting()
            .build()?;
        Ok(Arc::new(Self {
            wallet,
            sat_wallet,
            seed,
            counters: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            outstanding: Mutex::new(HashMap::new()),
            reusable: Mutex::new(Vec::new()),
        }))
    }

    /// The CDK wallet (balance, restore, checkstate).
    pub fn cdk(&self) -> &Wallet {
        &self.wallet
    }

    /// The CDK wallet of the sats redemptions pay.
    pub fn sat(&self) -> &Wallet {
        &self.sat_wallet
    }

    async fn keys(&self, keyset: Id) -> Result<Keys, WalletError> {
        Ok(self.keys_of(keyset).await?.0)
    }

    /// Keys of an ehash or sat keyset, and the wallet (unit) it belongs to. A keyset the cache
    /// does not know yet is new (the mint rotated an epoch): the mint is asked again.
    async fn keys_of(&self, keyset: Id) -> Result<(Keys, &Wallet), WalletError> {
        let owner = |is_sat: bool| {
            if is_sat {
                &self.sat_wallet
            } else {
                &self.wallet
            }
        };
        if let Some((k, is_sat)) = self.keys.lock().ok().and_then(|m| m.get(&keyset).cloned()) {
            return Ok((k, owner(is_sat)));
        }
        let refresh = cdk::wallet::types::KeysetLoadPolicy::Refresh;
        let mut last = cdk::Error::UnknownKeySet;
        for is_sat in [false, true] {
            let w = owner(is_sat);
            let found = match w.keyset(keyset).await {
                Err(cdk::Error::UnknownKeySet) => w.keyset_with_policy(keyset, refresh).await,
                other => other,
            };
            match found {
                Ok(ks) => {
                    if let Ok(mut m) = self.keys.lock() {
                        m.insert(keyset, (ks.keys.clone(), is_sat));
                    }
                    return Ok((ks.keys, w));
                }
                Err(e) => last = e,
            }
        }
        Err(WalletError::Cdk(last))
    }

    /// Takes the next durably reserved counter for `keyset`, reserving a new block (one
    /// database write) only when the current one is used up.
    async fn next_counter(&self, keyset: Id) -> Result<u32, WalletError> {
        let take = |m: &mut HashMap<Id, (u32, u32)>| {
            let r = m.get_mut(&keyset).filter(|(next, end)| next < end)?;
            r.0 += 1;
            Some(r.0 - 1)
        };
        if let Some(c) = self.counters.lock().ok().and_then(|mut m| take(&mut m)) {
            return Ok(c);
        }
        let end = self
            .wallet
            .localstore
            .increment_keyset_counter(&keyset, COUNTER_BLOCK)
            .await?;
        let mut m = self
            .counters
            .lock()
            .map_err(|_| WalletError::Derive("counter lock poisoned".into()))?;
        m.insert(keyset, (end.saturating_sub(COUNTER_BLOCK), end));
        take(&mut m).ok_or_else(|| WalletError::Derive("empty counter block".into()))
    }

    /// The next blinded message for `keyset`: one the pool rejected earlier, or a new one
    /// derived from a durably reserved counter.
    pub async fn next_blinded(&self, keyset: Id) -> Result<[u8; 33], WalletError> {
        let reused = self.reusable.lock().ok().and_then(|mut r| {
            let i = r.iter().position(|o| o.keyset == keyset)?;
            Some(r.swap_remove(i))
        });
        if let Some(mut o) = reused {
            o.since = std::time::Instant::now();
            let bytes = o.blinded.to_bytes();
            if let Ok(mut out) = self.outstanding.lock() {
                out.insert(bytes, o);
            }
            return Ok(bytes);
        }
        let counter = self.next_counter(keyset).await?;
        let out = self.derive(keyset, counter)?;
        let bytes = out.blinded.to_bytes();
        if let Ok(mut o) = self.outstanding.lock() {
            o.insert(bytes, out);
        }
        Ok(bytes)
    }

    /// The NUT-13 secret, blinding factor and blinded message of (`keyset`, `counter`).
    fn derive(&self, keyset: Id, counter: u32) -> Result<Outstanding, WalletError> {
        let derive = |e: cdk::nuts::nut13::Error| WalletError::Derive(e.to_string());
        let secret = Secret::from_seed(&self.seed, keyset, counter).map_err(derive)?;
        let r = SecretKey::from_seed(&self.seed, keyset, counter).map_err(derive)?;
        let (blinded, r) = blind_message(&secret.to_bytes(), Some(r))
            .map_err(|e| WalletError::Derive(e.to_string()))?;
        Ok(Outstanding {
            keyset,
            secret,
            r,
            blinded,
            counter,
            since: std::time::Instant::now(),
        })
    }

    /// Takes back the blinded message of a share the pool rejected (`SubmitSharesError`: the
    /// pool never journaled it, so the mint never saw it) for reuse on a later share.
    pub fn discard(&self, blinded: &[u8; 33]) {
        let taken = self
            .outstanding
            .lock()
            .ok()
            .and_then(|mut o| o.remove(blinded));
        if let (Some(o), Ok(mut r)) = (taken, self.reusable.lock()) {
            r.push(o);
        }
    }

    /// Verifies and unblinds a batch of signatures and stores all their proofs in one database
    /// transaction. Returns, per signature, its amount or why it was rejected.
    pub async fn receive_batch(
        &self,
        batch: &[IncomingSignature],
    ) -> Vec<Result<u64, WalletError>> {
        let mut infos = Vec::with_capacity(batch.len());
        let mut results = Vec::with_capacity(batch.len());
        for s in batch {
            match self.unblind(s).await {
                Ok(info) => {
                    infos.push(info);
                    results.push(Ok(s.amount));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if infos.is_empty() {
            return results;
        }
        if let Err(e) = self.wallet.localstore.update_proofs(infos, vec![]).await {
            // The mint keeps every signature: a restore (next start) recovers these proofs.
            let reason = e.to_string();
            return results
                .into_iter()
                .map(|r| {
                    r.and(Err(WalletError::Derive(format!(
                        "storing proofs: {reason}"
                    ))))
                })
                .collect();
        }
        results
    }

    /// Verifies (DLEQ) and unblinds one signature on a blinded message we sent.
    async fn unblind(&self, s: &IncomingSignature) -> Result<ProofInfo, WalletError> {
        let out = self
            .outstanding
            .lock()
            .ok()
            .and_then(|mut o| o.remove(&s.blinded))
            .ok_or_else(|| {
                WalletError::BadSignature("signature for a blinded message we did not send".into())
            })?;
        self.proof_from(s, out).await
    }

    /// Verifies (DLEQ, with the keys of the keyset that signed) and unblinds `s` on `out`.
    async fn proof_from(
        &self,
        s: &IncomingSignature,
        out: Outstanding,
    ) -> Result<ProofInfo, WalletError> {
        let (amount, c, dleq_e, dleq_s) = (s.amount, &s.c, s.dleq_e, s.dleq_s);
        let bad = |e: String| WalletError::BadSignature(e);
        let sig = BlindSignature {
            amount: Amount::from(amount),
            keyset_id: s.keyset,
            c: PublicKey::from_slice(c).map_err(|e| bad(e.to_string()))?,
            dleq: Some(BlindSignatureDleq {
                e: SecretKey::from_slice(&dleq_e).map_err(|e| bad(e.to_string()))?,
                s: SecretKey::from_slice(&dleq_s).map_err(|e| bad(e.to_string()))?,
            }),
        };
        let (keys, owner) = self.keys_of(s.keyset).await?;
        let key = keys
            .amount_key(Amount::from(amount))
            .ok_or_else(|| bad(format!("keyset has no key for amount {amount}")))?;
        sig.verify_dleq(key, out.blinded)
            .map_err(|e| bad(format!("DLEQ: {e}")))?;
        let proof = construct_proofs(vec![sig], vec![out.r], vec![out.secret], &keys)
            .map_err(|e| bad(e.to_string()))?
            .pop()
            .ok_or_else(|| bad("no proof constructed".into()))?;
        Ok(ProofInfo::new(
            proof,
            owner.mint_url.clone(),
            State::Unspent,
            owner.unit.clone(),
        )?
        .with_derivation_index(out.counter))
    }

    /// Asks the mint (NUT-09 restore, by B_) for signatures on blinded messages sent more than
    /// `older_than` ago that never got one in-band, e.g. because the pool or the mint crashed
    /// between signing and delivery. Entries older than `give_up` that the mint never signed
    /// are dropped: their shares were lost, not paid. Returns (proofs recovered, amount).
    pub async fn recover_outstanding(
        &self,
        older_than: std::time::Duration,
        give_up: std::time::Duration,
    ) -> Result<(usize, u64), WalletError> {
        let stale: Vec<Outstanding> = match self.outstanding.lock() {
            Ok(o) => o
                .values()
                .filter(|e| e.since.elapsed() >= older_than)
                .cloned()
                .collect(),
            Err(_) => return Err(WalletError::Derive("outstanding lock poisoned".into())),
        };
        if stale.is_empty() {
            return Ok((0, 0));
        }
        let outputs = stale
            .iter()
            .map(|e| cdk::nuts::BlindedMessage::new(Amount::ZERO, e.keyset, e.blinded))
            .collect();
        let client = cdk::wallet::HttpClient::new(self.wallet.mint_url.clone(), None);
        let response = cdk::wallet::MintConnector::post_restore(
            &client,
            cdk::nuts::RestoreRequest { outputs },
        )
        .await?;
        let mut incoming = Vec::with_capacity(response.signatures.len());
        for (output, sig) in response.outputs.iter().zip(&response.signatures) {
            let Some(s) = IncomingSignature::from_blind_signature(&output.blinded_secret, sig)
            else {
                tracing::warn!("restored signature without DLEQ ignored");
                continue;
            };
            incoming.push(s);
        }
        let (mut recovered, mut amount) = (0usize, 0u64);
        for result in self.receive_batch(&incoming).await {
            match result {
                Ok(a) => {
                    recovered += 1;
                    amount += a;
                }
                // Delivered in-band meanwhile: nothing to do.
                Err(WalletError::BadSignature(e)) => tracing::debug!(error = %e, "restore skipped"),
                Err(e) => return Err(e),
            }
        }
        if let Ok(mut o) = self.outstanding.lock() {
            o.retain(|_, e| e.since.elapsed() < give_up);
        }
        Ok((recovered, amount))
    }

    /// Unspent ehash in the wallet.
    pub async fn balance(&self) -> Result<u64, WalletError> {
        Ok(u64::from(self.wallet.total_balance().await?))
    }

    /// Checks every stored proof at the mint (NUT-07); returns (proofs, unspent).
    pub async fn check_unspent(&self) -> Result<(usize, usize), WalletError> {
        let proofs = self.wallet.get_unspent_proofs().await?;
        let n = proofs.len();
        if n == 0 {
            return Ok((0, 0));
        }
        let states = self.wallet.check_proofs_spent(proofs).await?;
        Ok((
            n,
            states.iter().filter(|s| s.state == State::Unspent).count(),
        ))
    }

    /// Verifies the DLEQ of every stored proof; returns how many verified.
    pub async fn verify_all(&self) -> Result<usize, WalletError> {
        let proofs = self.wallet.get_unspent_proofs().await?;
        let mut ok = 0;
        for p in proofs {
            let keys = self.keys(p.keyset_id).await?;
            let Some(key) = keys.amount_key(p.amount) else {
                continue;
            };
            if p.verify_dleq(key).is_ok() {
                ok += 1;
            }
        }
        Ok(ok)
    }
}
