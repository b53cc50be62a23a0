//! `EhashSignatures`: many blind signatures of one channel and one keyset in one frame.
//!
//! At high share rates one frame (and one AEAD seal) per signature is most of the pool's cost
//! of answering; the pool sends whatever signatures are ready for a channel together. Each
//! signature is a fixed-size record, so a batch is a `B064K` of records:
//! `sequence_number u32 LE | amount u64 LE | B_ 33 | C_ 33 | e 32 | s 32`.

use crate::messages::{EhashSignature, FieldError};
use binary_sv2::{B0255Owned, B064KOwned, Deserialize, Serialize, U256Owned};

/// Pool -> translator: several blind signatures (see the module docs).
pub const MSG_EHASH_SIGNATURES: u8 = 0x04;
/// Bytes of one record.
pub const RECORD_SIZE: usize = 4 + 8 + 33 + 33 + 32 + 32;
/// Records that fit in one message.
pub const MAX_RECORDS: usize = 65_535 / RECORD_SIZE;

/// Pool -> translator: signatures for shares of `channel_id`, all made by `keyset_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EhashSignatures {
    /// Channel of the shares.
    pub channel_id: u32,
    /// Keyset that signed them.
    pub keyset_id: B0255Owned,
    /// `RECORD_SIZE`-byte records, one per signature.
    pub records: B064KOwned,
}

/// Why a batch could not be built or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// Signatures of different channels or keysets.
    #[error("a batch holds one channel and one keyset")]
    Mixed,
    /// None, or more than fit in one frame ([`MAX_RECORDS`] signatures).
    #[error("a batch holds at least one record and at most a frame's worth, got {0}")]
    Count(usize),
    /// A field of a signature has the wrong size.
    #[error("signature field of the wrong size")]
    Field,
    /// The records are not a whole number of records.
    #[error("records of {0} bytes are not a multiple of {RECORD_SIZE}")]
    Length(usize),
}

impl From<FieldError> for BatchError {
    fn from(_: FieldError) -> Self {
        BatchError::Field
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], BatchError> {
    bytes.try_into().map_err(|_| BatchError::Field)
}

impl EhashSignatures {
    /// Packs signatures of one channel and keyset.
    pub fn pack(signatures: &[EhashSignature]) -> Result<Self, BatchError> {
        let first = signatures.first().ok_or(BatchError::Count(0))?;
        if signatures.len() > MAX_RECORDS {
            return Err(BatchError::Count(signatures.len()));
        }
        let mut records = Vec::with_capacity(signatures.len() * RECORD_SIZE);
        for s in signatures {
            if s.channel_id != first.channel_id
                || s.keyset_id.as_bytes() != first.keyset_id.as_bytes()
            {
                return Err(BatchError::Mixed);
            }
            records.extend_from_slice(&s.sequence_number.to_le_bytes());
            records.extend_from_slice(&s.amount.to_le_bytes());
            records.extend_from_slice(&fixed::<33>(s.blinded.as_bytes())?);
            records.extend_from_slice(&fixed::<33>(s.signature.as_bytes())?);
            records.extend_from_slice(&s.dleq_e.to_array());
            records.extend_from_slice(&s.dleq_s.to_array());
        }
        Ok(Self {
            channel_id: first.channel_id,
            keyset_id: first.keyset_id.clone(),
            records: B064KOwned::try_from(records)
                .map_err(|_| BatchError::Count(signatures.len()))?,
        })
    }

    /// The signatures, one per record.
    pub fn unpack(&self) -> Result<Vec<EhashSignature>, BatchError> {
        let bytes = self.records.as_bytes();
        if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_SIZE) {
            return Err(BatchError::Length(bytes.len()));
        }
        bytes
            .chunks_exact(RECORD_SIZE)
            .map(|r| {
                Ok(EhashSignature {
                    channel_id: self.channel_id,
                    sequence_number: u32::from_le_bytes(fixed(&r[0..4])?),
                    amount: u64::from_le_bytes(fixed(&r[4..12])?),
                    keyset_id: self.keyset_id.clone(),
                    blinded: crate::messages::b0255(&r[12..45])?,
                    signature: crate::messages::b0255(&r[45..78])?,
                    dleq_e: U256Owned::from(fixed::<32>(&r[78..110])?),
                    dleq_s: U256Owned::from(fixed::<32>(&r[110..142])?),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::b0255;

    fn sig(seq: u32, channel_id: u32) -> EhashSignature {
        EhashSignature {
            channel_id,
            sequence_number: seq,
            amount: 1 << (seq % 8),
            keyset_id: b0255(&[1u8; 8]).unwrap(),
            blinded: b0255(&[2u8; 33]).unwrap(),
            signature: b0255(&[3u8; 33]).unwrap(),
            dleq_e: U256Owned::from([seq as u8; 32]),
            dleq_s: U256Owned::from([5u8; 32]),
        }
    }

    #[test]
    fn round_trip_through_the_wire() {
        let sigs: Vec<_> = (0..MAX_RECORDS as u32).map(|i| sig(i, 9)).collect();
        let batch = EhashSignatures::pack(&sigs).unwrap();
        let mut bytes = binary_sv2::to_bytes(batch).unwrap();
        let back: EhashSignatures = crate::messages::decode(&mut bytes).unwrap();
        let out = back.unpack().unwrap();
        assert_eq!(out.len(), MAX_RECORDS);
        for (a, b) in sigs.iter().zip(&out) {
            assert_eq!(
                (a.sequence_number, a.amount, a.dleq_e.to_array()),
                (b.sequence_number, b.amount, b.dleq_e.to_array())
            );
            assert_eq!(b.channel_id, 9);
        }
    }

    #[test]
    fn bad_batches_are_refused() {
        assert_eq!(
            EhashSignatures::pack(&[]).unwrap_err(),
            BatchError::Count(0)
        );
        assert_eq!(
            EhashSignatures::pack(&[sig(1, 1), sig(2, 2)]).unwrap_err(),
            BatchError::Mixed
        );
        let too_many: Vec<_> = (0..=MAX_RECORDS as u32).map(|i| sig(i, 1)).collect();
        assert!(matches!(
            EhashSignatures::pack(&too_many),
            Err(BatchError::Count(_))
        ));
        let mut b = EhashSignatures::pack(&[sig(1, 1)]).unwrap();
        b.records = B064KOwned::try_from(vec![0u8; RECORD_SIZE + 1]).unwrap();
        assert_eq!(b.unpack().unwrap_err(), BatchError::Length(RECORD_SIZE + 1));
    }
}
