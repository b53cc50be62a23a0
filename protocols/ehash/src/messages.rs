//! Messages of the ehash extension and of the mint link.

use binary_sv2::{
    self, B0255Owned, Deserialize, Serialize, SignatureOwned, Str0255Owned, U256Owned,
};

/// Pool -> translator: the keyset to blind for, the mint's HTTP API and the share unit.
pub const MSG_EHASH_MINT_INFO: u8 = 0x01;
/// Pool -> translator: the blind signature for one accepted share.
pub const MSG_EHASH_SIGNATURE: u8 = 0x02;
/// Pool -> translator: an accepted share earned no token (and why).
pub const MSG_EHASH_SIGNATURE_ERROR: u8 = 0x03;

/// Mint -> pool: random challenge the pool must sign with its key.
pub const MSG_MINT_CHALLENGE: u8 = 0x10;
/// Pool -> mint: BIP340 signature over the challenge.
pub const MSG_MINT_AUTH: u8 = 0x11;
/// Mint -> pool: authenticated; here is the active keyset.
pub const MSG_MINT_READY: u8 = 0x12;
/// Mint -> pool: authentication refused.
pub const MSG_MINT_AUTH_ERROR: u8 = 0x13;
/// Mint -> pool: the epoch keysets it signs for (after `MintReady` and on every change).
pub const MSG_MINT_EPOCH: u8 = 0x14;
/// Pool -> mint: sign one blinded message.
pub const MSG_SIGN_REQUEST: u8 = 0x20;
/// Mint -> pool: the blind signature, persisted before it was sent.
pub const MSG_SIGN_RESPONSE: u8 = 0x21;
/// Mint -> pool: the request was refused.
pub const MSG_SIGN_ERROR: u8 = 0x22;
/// Pool -> mint: the network moved to a new tip; the block being mined now.
pub const MSG_CHAIN_TIP: u8 = 0x30;
/// Pool -> mint: state of a block the pool found.
pub const MSG_BLOCK_REPORT: u8 = 0x31;
/// Mint -> pool: a block report is recorded durably.
pub const MSG_BLOCK_ACK: u8 = 0x32;

/// Block status: in the best chain, not yet mature.
pub const BLOCK_PENDING: u8 = 0;
/// Block status: reached the configured maturity in the best chain.
pub const BLOCK_MATURED: u8 = 1;
/// Block status: left the best chain (or never entered it) before maturity.
pub const BLOCK_ORPHANED: u8 = 2;

/// Error code: the blinded message was signed before.
pub const ERR_ALREADY_SIGNED: &str = "ehash-already-signed";
/// Error code: the keyset is unknown or not active.
pub const ERR_UNKNOWN_KEYSET: &str = "ehash-unknown-keyset";
/// Error code: the keyset belongs to a closed epoch; it no longer signs shares.
pub const ERR_RETIRED_KEYSET: &str = "ehash-retired-keyset";
/// Error code: the blinded message is not a valid curve point.
pub const ERR_INVALID_POINT: &str = "ehash-invalid-blinded-message";
/// Error code: the amount is not a denomination of the keyset.
pub const ERR_INVALID_AMOUNT: &str = "ehash-invalid-amount";
/// Error code: the mint is not reachable.
pub const ERR_MINT_UNAVAILABLE: &str = "ehash-mint-unavailable";
/// Error code: the mint failed internally (database).
pub const ERR_MINT_INTERNAL: &str = "ehash-mint-internal";
/// The pool could not record the share durably, so it does not accept it.
pub const ERR_POOL_JOURNAL: &str = "ehash-pool-journal-failed";

/// Pool -> translator, after extension negotiation and whenever the keyset rotates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EhashMintInfo {
    /// Active keyset id (CDK `Id::to_bytes`).
    pub keyset_id: B0255Owned,
    /// log2 of the expected hashes per HASH.
    pub share_unit_log2: u8,
    /// Base URL of the mint's Cashu HTTP API.
    pub mint_url: Str0255Owned,
}

/// Pool -> translator: blind signature of the blinded message attached to share
/// (`channel_id`, `sequence_number`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EhashSignature {
    /// Channel of the share.
    pub channel_id: u32,
    /// Sequence number of the share.
    pub sequence_number: u32,
    /// Amount signed (a power of two).
    pub amount: u64,
    /// Keyset that signed.
    pub keyset_id: B0255Owned,
    /// The blinded message B_ (33 bytes) that was signed.
    pub blinded: B0255Owned,
    /// The blind signature C_ (33 bytes).
    pub signature: B0255Owned,
    /// DLEQ proof challenge e.
    pub dleq_e: U256Owned,
    /// DLEQ proof response s.
    pub dleq_s: U256Owned,
}

/// Pool -> translator: the share was judged but no token was issued for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EhashSignatureError {
    /// Channel of the share.
    pub channel_id: u32,
    /// Sequence number of the share.
    pub sequence_number: u32,
    /// One of the `ERR_*` codes.
    pub error_code: Str0255Owned,
}

/// Mint -> pool: authenticate by signing `sha256("hashpool/mint-auth" || nonce)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MintChallenge {
    /// Fresh random nonce.
    pub nonce: U256Owned,
}

/// Pool -> mint: answer to [`MintChallenge`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MintAuth {
    /// x-only public key of the pool.
    pub pool_pubkey: U256Owned,
    /// BIP340 signature of the challenge digest.
    pub signature: SignatureOwned,
}

/// Mint -> pool: the link is ready; sign requests must use this keyset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MintReady {
    /// Active ehash keyset id.
    pub keyset_id: B0255Owned,
    /// Largest amount exponent the keyset signs.
    pub max_amount_log2: u8,
    /// Base URL of the mint's Cashu HTTP API.
    pub http_url: Str0255Owned,
}

/// Mint -> pool: authentication failed; the mint closes the link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MintAuthError {
    /// Why.
    pub error_code: Str0255Owned,
}

/// Mint -> pool: the keyset new shares are signed with, and the previous epoch's keyset while
/// shares already in flight for it may still be signed (empty when there is none).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MintEpoch {
    /// Epoch number of the active keyset.
    pub epoch: u32,
    /// Active keyset id.
    pub keyset_id: B0255Owned,
    /// Keyset of the previous epoch, still accepted during its grace period, or empty.
    pub previous_keyset_id: B0255Owned,
}

/// Pool -> mint: the block now being mined (after every new prev hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainTip {
    /// Height of the block being mined (tip height + 1).
    pub height: u32,
    /// Hash of the current tip (internal byte order).
    pub prev_hash: U256Owned,
    /// Block target, little-endian (the template provider's, which on real networks is nBits).
    pub target: U256Owned,
    /// Coinbase value of the template (subsidy + fees), in sats.
    pub coinbase_value: u64,
    /// log2 of the expected hashes per HASH of the pool's share unit.
    pub share_unit_log2: u8,
}

/// Pool -> mint: the state of a block the pool found; sent again whenever it changes and on
/// every reconnect until the mint acknowledges the final state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockReport {
    /// Block hash (internal byte order).
    pub hash: U256Owned,
    /// Height.
    pub height: u32,
    /// Coinbase value paid to the pool (subsidy + fees), in sats.
    pub reward: u64,
    /// One of `BLOCK_PENDING`, `BLOCK_MATURED`, `BLOCK_ORPHANED`.
    pub status: u8,
    /// Confirmations in the best chain (0 when not in it).
    pub confirmations: u32,
}

/// Mint -> pool: the report (`hash`, `status`) is on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockAck {
    /// Block hash (internal byte order).
    pub hash: U256Owned,
    /// Status recorded.
    pub status: u8,
}

/// Pool -> mint: sign `blinded` for `amount` under `keyset_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignRequest {
    /// Pool-chosen id echoed in the answer.
    pub request_id: u64,
    /// Amount (a denomination of the keyset).
    pub amount: u64,
    /// Keyset to sign with.
    pub keyset_id: B0255Owned,
    /// B_, 33 bytes.
    pub blinded: B0255Owned,
    /// A resend of a request the pool may already have had signed (after a crash or a lost
    /// link): the mint answers with the stored signature instead of refusing.
    pub replay: bool,
}

/// Mint -> pool: the signature, already durable in the mint's database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignResponse {
    /// Id of the request.
    pub request_id: u64,
    /// Keyset that signed: the active one, whichever (not final) keyset the request named.
    pub keyset_id: B0255Owned,
    /// C_, 33 bytes.
    pub signature: B0255Owned,
    /// DLEQ e.
    pub dleq_e: U256Owned,
    /// DLEQ s.
    pub dleq_s: U256Owned,
}

/// Mint -> pool: the request was refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignError {
    /// Id of the request.
    pub request_id: u64,
    /// One of the `ERR_*` codes.
    pub error_code: Str0255Owned,
}

/// Error converting between wire fields and plain values.
#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    /// A byte field exceeded its size limit.
    #[error("field too long for its wire type")]
    TooLong,
    /// A string was not UTF-8.
    #[error("string field is not valid UTF-8")]
    NotUtf8,
}

/// Wraps bytes into a `B0255` field.
pub fn b0255(bytes: &[u8]) -> Result<B0255Owned, FieldError> {
    B0255Owned::try_from(bytes.to_vec()).map_err(|_| FieldError::TooLong)
}

/// Wraps a string into a `Str0255` field.
pub fn str0255(s: &str) -> Result<Str0255Owned, FieldError> {
    Str0255Owned::try_from(s.to_string()).map_err(|_| FieldError::TooLong)
}

/// Reads a `Str0255` field.
pub fn read_str(s: &Str0255Owned) -> Result<String, FieldError> {
    String::from_utf8(s.as_bytes().to_vec()).map_err(|_| FieldError::NotUtf8)
}

/// A message that can be put in a frame.
pub trait Wire: binary_sv2::Serialize + binary_sv2::GetSize {}
impl<T: binary_sv2::Serialize + binary_sv2::GetSize> Wire for T {}

/// Decodes one of our messages from a frame payload.
pub fn decode<T>(payload: &mut [u8]) -> Result<T, binary_sv2::Error>
where
    T: for<'a> binary_sv2::Decodable<'a>,
{
    binary_sv2::from_bytes(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_request_round_trip() {
        let req = SignRequest {
            request_id: 7,
            amount: 64,
            keyset_id: b0255(&[1u8; 33]).unwrap(),
            blinded: b0255(&[2u8; 33]).unwrap(),
            replay: true,
        };
        let mut bytes = binary_sv2::to_bytes(req).unwrap();
        let back: SignRequest = decode(&mut bytes).unwrap();
        assert_eq!(back.request_id, 7);
        assert_eq!(back.amount, 64);
        assert_eq!(back.blinded.as_bytes(), &[2u8; 33]);
        assert!(back.replay);
    }

    #[test]
    fn truncated_payload_is_an_error() {
        let sig = EhashSignatureError {
            channel_id: 1,
            sequence_number: 2,
            error_code: str0255(ERR_ALREADY_SIGNED).unwrap(),
        };
        let bytes = binary_sv2::to_bytes(sig).unwrap();
        let mut cut = bytes[..bytes.len() - 3].to_vec();
        assert!(decode::<EhashSignatureError>(&mut cut).is_err());
    }
}
