//! Signing with the keys of any ehash epoch, not only the active one.
//!
//! CDK's signatory signs only for the active keyset of a unit, but ehash of a closed epoch must
//! stay transferable inside its epoch (a buyer swaps a received token for fresh proofs of the
//! same epoch). The keys are derived from the mint seed exactly as CDK derives them (BIP32 at
//! the keyset's stored derivation path) and checked against the keyset id, so a derivation that
//! ever disagreed with CDK's would refuse to sign rather than sign with wrong keys.

use crate::MintError;
use cdk::nuts::{BlindSignature, BlindedMessage, CurrencyUnit, Id, MintKeySet};
use cdk::secp256k1::{All, Secp256k1};
use cdk_common::bitcoin::bip32::Xpriv;
use cdk_common::database::MintKeysDatabase;
use cdk_common::mint::MintKeySetInfo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Keys of every keyset of one unit, derived on first use.
pub struct EpochKeys {
    xpriv: Xpriv,
    secp: Secp256k1<All>,
    db: Arc<dyn MintKeysDatabase<Err = cdk::cdk_database::Error> + Send + Sync>,
    unit: CurrencyUnit,
    cache: Mutex<HashMap<Id, Arc<MintKeySet>>>,
}

impl EpochKeys {
    /// Keys for `unit` from the mint `seed`.
    pub fn new(
        seed: &[u8; 64],
        db: Arc<dyn MintKeysDatabase<Err = cdk::cdk_database::Error> + Send + Sync>,
        unit: CurrencyUnit,
    ) -> Result<Self, MintError> {
        let xpriv =
            Xpriv::new_master(cdk_common::bitcoin::Network::Bitcoin, seed).map_err(|e| {
                MintError::Config {
                    key: "mint.seed",
                    reason: format!("cannot derive the master key: {e}"),
                }
            })?;
        Ok(Self {
            xpriv,
            secp: Secp256k1::new(),
            db,
            unit,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The keys of `info` as CDK derives them (BIP32 at its derivation path).
    fn derive(&self, info: &MintKeySetInfo) -> MintKeySet {
        MintKeySet::generate_from_xpriv(
            &self.secp,
            self.xpriv,
            &info.amounts,
            info.unit.clone(),
            info.derivation_path.clone(),
            info.input_fee_ppk,
            info.final_expiry,
            info.id.get_version(),
        )
    }

    /// Checks that the seed derives every keyset in the database (all units), so a mint
    /// process started with another seed refuses to run instead of serving wrong keys.
    pub async fn check_seed(&self) -> Result<(), MintError> {
        let mut tx = self.db.begin_transaction().await?;
        let infos = tx.get_keyset_infos().await;
        if let Err(e) = tx.rollback().await {
            tracing::debug!(error = %e, "read-only keyset transaction rollback");
        }
        for info in infos? {
            let derived = self.derive(&info);
            if derived.id != info.id {
                return Err(MintError::Config {
                    key: "mint.seed",
                    reason: format!(
                        "this seed does not derive keyset {} of the database; every mint process \
                         on one database needs the same mint.seed (copy it from the first mint's \
                         data_dir)",
                        info.id
                    ),
                });
            }
        }
        Ok(())
    }

    /// The keys of keyset `id`, derived on first use. The first call reads the keyset table:
    /// never call it inside an open transaction of the same database.
    pub async fn keyset(&self, id: &Id) -> Result<Arc<MintKeySet>, MintError> {
        if let Some(k) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(k.clone());
        }
        let mut tx = self.db.begin_transaction().await?;
        let infos = tx.get_keyset_infos().await;
        if let Err(e) = tx.rollback().await {
            tracing::debug!(error = %e, "read-only keyset transaction rollback");
        }
        let info = infos?
            .into_iter()
            .find(|i| i.id == *id && i.unit == self.unit)
            .ok_or_else(|| MintError::Http(format!("keyset {id} is not an ehash keyset")))?;
        let keyset = self.derive(&info);
        if keyset.id != *id {
            return Err(MintError::Http(format!(
                "derived keys for keyset {id} give id {}; refusing to sign",
                keyset.id
            )));
        }
        let keyset = Arc::new(keyset);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*id, keyset.clone());
        Ok(keyset)
    }

    /// Signs each message (all of `keyset`) with the key of its amount, with a DLEQ proof, on
    /// the calling thread. Touches no database.
    pub fn sign(
        keyset: &MintKeySet,
        messages: &[BlindedMessage],
    ) -> Result<Vec<BlindSignature>, MintError> {
        messages.iter().map(|m| Self::sign_one(keyset, m)).collect()
    }

    /// Signs one message of `keyset` with the key of its amount, with a DLEQ proof.
    pub fn sign_one(keyset: &MintKeySet, m: &BlindedMessage) -> Result<BlindSignature, MintError> {
        if m.keyset_id != keyset.id {
            return Err(MintError::Http(format!(
                "message for keyset {} in a batch for {}",
                m.keyset_id, keyset.id
            )));
        }
        let pair = keyset.keys.get(&m.amount).ok_or_else(|| {
            MintError::Http(format!("keyset {} has no amount {}", m.keyset_id, m.amount))
        })?;
        crate::dleq::sign(
            m.amount,
            m.keyset_id,
            &m.blinded_secret,
            &pair.secret_key,
            &pair.public_key,
        )
        .map_err(|e| MintError::Http(e.to_string()))
    }
}
