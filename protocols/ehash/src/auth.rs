//! Pool authentication on the mint link: the pool signs the mint's challenge with BIP340.
//!
//! Noise NX authenticates only the responder (the mint); this challenge authenticates the
//! initiator (the pool), so the mint signs only for pools it knows.

use stratum_core::bitcoin::hashes::{sha256, Hash, HashEngine};
use stratum_core::bitcoin::secp256k1::{schnorr, Keypair, Message, Secp256k1, XOnlyPublicKey};

const TAG: &[u8] = b"hashpool/mint-auth/v1";

/// Digest the pool signs: `sha256(TAG ‖ nonce ‖ mint authority key)`.
pub fn challenge_digest(nonce: &[u8; 32], mint_authority: &[u8; 32]) -> [u8; 32] {
    let mut e = sha256::Hash::engine();
    e.input(TAG);
    e.input(nonce);
    e.input(mint_authority);
    sha256::Hash::from_engine(e).to_byte_array()
}

/// Signs the challenge with the pool's key.
pub fn sign_challenge(keypair: &Keypair, nonce: &[u8; 32], mint_authority: &[u8; 32]) -> [u8; 64] {
    let secp = Secp256k1::signing_only();
    let msg = Message::from_digest(challenge_digest(nonce, mint_authority));
    secp.sign_schnorr_no_aux_rand(&msg, keypair).serialize()
}

/// Checks a challenge signature by `pool_pubkey`.
pub fn verify_challenge(
    pool_pubkey: &[u8; 32],
    signature: &[u8; 64],
    nonce: &[u8; 32],
    mint_authority: &[u8; 32],
) -> bool {
    let secp = Secp256k1::verification_only();
    let (Ok(pk), Ok(sig)) = (
        XOnlyPublicKey::from_slice(pool_pubkey),
        schnorr::Signature::from_slice(signature),
    ) else {
        return false;
    };
    let msg = Message::from_digest(challenge_digest(nonce, mint_authority));
    secp.verify_schnorr(&sig, &msg, &pk).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify() {
        let secp = Secp256k1::new();
        let kp = Keypair::from_seckey_slice(&secp, &[7u8; 32]).unwrap();
        let (pk, _) = kp.x_only_public_key();
        let nonce = [3u8; 32];
        let mint = [9u8; 32];
        let sig = sign_challenge(&kp, &nonce, &mint);
        assert!(verify_challenge(&pk.serialize(), &sig, &nonce, &mint));
        assert!(!verify_challenge(&pk.serialize(), &sig, &[4u8; 32], &mint));
        assert!(!verify_challenge(&pk.serialize(), &sig, &nonce, &[8u8; 32]));
    }
}
