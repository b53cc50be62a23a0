//! Wire format of hashpool's ehash extension and mint link.
//!
//! Two SV2 extensions live here:
//! - the *ehash share extension* (`EXTENSION_TYPE_EHASH`) between translator and pool: a TLV that
//!   carries one blinded message on each share, and messages that carry the blind signature back;
//! - the *mint link* (`EXTENSION_TYPE_MINT_LINK`) between pool and mint: authentication of the
//!   pool, keyset announcements and sign requests/responses.
//!
//! Both are encoded with `binary_sv2`'s derive codec and framed as ordinary SV2 frames, so they
//! travel over the same Noise transport as the standard protocols.

pub mod auth;
pub mod difficulty;
pub mod economics;
pub mod messages;
pub mod sign_batch;
pub mod signature_batch;
pub mod tlv;
pub mod vardiff;

pub use difficulty::{ShareUnit, TargetError};
pub use messages::*;
pub use tlv::{BlindedShare, TlvError};

/// Extension type of the ehash share extension (negotiated with `RequestExtensions`).
pub const EXTENSION_TYPE_EHASH: u16 = 0x4548;
/// Extension type used for the frames of the pool <-> mint link.
pub const EXTENSION_TYPE_MINT_LINK: u16 = 0x4549;
/// TLV field type, under `EXTENSION_TYPE_EHASH`, carrying a [`BlindedShare`] on a share submission.
pub const TLV_FIELD_BLINDED_SHARE: u8 = 0x01;

/// Length of a compressed secp256k1 point (B_ and C_).
pub const POINT_LEN: usize = 33;
