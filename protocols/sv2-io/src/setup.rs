//! Connection setup shared by the roles: a responder waiting for `SetupConnection`, and an
//! initiator opening a Template Distribution session.

use crate::frame::Frame;
use crate::keys::AuthorityPublicKey;
use crate::link::{connect_with_setup, FrameReader, FrameSender, LinkError};
use stratum_core::bitcoin::TxOut;
use stratum_core::common_messages_sv2::{Protocol, SetupConnectionSuccess};
use stratum_core::parsers_sv2::{CommonMessages, CommonMessagesOwned};
use stratum_core::template_distribution_sv2::MESSAGE_TYPE_COINBASE_OUTPUT_CONSTRAINTS;

/// `SetupConnection` flag of the mining protocol: the client selects its own work (job
/// declaration).
pub const REQUIRES_WORK_SELECTION: u32 = 0b10;

/// Reads a connection's first frame, which must be `SetupConnection` for `protocol`; returns
/// its flags. Anything else is an error naming what came.
pub async fn expect_setup(reader: &mut FrameReader, protocol: Protocol) -> Result<u32, String> {
    let mut frame: Frame = reader.next().await.map_err(|e| e.to_string())?;
    let (ext, t) = crate::frame::kind(&frame);
    match (ext, CommonMessages::try_from((t, frame.payload()))) {
        (0, Ok(CommonMessages::SetupConnection(s))) if s.protocol == protocol => Ok(s.flags),
        _ => Err(format!(
            "expected SetupConnection({protocol:?}), got type {t:#04x}"
        )),
    }
}

/// Answers `SetupConnection` with `SetupConnectionSuccess` (SV2 version 2, no flags).
pub async fn accept_setup(sender: &FrameSender) -> Result<(), String> {
    let ok = CommonMessagesOwned::SetupConnectionSuccess(SetupConnectionSuccess {
        used_version: 2,
        flags: 0,
    });
    let frame = crate::frame::encode_standard(ok).map_err(|e| e.to_string())?;
    sender.send(frame).await.map_err(|e| e.to_string())
}

/// Opens a Template Distribution session with the provider at `address` and tells it how much
/// room the `outputs` of our coinbases take (`CoinbaseOutputConstraints`).
pub async fn connect_template_provider(
    address: &str,
    authority: &AuthorityPublicKey,
    outputs: &[TxOut],
) -> Result<(FrameReader, FrameSender), LinkError> {
    let (reader, sender) = connect_with_setup(
        address,
        authority,
        Protocol::TemplateDistributionProtocol,
        0,
    )
    .await?;
    let constraints =
        stratum_apps::coinbase_output_constraints::coinbase_output_constraints_message(
            outputs.to_vec(),
        );
    let frame = crate::frame::encode(
        constraints,
        MESSAGE_TYPE_COINBASE_OUTPUT_CONSTRAINTS,
        0,
        false,
    )
    .map_err(|e| LinkError::SetupRefused {
        peer: address.to_string(),
        reason: e.to_string(),
    })?;
    sender.send(frame).await?;
    Ok((reader, sender))
}
