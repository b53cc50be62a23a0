//! One SV1 job (`mining.notify` plus the session's extranonce) and the headers it describes.

use stratum_core::bitcoin::hashes::{sha256d, Hash, HashEngine};
use stratum_core::sv1_api::server_to_client::Notify;

/// Everything needed to build block headers for one `mining.notify`.
#[derive(Debug, Clone)]
pub struct Sv1Job {
    /// Job id to submit with.
    pub job_id: String,
    /// Coinbase before the extranonce.
    pub coinbase1: Vec<u8>,
    /// Coinbase after the extranonce.
    pub coinbase2: Vec<u8>,
    /// The session's extranonce1.
    pub extranonce1: Vec<u8>,
    /// Bytes of extranonce2 the miner rolls.
    pub extranonce2_size: usize,
    /// Merkle branch from the coinbase to the root.
    pub branch: Vec<[u8; 32]>,
    /// Header version.
    pub version: u32,
    /// Previous block hash as it goes into the header.
    pub prev_hash: [u8; 32],
    /// Header nBits.
    pub nbits: u32,
    /// Header ntime.
    pub ntime: u32,
}

impl Sv1Job {
    /// Reads a notify; errors if the server sent malformed hashes.
    pub fn from_notify(
        n: &Notify,
        extranonce1: &[u8],
        extranonce2_size: usize,
    ) -> Result<Self, String> {
        let prev: &[u8] = n.prev_hash.as_ref();
        Ok(Self {
            job_id: n.job_id.clone(),
            coinbase1: n.coin_base1.clone().into(),
            coinbase2: n.coin_base2.clone().into(),
            extranonce1: extranonce1.to_vec(),
            extranonce2_size,
            branch: n
                .merkle_branch
                .iter()
                .map(|b| {
                    let s: &[u8] = b.as_ref();
                    s.try_into()
                        .map_err(|_| "merkle branch node must be 32 bytes".to_string())
                })
                .collect::<Result<_, _>>()?,
            version: n.version.0,
            prev_hash: prev
                .try_into()
                .map_err(|_| "prev hash must be 32 bytes".to_string())?,
            nbits: n.bits.0,
            ntime: n.time.0,
        })
    }

    /// Merkle root of the block with this extranonce2.
    pub fn merkle_root(&self, extranonce2: &[u8]) -> [u8; 32] {
        let mut e = sha256d::Hash::engine();
        e.input(&self.coinbase1);
        e.input(&self.extranonce1);
        e.input(extranonce2);
        e.input(&self.coinbase2);
        let mut root = sha256d::Hash::from_engine(e).to_byte_array();
        for node in &self.branch {
            let mut e = sha256d::Hash::engine();
            e.input(&root);
            e.input(node);
            root = sha256d::Hash::from_engine(e).to_byte_array();
        }
        root
    }

    /// The 80-byte header with this extranonce2 and a zero nonce.
    pub fn header(&self, extranonce2: &[u8]) -> [u8; 80] {
        let mut header = [0u8; 80];
        header[0..4].copy_from_slice(&self.version.to_le_bytes());
        header[4..36].copy_from_slice(&self.prev_hash);
        header[36..68].copy_from_slice(&self.merkle_root(extranonce2));
        header[68..72].copy_from_slice(&self.ntime.to_le_bytes());
        header[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        header
    }

    /// Header hash (internal byte order) for this extranonce2 and nonce.
    pub fn hash(&self, extranonce2: &[u8], nonce: u32) -> [u8; 32] {
        let mut header = self.header(extranonce2);
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        sha256d::Hash::hash(&header).to_byte_array()
    }
}
