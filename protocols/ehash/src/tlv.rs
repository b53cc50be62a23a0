//! The blinded-message TLV attached to share submissions.

use crate::{EXTENSION_TYPE_EHASH, POINT_LEN, TLV_FIELD_BLINDED_SHARE};
use stratum_core::parsers_sv2::Tlv;

/// Errors decoding a [`BlindedShare`] TLV.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlvError {
    /// Not our extension/field.
    #[error("TLV is not an ehash blinded share")]
    WrongType,
    /// The value has the wrong layout.
    #[error("malformed ehash blinded share TLV ({0} bytes)")]
    Malformed(usize),
}

/// One blinded message for keyset `keyset_id`, attached to a share.
///
/// Value layout: `keyset_id_len u8 ‖ keyset_id ‖ B_ (33 bytes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlindedShare {
    /// Keyset id bytes (CDK `Id::to_bytes`).
    pub keyset_id: Vec<u8>,
    /// Compressed point B_.
    pub blinded: [u8; POINT_LEN],
}

impl BlindedShare {
    /// Encodes as a TLV of the ehash extension.
    pub fn to_tlv(&self) -> Tlv {
        let mut value = Vec::with_capacity(1 + self.keyset_id.len() + POINT_LEN);
        value.push(self.keyset_id.len() as u8);
        value.extend_from_slice(&self.keyset_id);
        value.extend_from_slice(&self.blinded);
        Tlv::new(EXTENSION_TYPE_EHASH, TLV_FIELD_BLINDED_SHARE, value)
    }

    /// Decodes from a TLV; the point itself is not validated here.
    pub fn from_tlv(tlv: &Tlv) -> Result<Self, TlvError> {
        if tlv.r#type.extension_type != EXTENSION_TYPE_EHASH
            || tlv.r#type.field_type != TLV_FIELD_BLINDED_SHARE
        {
            return Err(TlvError::WrongType);
        }
        Self::from_value(&tlv.value)
    }

    /// Decodes the TLV value.
    pub fn from_value(v: &[u8]) -> Result<Self, TlvError> {
        let id_len = *v.first().ok_or(TlvError::Malformed(0))? as usize;
        if id_len == 0 || v.len() != 1 + id_len + POINT_LEN {
            return Err(TlvError::Malformed(v.len()));
        }
        let mut blinded = [0u8; POINT_LEN];
        blinded.copy_from_slice(&v[1 + id_len..]);
        Ok(Self {
            keyset_id: v[1..1 + id_len].to_vec(),
            blinded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let s = BlindedShare {
            keyset_id: vec![1; 33],
            blinded: [2; POINT_LEN],
        };
        let tlv = s.to_tlv();
        assert_eq!(BlindedShare::from_tlv(&tlv).unwrap(), s);
        assert!(BlindedShare::from_value(&[]).is_err());
        assert!(BlindedShare::from_value(&[33, 1, 2]).is_err());
        let other = Tlv::new(0x0002, 0x01, vec![1, 2, 3]);
        assert_eq!(BlindedShare::from_tlv(&other), Err(TlvError::WrongType));
    }
}
