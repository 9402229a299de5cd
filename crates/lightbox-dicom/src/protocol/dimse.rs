//! P-DATA values in, DIMSE messages out. A command set may arrive split over
//! several PDVs (and PDUs); it is buffered per presentation context until its
//! last fragment. Data set fragments are passed on as they arrive, so the
//! receiver can stream them to disk: an instance is never held whole here.

use super::command::{Command, CommandError};
use super::pdu::Value;
use bytes::Bytes;
use dicom_ul::pdu::PDataValueType;

/// The largest command set accepted; real ones are a few hundred bytes.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub enum Event {
    /// A complete command set. When it announces a data set, `Data` events
    /// for the same presentation context follow.
    Command { context_id: u8, command: Command },
    /// A fragment of the data set that follows the last command.
    Data {
        context_id: u8,
        bytes: Bytes,
        last: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("a command set larger than {MAX_COMMAND_BYTES} bytes")]
    CommandTooLarge,
    #[error("data on presentation context {0} without a command announcing it")]
    UnexpectedData(u8),
    #[error("a command on presentation context {got} while the data set of context {expected} is incomplete")]
    Interleaved { expected: u8, got: u8 },
}

/// Reassembles the messages of one association.
#[derive(Debug, Default)]
pub struct Assembler {
    command: Vec<u8>,
    command_context: Option<u8>,
    /// The presentation context whose data set is being received.
    data_context: Option<u8>,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// Feeds one PDV; returns the event it completes, if any.
    pub fn push(&mut self, pdv: Value) -> Result<Option<Event>, ProtocolError> {
        let context_id = pdv.context_id;
        match pdv.kind {
            PDataValueType::Command => {
                if let Some(expected) = self.data_context {
                    return Err(ProtocolError::Interleaved {
                        expected,
                        got: context_id,
                    });
                }
                if self.command_context.is_some_and(|c| c != context_id) {
                    return Err(ProtocolError::Interleaved {
                        expected: self.command_context.unwrap_or_default(),
                        got: context_id,
                    });
                }
                if self.command.len() + pdv.data.len() > MAX_COMMAND_BYTES {
                    return Err(ProtocolError::CommandTooLarge);
                }
                self.command_context = Some(context_id);
                self.command.extend_from_slice(&pdv.data);
                if !pdv.last {
                    return Ok(None);
                }
                let bytes = std::mem::take(&mut self.command);
                self.command_context = None;
                let command = Command::parse(&bytes)?;
                if command.has_data_set {
                    self.data_context = Some(context_id);
                }
                Ok(Some(Event::Command {
                    context_id,
                    command,
                }))
            }
            PDataValueType::Data => {
                if self.data_context != Some(context_id) {
                    return Err(ProtocolError::UnexpectedData(context_id));
                }
                if pdv.last {
                    self.data_context = None;
                }
                Ok(Some(Event::Data {
                    context_id,
                    bytes: pdv.data,
                    last: pdv.last,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::command::{field, NO_DATA_SET};
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_object::InMemDicomObject;
    use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

    fn c_store(message_id: u16) -> Vec<u8> {
        let obj = InMemDicomObject::command_from_element_iter([
            DataElement::new(
                tags::COMMAND_FIELD,
                VR::US,
                PrimitiveValue::from(field::C_STORE_RQ),
            ),
            DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(message_id)),
            DataElement::new(
                tags::COMMAND_DATA_SET_TYPE,
                VR::US,
                PrimitiveValue::from(0u16),
            ),
        ]);
        let mut bytes = Vec::new();
        obj.write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .unwrap();
        bytes
    }

    fn pdv(context: u8, kind: PDataValueType, last: bool, data: &[u8]) -> Value {
        Value {
            context_id: context,
            kind,
            last,
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn a_command_in_three_pdvs_is_one_message() {
        let bytes = c_store(9);
        let third = bytes.len() / 3;
        let mut assembler = Assembler::new();
        assert!(assembler
            .push(pdv(3, PDataValueType::Command, false, &bytes[..third]))
            .unwrap()
            .is_none());
        assert!(assembler
            .push(pdv(
                3,
                PDataValueType::Command,
                false,
                &bytes[third..2 * third]
            ))
            .unwrap()
            .is_none());
        match assembler
            .push(pdv(3, PDataValueType::Command, true, &bytes[2 * third..]))
            .unwrap()
        {
            Some(Event::Command {
                context_id: 3,
                command,
            }) => {
                assert_eq!(command.message_id, 9);
                assert!(command.has_data_set);
            }
            other => panic!("expected a command, got {other:?}"),
        }
        let data = assembler
            .push(pdv(3, PDataValueType::Data, false, b"ab"))
            .unwrap();
        assert!(matches!(data, Some(Event::Data { last: false, .. })));
        let data = assembler
            .push(pdv(3, PDataValueType::Data, true, b"cd"))
            .unwrap();
        assert!(matches!(data, Some(Event::Data { last: true, .. })));
        // The next message starts cleanly.
        assert!(assembler
            .push(pdv(3, PDataValueType::Data, true, b"x"))
            .is_err());
    }

    #[test]
    fn data_without_a_command_is_refused() {
        let mut assembler = Assembler::new();
        assert!(matches!(
            assembler.push(pdv(1, PDataValueType::Data, true, b"x")),
            Err(ProtocolError::UnexpectedData(1))
        ));
    }

    #[test]
    fn a_command_set_cannot_grow_without_bound() {
        let mut assembler = Assembler::new();
        let chunk = vec![0u8; 16 * 1024];
        let mut result = Ok(None);
        for _ in 0..5 {
            result = assembler.push(pdv(1, PDataValueType::Command, false, &chunk));
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(ProtocolError::CommandTooLarge)));
    }

    #[test]
    fn a_command_without_data_leaves_no_data_expected() {
        let obj = InMemDicomObject::command_from_element_iter([
            DataElement::new(
                tags::COMMAND_FIELD,
                VR::US,
                PrimitiveValue::from(field::C_ECHO_RQ),
            ),
            DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(1u16)),
            DataElement::new(
                tags::COMMAND_DATA_SET_TYPE,
                VR::US,
                PrimitiveValue::from(NO_DATA_SET),
            ),
        ]);
        let mut bytes = Vec::new();
        obj.write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .unwrap();
        let mut assembler = Assembler::new();
        assembler
            .push(pdv(1, PDataValueType::Command, true, &bytes))
            .unwrap();
        assert!(assembler
            .push(pdv(1, PDataValueType::Data, true, b"x"))
            .is_err());
    }
}
