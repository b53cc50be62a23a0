//! Building SV2 frames from typed messages.

use stratum_core::binary_sv2::{GetSize, Serialize};
use stratum_core::codec_sv2::{EncodableFrame, MessageFrame, SerializedFrame};
use stratum_core::framing_sv2::header::Header;

/// A plaintext SV2 frame (header + payload) ready to encrypt, or just decrypted.
pub type Frame = SerializedFrame;

/// Errors building or reading a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The payload is not a well-formed message of its type (plus negotiated TLVs).
    #[error("malformed SV2 frame type {msg_type:#04x}: {reason}")]
    Malformed {
        /// Message type of the frame.
        msg_type: u8,
        /// Why.
        reason: String,
    },
    /// The message could not be serialized.
    #[error("cannot encode SV2 message type {msg_type:#04x}: {reason}")]
    Encode {
        /// Message type that failed.
        msg_type: u8,
        /// Codec's reason.
        reason: String,
    },
}

/// Encodes `msg` as a frame of `msg_type` under `extension_type`.
pub fn encode<T: Serialize + GetSize>(
    msg: T,
    msg_type: u8,
    extension_type: u16,
    channel_msg: bool,
) -> Result<Frame, FrameError> {
    let err = |reason: String| FrameError::Encode { msg_type, reason };
    let frame = MessageFrame::from_message(msg, msg_type, extension_type, channel_msg)
        .map_err(|e| err(format!("{e:?}")))?;
    let mut buf = vec![0u8; frame.encoded_length()];
    frame
        .encode_into(&mut buf)
        .map_err(|e| err(format!("{e:?}")))?;
    SerializedFrame::from_bytes(buf).map_err(|e| err(format!("size hint {e:?}")))
}

/// Wraps already-encoded frame bytes (header included), e.g. a message with TLVs appended.
pub fn from_bytes(bytes: Vec<u8>) -> Result<Frame, FrameError> {
    SerializedFrame::from_bytes(bytes).map_err(|e| FrameError::Encode {
        msg_type: 0,
        reason: format!("size hint {e:?}"),
    })
}

/// Header fields that dispatch needs.
pub fn kind(frame: &Frame) -> (u16, u8) {
    let h: Header = frame.header();
    (h.ext_type_without_channel_msg(), h.msg_type())
}

/// Encodes a standard message (common, mining, template distribution, extensions) using the
/// message's own type, extension type and channel bit.
pub fn encode_standard<T>(msg: T) -> Result<Frame, FrameError>
where
    T: Serialize + GetSize + stratum_core::parsers_sv2::IsSv2Message,
{
    let (t, ext, ch) = (msg.message_type(), msg.extension_type(), msg.channel_bit());
    encode(msg, t, ext, ch)
}

/// A `SetupConnection` frame for `protocol` (SV2 version 2) from a hashpool role.
pub fn setup_connection(
    protocol: stratum_core::common_messages_sv2::Protocol,
    flags: u32,
) -> Result<Frame, FrameError> {
    use stratum_core::binary_sv2::Str0255Owned;
    use stratum_core::common_messages_sv2::{SetupConnectionOwned, MESSAGE_TYPE_SETUP_CONNECTION};
    let s = |v: &str| {
        Str0255Owned::try_from(v.to_string()).map_err(|_| FrameError::Encode {
            msg_type: MESSAGE_TYPE_SETUP_CONNECTION,
            reason: format!("string too long: {v}"),
        })
    };
    let msg = SetupConnectionOwned {
        protocol,
        min_version: 2,
        max_version: 2,
        flags,
        endpoint_host: s("")?,
        endpoint_port: 0,
        vendor: s("hashpool")?,
        hardware_version: s("")?,
        firmware: s(env!("CARGO_PKG_VERSION"))?,
        device_id: s("")?,
    };
    encode(msg, MESSAGE_TYPE_SETUP_CONNECTION, 0, false)
}

/// Parses a standard message and the TLVs of `negotiated` extensions appended to it. Strict:
/// bytes after the message must be exactly those TLVs (5-byte header each), anything else makes
/// the frame malformed.
pub fn parse_with_tlvs<'a>(
    header: Header,
    payload: &'a mut [u8],
    negotiated: &[u16],
) -> Result<
    (
        stratum_core::parsers_sv2::AnyMessage<'a>,
        Vec<stratum_core::parsers_sv2::Tlv>,
    ),
    FrameError,
> {
    let msg_type = header.msg_type();
    let payload_len = payload.len();
    let (msg, tlvs) =
        stratum_core::parsers_sv2::parse_message_frame_with_tlvs(header, payload, negotiated)
            .map_err(|e| FrameError::Malformed {
                msg_type,
                reason: format!("{e:?}"),
            })?;
    let tlvs = tlvs.unwrap_or_default();
    let tlv_bytes: usize = tlvs.iter().map(|t| 5 + t.value.len()).sum();
    let body = msg.get_size();
    if body + tlv_bytes != payload_len {
        return Err(FrameError::Malformed {
            msg_type,
            reason: format!(
                "{payload_len} payload bytes, but the message takes {body} and its TLVs {tlv_bytes}"
            ),
        });
    }
    Ok((msg, tlvs))
}
