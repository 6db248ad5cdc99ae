//! SPDY/3.1 as spoken by Kubernetes' port-forward (moby/spdystream on the client side): the frame codec and a
//! server-side session that multiplexes client-opened streams over one connection. Flow control is not enforced in
//! either direction because spdystream ignores WINDOW_UPDATE and never sends one.

mod dictionary;
pub mod frame;
pub mod session;

pub use frame::{Decoder, Encoder, Frame, FrameError, Headers};
