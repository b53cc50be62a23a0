//! Writes the seed inputs of the fuzz corpus (`cargo run -p hashpool-fuzz-bodies --example
//! write_seeds`): one valid instance of each message the roles parse.

use ehash_protocol::messages as m;
use ehash_protocol::{BlindedShare, EXTENSION_TYPE_EHASH, EXTENSION_TYPE_MINT_LINK};
use std::path::PathBuf;
use stratum_core::common_messages_sv2::Protocol;
use stratum_core::mining_sv2::{OpenExtendedMiningChannelOwned, SubmitSharesExtendedOwned};
use stratum_core::parsers_sv2::{MiningOwned, TlvList};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed");
}

fn frame_bytes(mut f: sv2_io::Frame) -> Vec<u8> {
    let h = f.header();
    let mut out = Vec::new();
    out.extend_from_slice(&h.ext_type().to_le_bytes());
    out.push(h.msg_type());
    let len = f.payload().len() as u32;
    out.extend_from_slice(&len.to_le_bytes()[..3]);
    out.extend_from_slice(f.payload());
    out
}

fn main() {
    let setup = sv2_io::frame::setup_connection(Protocol::MiningProtocol, 0).expect("setup");
    write("sv2_frame", "setup-connection", &frame_bytes(setup));
    let open = OpenExtendedMiningChannelOwned {
        request_id: 1,
        user_identity: "seed".to_string().try_into().expect("user"),
        nominal_hash_rate: 1e6,
        max_target: [0xff; 32].into(),
        min_extranonce_size: 4,
    };
    let f =
        sv2_io::frame::encode_standard(MiningOwned::OpenExtendedMiningChannel(open)).expect("open");
    write("sv2_frame", "open-extended", &frame_bytes(f));
    let share = SubmitSharesExtendedOwned {
        channel_id: 1,
        sequence_number: 7,
        job_id: 3,
        nonce: 42,
        ntime: 1_700_000_000,
        version: 0x2000_0000,
        extranonce: vec![1, 2, 3, 4].try_into().expect("extranonce"),
    };
    let tlv = BlindedShare {
        keyset_id: vec![1; 33],
        blinded: [2; 33],
    }
    .to_tlv();
    let bytes = TlvList::from_slice(&[tlv])
        .expect("tlv")
        .build_frame_bytes_with_tlvs(MiningOwned::SubmitSharesExtended(share))
        .expect("frame");
    write("sv2_frame", "share-with-ehash-tlv", &bytes);

    let sign = m::SignRequest {
        request_id: 9,
        amount: 8,
        keyset_id: m::b0255(&[1; 33]).expect("keyset"),
        blinded: m::b0255(&[2; 33]).expect("B_"),
        replay: false,
    };
    let f = sv2_io::encode(
        sign.clone(),
        m::MSG_SIGN_REQUEST,
        EXTENSION_TYPE_MINT_LINK,
        false,
    )
    .expect("sign");
    write("sv2_frame", "sign-request", &frame_bytes(f));
    let mut e = vec![m::MSG_SIGN_REQUEST];
    e.extend(stratum_core::binary_sv2::to_bytes(sign).expect("bytes"));
    write("ehash_message", "sign-request", &e);
    let info = m::EhashMintInfo {
        keyset_id: m::b0255(&[1; 33]).expect("keyset"),
        share_unit_log2: 12,
        mint_url: m::str0255("http://127.0.0.1:13338").expect("url"),
    };
    let f = sv2_io::encode(
        info.clone(),
        m::MSG_EHASH_MINT_INFO,
        EXTENSION_TYPE_EHASH,
        true,
    )
    .expect("info");
    write("sv2_frame", "mint-info", &frame_bytes(f));
    let mut e = vec![m::MSG_EHASH_MINT_INFO];
    e.extend(stratum_core::binary_sv2::to_bytes(info).expect("bytes"));
    write("ehash_message", "mint-info", &e);

    let link: [(&str, u8, Vec<u8>); 4] = [
        (
            "chain-tip",
            m::MSG_CHAIN_TIP,
            stratum_core::binary_sv2::to_bytes(m::ChainTip {
                height: 12,
                prev_hash: [3; 32].into(),
                target: [0xff; 32].into(),
                coinbase_value: 5_000_000_000,
                share_unit_log2: 12,
            })
            .expect("tip"),
        ),
        (
            "block-report",
            m::MSG_BLOCK_REPORT,
            stratum_core::binary_sv2::to_bytes(m::BlockReport {
                hash: [4; 32].into(),
                height: 11,
                reward: 5_000_000_000,
                status: m::BLOCK_MATURED,
                confirmations: 3,
            })
            .expect("report"),
        ),
        (
            "block-ack",
            m::MSG_BLOCK_ACK,
            stratum_core::binary_sv2::to_bytes(m::BlockAck {
                hash: [4; 32].into(),
                status: m::BLOCK_MATURED,
            })
            .expect("ack"),
        ),
        (
            "mint-epoch",
            m::MSG_MINT_EPOCH,
            stratum_core::binary_sv2::to_bytes(m::MintEpoch {
                epoch: 2,
                keyset_id: m::b0255(&[1; 33]).expect("keyset"),
                previous_keyset_id: m::b0255(&[]).expect("none"),
            })
            .expect("epoch"),
        ),
    ];
    for (name, t, body) in link {
        let mut e = vec![t];
        e.extend(body);
        write("ehash_message", name, &e);
    }

    for (name, line) in [
        (
            "subscribe",
            r#"{"id":1,"method":"mining.subscribe","params":["cpuminer/1.0"]}"#,
        ),
        (
            "authorize",
            r#"{"id":2,"method":"mining.authorize","params":["w1","x"]}"#,
        ),
        (
            "configure",
            r#"{"id":3,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}"#,
        ),
        (
            "submit",
            r#"{"id":4,"method":"mining.submit","params":["w1","5","0000000000000001","6553f100","0000abcd"]}"#,
        ),
        (
            "notify",
            r#"{"id":null,"method":"mining.notify","params":["5","00000000000000000000000000000000000000000000000000000000000000aa","01","02",[],"20000000","207fffff","6553f100",true]}"#,
        ),
        (
            "set-difficulty",
            r#"{"id":null,"method":"mining.set_difficulty","params":[0.5]}"#,
        ),
    ] {
        write("sv1_line", name, line.as_bytes());
    }
}
