//! What went wrong with an instance, as the DIMSE status a C-STORE answers
//! (PS3.4 B.2.3) and the FailureReason / WarningReason STOW-RS reports
//! (PS3.18 I.2.2): one table serves both.

/// Stored.
pub const SUCCESS: u16 = 0x0000;
/// Warning, "elements discarded": Lightbox already holds a different copy of
/// this SOP Instance UID; the first copy is kept and this one was not stored.
pub const DIFFERENT_COPY_KEPT: u16 = 0xB006;
/// Refused: out of resources (the instance is larger than allowed, or storage failed).
pub const OUT_OF_RESOURCES: u16 = 0xA700;
/// Refused: the data set does not match the SOP class (or the command's UIDs).
pub const DATA_SET_MISMATCH: u16 = 0xA900;
/// Refused: the data set cannot be understood (unreadable, missing or bad UIDs).
pub const CANNOT_UNDERSTAND: u16 = 0xC000;
/// Refused: a processing failure on our side.
pub const PROCESSING_FAILURE: u16 = 0x0110;
/// The operation is not one this receiver performs.
pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;
/// STOW: the transfer syntax is not supported.
pub const TRANSFER_SYNTAX_NOT_SUPPORTED: u16 = 0xC122;

/// True for the statuses that count as stored (success or warning).
pub fn is_stored(status: u16) -> bool {
    status == SUCCESS || (0xB000..=0xBFFF).contains(&status)
}
