//! The token a declared job earns: the jd-server signs (BIP340) a digest of the job's coinbase,
//! merkle path and chain tip, with an expiry. The pool checks a `SetCustomMiningJob` against it
//! without asking the jd-server, so the jd-server may run in the pool process or beside it.

use stratum_core::bitcoin::hashes::{sha256, Hash, HashEngine};
use stratum_core::bitcoin::secp256k1::{schnorr, Keypair, Message, Secp256k1, XOnlyPublicKey};

/// Format version of a token.
const TOKEN_VERSION: u8 = 1;
/// version ‖ expiry ‖ digest ‖ signature.
const TOKEN_LEN: usize = 1 + 8 + 32 + 64;
/// Domain separation of the signed message.
const TAG: &[u8] = b"hashpool/declared-job/v1";

/// Why a token does not authorise a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of ours.
    #[error("malformed token ({0} bytes)")]
    Malformed(usize),
    /// Signed by no trusted jd-server.
    #[error("token not signed by a trusted jd-server")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired {0} s ago")]
    Expired(u64),
    /// The job differs from the one declared.
    #[error("the job differs from the declared one")]
    JobMismatch,
}

/// The fields of a custom job that a declaration fixes, in `SetCustomMiningJob`'s terms.
#[derive(Debug, Clone, Copy)]
pub struct CustomJobFields<'a> {
    /// Block header version.
    pub version: u32,
    /// Parent block (internal byte order).
    pub prev_hash: [u8; 32],
    /// Coinbase `nVersion`.
    pub coinbase_tx_version: u32,
    /// Coinbase scriptSig before the extranonce.
    pub script_sig_prefix: &'a [u8],
    /// Coinbase input `nSequence`.
    pub sequence: u32,
    /// Coinbase outputs, consensus-serialized (`Vec<TxOut>`).
    pub outputs: &'a [u8],
    /// Coinbase `nLockTime`.
    pub locktime: u32,
    /// Coinbase merkle path.
    pub merkle_path: &'a [[u8; 32]],
}

impl CustomJobFields<'_> {
    /// SHA256 over every field, each length-prefixed where its length varies.
    pub fn digest(&self) -> [u8; 32] {
        let mut e = sha256::Hash::engine();
        e.input(&self.version.to_le_bytes());
        e.input(&self.prev_hash);
        e.input(&self.coinbase_tx_version.to_le_bytes());
        e.input(&(self.script_sig_prefix.len() as u32).to_le_bytes());
        e.input(self.script_sig_prefix);
        e.input(&self.sequence.to_le_bytes());
        e.input(&(self.outputs.len() as u32).to_le_bytes());
        e.input(self.outputs);
        e.input(&self.locktime.to_le_bytes());
        e.input(&(self.merkle_path.len() as u32).to_le_bytes());
        for h in self.merkle_path {
            e.input(h);
        }
        sha256::Hash::from_engine(e).to_byte_array()
    }
}

fn signed_message(body: &[u8]) -> Message {
    let mut e = sha256::Hash::engine();
    e.input(TAG);
    e.input(body);
    Message::from_digest(sha256::Hash::from_engine(e).to_byte_array())
}

/// A token for `digest` valid until `expires` (Unix seconds).
pub fn sign(keypair: &Keypair, expires: u64, digest: [u8; 32]) -> Vec<u8> {
    let mut token = Vec::with_capacity(TOKEN_LEN);
    token.push(TOKEN_VERSION);
    token.extend_from_slice(&expires.to_be_bytes());
    token.extend_from_slice(&digest);
    let sig = Secp256k1::signing_only().sign_schnorr_no_aux_rand(&signed_message(&token), keypair);
    token.extend_from_slice(sig.as_ref());
    token
}

/// The jd-servers whose tokens the pool accepts.
#[derive(Debug, Clone, Default)]
pub struct TokenVerifier {
    keys: Vec<XOnlyPublicKey>,
}

impl TokenVerifier {
    /// Trusts the jd-servers with these authority keys (x-only, 32 bytes each).
    pub fn new(keys: &[[u8; 32]]) -> Result<Self, String> {
        let keys = keys
            .iter()
            .map(|k| XOnlyPublicKey::from_slice(k).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// Whether any jd-server is trusted (job declaration enabled).
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks that `token` was signed by a trusted jd-server for exactly `job`, and has not
    /// expired at `now` (Unix seconds).
    pub fn verify(&self, token: &[u8], job: &CustomJobFields, now: u64) -> Result<(), TokenError> {
        if token.len() != TOKEN_LEN || token[0] != TOKEN_VERSION {
            return Err(TokenError::Malformed(token.len()));
        }
        let (body, sig) = token.split_at(TOKEN_LEN - 64);
        let sig = schnorr::Signature::from_slice(sig).map_err(|_| TokenError::BadSignature)?;
        let msg = signed_message(body);
        let secp = Secp256k1::verification_only();
        if !self
            .keys
            .iter()
            .any(|k| secp.verify_schnorr(&sig, &msg, k).is_ok())
        {
            return Err(TokenError::BadSignature);
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&body[1..9]);
        let expires = u64::from_be_bytes(expiry);
        if now > expires {
            return Err(TokenError::Expired(now - expires));
        }
        if body[9..41] != job.digest() {
            return Err(TokenError::JobMismatch);
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(path: &[[u8; 32]]) -> CustomJobFields<'_> {
        CustomJobFields {
            version: 0x2000_0000,
            prev_hash: [7; 32],
            coinbase_tx_version: 2,
            script_sig_prefix: &[3, 1, 2, 3],
            sequence: u32::MAX,
            outputs: &[1, 0],
            locktime: 0,
            merkle_path: path,
        }
    }

    #[test]
    fn a_token_authorises_its_job_only_and_only_until_it_expires() {
        let secp = Secp256k1::new();
        let kp = Keypair::from_seckey_slice(&secp, &[9; 32]).expect("valid test key");
        let other = Keypair::from_seckey_slice(&secp, &[8; 32]).expect("valid test key");
        let verifier = TokenVerifier::new(&[kp.x_only_public_key().0.serialize()]).expect("key");
        let path = [[1u8; 32]];
        let token = sign(&kp, 1_000, job(&path).digest());
        assert_eq!(verifier.verify(&token, &job(&path), 999), Ok(()));
        assert_eq!(
            verifier.verify(&token, &job(&path), 1_005),
            Err(TokenError::Expired(5))
        );
        assert_eq!(
            verifier.verify(&token, &job(&[[2u8; 32]]), 999),
            Err(TokenError::JobMismatch)
        );
        let forged = sign(&other, 1_000, job(&path).digest());
        assert_eq!(
            verifier.verify(&forged, &job(&path), 999),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verifier.verify(&token[..40], &job(&path), 999),
            Err(TokenError::Malformed(40))
        );
    }
}
