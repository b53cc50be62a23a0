//! Fuzz target bodies. Each takes arbitrary bytes and runs them through the same parsing code
//! the roles run on input from peers; any panic is a bug. `fuzz/` (cargo-fuzz) drives them
//! with coverage guidance; `tests/corpus_replay.rs` replays the saved corpus in the test suite.

use ehash_protocol::messages as m;
use ehash_protocol::{BlindedShare, EXTENSION_TYPE_EHASH, EXTENSION_TYPE_MINT_LINK};
use stratum_core::parsers_sv2::{Extensions, Mining, TemplateDistribution};

/// An SV2 frame (header + payload, as decrypted by Noise) from a translator, pool, template
/// provider or mint peer: every parser a role applies to such a frame.
pub fn sv2_frame(data: &[u8]) {
    let Ok(mut frame) = sv2_io::frame::from_bytes(data.to_vec()) else {
        return;
    };
    let header = frame.header();
    let ext = header.ext_type_without_channel_msg();
    let msg_type = header.msg_type();
    let payload = frame.payload().to_vec();
    match ext {
        0 => {
            // Pool: mining messages with the ehash TLV from a translator.
            let mut p = payload.clone();
            if let Ok((_, tlvs)) =
                sv2_io::frame::parse_with_tlvs(header, &mut p, &[EXTENSION_TYPE_EHASH])
            {
                for t in &tlvs {
                    let _ = BlindedShare::from_tlv(t);
                }
            }
            // Translator: mining messages from the pool.
            let mut p = payload.clone();
            let _ = Mining::try_from((msg_type, p.as_mut_slice()));
            // Pool: template distribution messages from the template provider.
            let mut p = payload;
            let _ = TemplateDistribution::try_from((msg_type, p.as_mut_slice()));
        }
        0x0001 => {
            let mut p = payload;
            let _ = Extensions::try_from((header.ext_type(), msg_type, p.as_mut_slice()));
        }
        EXTENSION_TYPE_EHASH | EXTENSION_TYPE_MINT_LINK => ehash_payload(msg_type, &payload),
        _ => {}
    }
}

/// The payload of an ehash-extension or mint-link message of type `data[0]`.
pub fn ehash_message(data: &[u8]) {
    if let Some((t, payload)) = data.split_first() {
        ehash_payload(*t, payload);
        let _ = BlindedShare::from_value(payload);
    }
}

fn ehash_payload(msg_type: u8, payload: &[u8]) {
    fn dec<T>(payload: &[u8])
    where
        T: for<'a> stratum_core::binary_sv2::Decodable<'a>,
    {
        let mut p = payload.to_vec();
        let _ = m::decode::<T>(&mut p);
    }
    match msg_type {
        m::MSG_EHASH_MINT_INFO => {
            let mut p = payload.to_vec();
            if let Ok(i) = m::decode::<m::EhashMintInfo>(&mut p) {
                let _ = m::read_str(&i.mint_url);
            }
        }
        m::MSG_EHASH_SIGNATURE => dec::<m::EhashSignature>(payload),
        ehash_protocol::signature_batch::MSG_EHASH_SIGNATURES => {
            let mut p = payload.to_vec();
            if let Ok(b) = m::decode::<ehash_protocol::signature_batch::EhashSignatures>(&mut p) {
                let _ = b.unpack();
            }
        }
        m::MSG_EHASH_SIGNATURE_ERROR => {
            let mut p = payload.to_vec();
            if let Ok(e) = m::decode::<m::EhashSignatureError>(&mut p) {
                let _ = m::read_str(&e.error_code);
            }
        }
        m::MSG_MINT_CHALLENGE => dec::<m::MintChallenge>(payload),
        m::MSG_MINT_AUTH => dec::<m::MintAuth>(payload),
        m::MSG_MINT_READY => {
            let mut p = payload.to_vec();
            if let Ok(r) = m::decode::<m::MintReady>(&mut p) {
                let _ = m::read_str(&r.http_url);
            }
        }
        m::MSG_MINT_AUTH_ERROR => dec::<m::MintAuthError>(payload),
        ehash_protocol::sign_batch::MSG_SIGN_REQUESTS => {
            let mut p = payload.to_vec();
            if let Ok(b) = m::decode::<ehash_protocol::sign_batch::SignRequests>(&mut p) {
                let _ = b.unpack();
            }
        }
        ehash_protocol::sign_batch::MSG_SIGN_RESPONSES => {
            let mut p = payload.to_vec();
            if let Ok(b) = m::decode::<ehash_protocol::sign_batch::SignResponses>(&mut p) {
                let _ = b.unpack();
            }
        }
        m::MSG_SIGN_REQUEST => dec::<m::SignRequest>(payload),
        m::MSG_SIGN_RESPONSE => dec::<m::SignResponse>(payload),
        m::MSG_SIGN_ERROR => dec::<m::SignError>(payload),
        m::MSG_MINT_EPOCH => dec::<m::MintEpoch>(payload),
        m::MSG_CHAIN_TIP => dec::<m::ChainTip>(payload),
        m::MSG_BLOCK_REPORT => dec::<m::BlockReport>(payload),
        m::MSG_BLOCK_ACK => dec::<m::BlockAck>(payload),
        _ => {}
    }
}

/// One line from an SV1 miner (translator) or from the translator (CPU miner).
pub fn sv1_line(data: &[u8]) {
    let _ = hashpool_translator::sv1::parse_line(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(msg) = serde_json::from_str::<stratum_core::sv1_api::json_rpc::Message>(text) {
            let _ = stratum_core::sv1_api::methods::Method::try_from(msg);
        }
    }
}
