//! DIMSE over the upper layer, as bytes and messages only: no store, no
//! blob, no sockets. The receiver (`scp`) feeds P-DATA values in and acts on
//! the messages that come out.

pub mod command;
pub mod dimse;
pub mod pdu;
pub mod status;
