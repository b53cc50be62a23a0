//! Blind signatures with their NUT-12 DLEQ proof, for a key whose public half is already known.
//!
//! CDK derives the mint's public key `A = a·G` from the secret twice per signature (once for
//! the nonce, once for the challenge), two of its four point multiplications. With `A` cached
//! the proof is byte-for-byte the same (same deterministic nonce, same challenge), at half the
//! cost: `C_ = a·B_`, `R1 = r·G`, `R2 = r·B_`.

use cdk::nuts::{BlindSignature, BlindSignatureDleq, Id, PublicKey, SecretKey};
use cdk::secp256k1::hashes::{hmac, sha256, Hash, HashEngine, HmacEngine};
use cdk::{Amount, SECP256K1};

/// Why a signature could not be made (only for keys or points that are not valid scalars or
/// curve points, which CDK's keysets and our checks of `B_` rule out).
#[derive(Debug, thiserror::Error)]
#[error("blind signature: {0}")]
pub struct DleqError(String);

fn err(e: impl std::fmt::Display) -> DleqError {
    DleqError(e.to_string())
}

/// The NUT-12 deterministic nonce (CDK's construction, with `A` given).
fn nonce(
    c: &PublicKey,
    b: &PublicKey,
    a: &SecretKey,
    a_pub: &PublicKey,
) -> Result<SecretKey, DleqError> {
    let (a_bytes, b_bytes, c_bytes) = (
        a_pub.to_uncompressed_bytes(),
        b.to_uncompressed_bytes(),
        c.to_uncompressed_bytes(),
    );
    for counter in u8::MIN..=u8::MAX {
        let mut engine = HmacEngine::<sha256::Hash>::new(a.as_secret_bytes());
        engine.input(b"Cashu_DLEQ_R_v1");
        engine.input(&a_bytes);
        engine.input(&b_bytes);
        engine.input(&c_bytes);
        engine.input(&[counter]);
        let bytes = hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array();
        if let Ok(k) = SecretKey::from_slice(&bytes) {
            return Ok(k);
        }
    }
    Err(DleqError("no DLEQ nonce".into()))
}

/// Signs `b` with `a` (whose public key is `a_pub`) and proves it (NUT-12).
pub fn sign(
    amount: Amount,
    keyset_id: Id,
    b: &PublicKey,
    a: &SecretKey,
    a_pub: &PublicKey,
) -> Result<BlindSignature, DleqError> {
    let c: PublicKey = b.mul_tweak(&SECP256K1, &a.as_scalar()).map_err(err)?.into();
    let r = nonce(&c, b, a, a_pub)?;
    let r1 = r.public_key();
    let r2: PublicKey = b.mul_tweak(&SECP256K1, &r.as_scalar()).map_err(err)?.into();
    let e_bytes = cdk::dhke::hash_e([r1, r2, *a_pub, c]);
    let e = SecretKey::from_slice(&e_bytes).map_err(err)?;
    let s1: SecretKey = e.mul_tweak(&a.as_scalar()).map_err(err)?.into();
    let s: SecretKey = r.add_tweak(&s1.to_scalar()).map_err(err)?.into();
    Ok(BlindSignature {
        amount,
        keyset_id,
        c,
        dleq: Some(BlindSignatureDleq { e, s }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_signature_and_proof_as_cdk() {
        let id: Id = "00ffffffffffffff".parse().unwrap();
        for _ in 0..20 {
            let a = SecretKey::generate();
            let b = SecretKey::generate().public_key();
            let ours = sign(Amount::from(8u64), id, &b, &a, &a.public_key()).unwrap();
            let c = cdk::dhke::sign_message(&a, &b).unwrap();
            let theirs = BlindSignature::new(Amount::from(8u64), c, id, &b, &a).unwrap();
            assert_eq!(ours, theirs);
            ours.verify_dleq(a.public_key(), b).unwrap();
        }
    }
}
