//! `SignRequests` / `SignResponses`: many sign requests, or their signatures, of one keyset in
//! one mint-link frame.
//!
//! At high share rates a frame per request and one per answer (each sealed twice by Noise,
//! header and body) was a large part of what the pool and the mint spend on a share that is
//! not signing it. Whatever is queued when the link's writer wakes goes in one frame. Records
//! have a fixed size, so a batch is a keyset and a `B064K` of records:
//! - request: `request_id u64 LE | amount u64 LE | replay u8 | B_ 33`;
//! - response: `request_id u64 LE | C_ 33 | e 32 | s 32`.
//!
//! Refusals stay `SignError` frames: they are rare, and carry a string.

use crate::signature_batch::BatchError;
use crate::POINT_LEN;
use binary_sv2::{B0255Owned, B064KOwned, Deserialize, Serialize};

/// Pool -> mint: several sign requests of one keyset.
pub const MSG_SIGN_REQUESTS: u8 = 0x23;
/// Mint -> pool: several signatures of one keyset, each stored before it was sent.
pub const MSG_SIGN_RESPONSES: u8 = 0x24;
/// Bytes of one request record.
pub const REQUEST_RECORD_SIZE: usize = 8 + 8 + 1 + POINT_LEN;
/// Bytes of one response record.
pub const RESPONSE_RECORD_SIZE: usize = 8 + POINT_LEN + 32 + 32;
/// Requests that fit in one message.
pub const MAX_REQUESTS: usize = 65_535 / REQUEST_RECORD_SIZE;
/// Responses that fit in one message.
pub const MAX_RESPONSES: usize = 65_535 / RESPONSE_RECORD_SIZE;

/// Pool -> mint: sign each record's B_ for its amount under `keyset_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignRequests {
    /// Keyset every request names.
    pub keyset_id: B0255Owned,
    /// `REQUEST_RECORD_SIZE`-byte records.
    pub records: B064KOwned,
}

/// Mint -> pool: the signatures of requests, all made by `keyset_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignResponses {
    /// Keyset that signed them.
    pub keyset_id: B0255Owned,
    /// `RESPONSE_RECORD_SIZE`-byte records.
    pub records: B064KOwned,
}

/// One request of a [`SignRequests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRecord {
    /// Pool-chosen id echoed in the answer.
    pub request_id: u64,
    /// Amount (a denomination of the keyset).
    pub amount: u64,
    /// A resend: the mint answers with the signature it stored, if any.
    pub replay: bool,
    /// B_.
    pub blinded: [u8; POINT_LEN],
}

/// One signature of a [`SignResponses`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseRecord {
    /// Id of the request.
    pub request_id: u64,
    /// C_.
    pub signature: [u8; POINT_LEN],
    /// DLEQ e.
    pub dleq_e: [u8; 32],
    /// DLEQ s.
    pub dleq_s: [u8; 32],
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], BatchError> {
    bytes.try_into().map_err(|_| BatchError::Field)
}

/// Packs 1..=`max` items of `size` bytes each (written by `write`) with their keyset.
fn pack_records<T>(
    keyset_id: &[u8],
    items: &[T],
    (size, max): (usize, usize),
    write: impl Fn(&T, &mut Vec<u8>),
) -> Result<(B0255Owned, B064KOwned), BatchError> {
    if items.is_empty() || items.len() > max {
        return Err(BatchError::Count(items.len()));
    }
    let mut records = Vec::with_capacity(items.len() * size);
    for item in items {
        write(item, &mut records);
    }
    let keyset_id = B0255Owned::try_from(keyset_id.to_vec()).map_err(|_| BatchError::Field)?;
    let records = B064KOwned::try_from(records).map_err(|_| BatchError::Count(items.len()))?;
    Ok((keyset_id, records))
}

/// Groups `(keyset, record)` pairs by keyset, keysets in first-seen order. A batch holds one
/// keyset; what is queued together has one, or two around an epoch change.
pub fn group_by_keyset<K: PartialEq, R>(
    items: impl IntoIterator<Item = (K, R)>,
) -> Vec<(K, Vec<R>)> {
    let mut groups: Vec<(K, Vec<R>)> = Vec::new();
    for (keyset, record) in items {
        match groups.iter_mut().find(|(k, _)| *k == keyset) {
            Some((_, records)) => records.push(record),
            None => groups.push((keyset, vec![record])),
        }
    }
    groups
}

/// The records of a batch, checked for count and size.
fn chunks(bytes: &[u8], size: usize) -> Result<std::slice::ChunksExact<'_, u8>, BatchError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(size) {
        return Err(BatchError::Length(bytes.len()));
    }
    Ok(bytes.chunks_exact(size))
}

impl SignRequests {
    /// Packs 1..=[`MAX_REQUESTS`] requests of one keyset.
    pub fn pack(keyset_id: &[u8], requests: &[RequestRecord]) -> Result<Self, BatchError> {
        let size = (REQUEST_RECORD_SIZE, MAX_REQUESTS);
        let (keyset_id, records) = pack_records(keyset_id, requests, size, |r, out| {
            out.extend_from_slice(&r.request_id.to_le_bytes());
            out.extend_from_slice(&r.amount.to_le_bytes());
            out.push(u8::from(r.replay));
            out.extend_from_slice(&r.blinded);
        })?;
        Ok(Self { keyset_id, records })
    }

    /// The requests, one per record.
    pub fn unpack(&self) -> Result<Vec<RequestRecord>, BatchError> {
        chunks(self.records.as_bytes(), REQUEST_RECORD_SIZE)?
            .map(|r| {
                Ok(RequestRecord {
                    request_id: u64::from_le_bytes(fixed(&r[0..8])?),
                    amount: u64::from_le_bytes(fixed(&r[8..16])?),
                    replay: match r[16] {
                        0 => false,
                        1 => true,
                        _ => return Err(BatchError::Field),
                    },
                    blinded: fixed(&r[17..])?,
                })
            })
            .collect()
    }
}

impl SignResponses {
    /// Packs 1..=[`MAX_RESPONSES`] signatures of one keyset.
    pub fn pack(keyset_id: &[u8], responses: &[ResponseRecord]) -> Result<Self, BatchError> {
        let size = (RESPONSE_RECORD_SIZE, MAX_RESPONSES);
        let (keyset_id, records) = pack_records(keyset_id, responses, size, |r, out| {
            out.extend_from_slice(&r.request_id.to_le_bytes());
            out.extend_from_slice(&r.signature);
            out.extend_from_slice(&r.dleq_e);
            out.extend_from_slice(&r.dleq_s);
        })?;
        Ok(Self { keyset_id, records })
    }

    /// The signatures, one per record.
    pub fn unpack(&self) -> Result<Vec<ResponseRecord>, BatchError> {
        chunks(self.records.as_bytes(), RESPONSE_RECORD_SIZE)?
            .map(|r| {
                Ok(ResponseRecord {
                    request_id: u64::from_le_bytes(fixed(&r[0..8])?),
                    signature: fixed(&r[8..41])?,
                    dleq_e: fixed(&r[41..73])?,
                    dleq_s: fixed(&r[73..])?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::decode;

    fn request(i: u64) -> RequestRecord {
        RequestRecord {
            request_id: i,
            amount: 1 << (i % 8),
            replay: i.is_multiple_of(3),
            blinded: [i as u8; POINT_LEN],
        }
    }

    fn response(i: u64) -> ResponseRecord {
        ResponseRecord {
            request_id: i,
            signature: [i as u8; POINT_LEN],
            dleq_e: [1; 32],
            dleq_s: [(i >> 8) as u8; 32],
        }
    }

    #[test]
    fn full_batches_round_trip_through_the_wire() {
        let keyset = [1u8; 33];
        let requests: Vec<_> = (0..MAX_REQUESTS as u64).map(request).collect();
        let mut bytes =
            binary_sv2::to_bytes(SignRequests::pack(&keyset, &requests).unwrap()).unwrap();
        let back: SignRequests = decode(&mut bytes).unwrap();
        assert_eq!(back.keyset_id.as_bytes(), &keyset);
        assert_eq!(back.unpack().unwrap(), requests);

        let responses: Vec<_> = (0..MAX_RESPONSES as u64).map(response).collect();
        let mut bytes =
            binary_sv2::to_bytes(SignResponses::pack(&keyset, &responses).unwrap()).unwrap();
        let back: SignResponses = decode(&mut bytes).unwrap();
        assert_eq!(back.unpack().unwrap(), responses);
    }

    #[test]
    fn records_are_grouped_by_keyset_in_first_seen_order() {
        let groups = group_by_keyset([(2, 'a'), (1, 'b'), (2, 'c')]);
        assert_eq!(groups, vec![(2, vec!['a', 'c']), (1, vec!['b'])]);
    }

    #[test]
    fn bad_batches_are_refused() {
        assert_eq!(
            SignRequests::pack(&[1], &[]).unwrap_err(),
            BatchError::Count(0)
        );
        let too_many: Vec<_> = (0..=MAX_RESPONSES as u64).map(response).collect();
        assert_eq!(
            SignResponses::pack(&[1], &too_many).unwrap_err(),
            BatchError::Count(MAX_RESPONSES + 1)
        );
        assert_eq!(
            SignRequests::pack(&[0u8; 256], &[request(1)]).unwrap_err(),
            BatchError::Field
        );
        let mut b = SignRequests::pack(&[1], &[request(1)]).unwrap();
        b.records = B064KOwned::try_from(vec![0u8; REQUEST_RECORD_SIZE - 1]).unwrap();
        assert_eq!(
            b.unpack().unwrap_err(),
            BatchError::Length(REQUEST_RECORD_SIZE - 1)
        );
        // A replay flag other than 0 or 1 is not a request.
        let mut raw = vec![0u8; REQUEST_RECORD_SIZE];
        raw[16] = 2;
        b.records = B064KOwned::try_from(raw).unwrap();
        assert_eq!(b.unpack().unwrap_err(), BatchError::Field);
        let mut r = SignResponses::pack(&[1], &[response(1)]).unwrap();
        r.records = B064KOwned::try_from(Vec::new()).unwrap();
        assert_eq!(r.unpack().unwrap_err(), BatchError::Length(0));
    }
}
