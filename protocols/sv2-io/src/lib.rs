//! Noise-encrypted SV2 frame transport over tokio, shared by every hashpool role.
//!
//! A connection is split into a [`FrameReader`] (owned by the task that dispatches incoming
//! frames) and a [`FrameSender`] (cloneable; a writer task owns the socket's write half), so
//! any task may send without locking the socket.

pub mod backoff;
pub mod failover;
pub mod frame;
pub mod keys;
pub mod link;
mod noise;
pub mod setup;

pub use backoff::Backoff;
pub use failover::{Endpoint, EndpointConfig, Failover, FailoverState};
pub use frame::{encode, Frame, FrameError};
pub use keys::{AuthorityKeypair, AuthorityPublicKey, KeyError};
pub use link::{
    accept, bind, connect, connect_with_setup, serve, FrameReader, FrameSender, LinkError,
};
pub use noise::NoiseError;
