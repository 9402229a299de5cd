//! DIMSE command sets (PS3.7 chapter 9 and annex E): reading a request's
//! fields and encoding a response that echoes its message id. Command sets
//! are always Implicit VR Little Endian.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

/// CommandField values (PS3.7 E.1).
pub mod field {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_ECHO_RQ: u16 = 0x0030;
    /// A response's CommandField is its request's with this bit set.
    pub const RESPONSE: u16 = 0x8000;
}

/// CommandDataSetType meaning "no data set follows" (any other value: one does).
pub const NO_DATA_SET: u16 = 0x0101;

/// The fields of a request that the receiver acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub field: u16,
    pub message_id: u16,
    pub affected_sop_class_uid: Option<String>,
    pub affected_sop_instance_uid: Option<String>,
    pub has_data_set: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("unreadable DIMSE command set: {0}")]
pub struct CommandError(String);

impl Command {
    /// Reads the fields the receiver acts on. A command set is a flat list
    /// of group-0000 elements, each a tag, a 32-bit length and its value
    /// (PS3.7 6.3.1, 9.3), so it is read here rather than by dicom-rs: its
    /// reader runs until the bytes run out, and the end-of-input error it
    /// then builds captures a backtrace, a stack walk for every message.
    pub fn parse(bytes: &[u8]) -> Result<Command, CommandError> {
        let mut command = Command {
            field: 0,
            message_id: 0,
            affected_sop_class_uid: None,
            affected_sop_instance_uid: None,
            has_data_set: false,
        };
        let (mut field, mut data_set_type) = (None, None);
        let mut rest = bytes;
        while !rest.is_empty() {
            let (tag, value, tail) = element(rest)?;
            rest = tail;
            match tag {
                tags::COMMAND_FIELD => field = Some(us(tag, value)?),
                tags::MESSAGE_ID => command.message_id = us(tag, value)?,
                tags::COMMAND_DATA_SET_TYPE => data_set_type = Some(us(tag, value)?),
                tags::AFFECTED_SOP_CLASS_UID => command.affected_sop_class_uid = ui(value),
                tags::AFFECTED_SOP_INSTANCE_UID => command.affected_sop_instance_uid = ui(value),
                _ => {}
            }
        }
        command.field = field.ok_or_else(|| CommandError("no CommandField".into()))?;
        command.has_data_set = data_set_type.unwrap_or(NO_DATA_SET) != NO_DATA_SET;
        Ok(command)
    }

    /// The response to this request with `status`: its CommandField with the
    /// response bit, MessageIDBeingRespondedTo = this request's MessageID,
    /// and the affected SOP class and instance echoed back.
    pub fn response(&self, status: u16) -> Vec<u8> {
        let mut elements = vec![DataElement::new(
            tags::COMMAND_FIELD,
            VR::US,
            PrimitiveValue::from(self.field | field::RESPONSE),
        )];
        if let Some(class) = &self.affected_sop_class_uid {
            elements.push(DataElement::new(
                tags::AFFECTED_SOP_CLASS_UID,
                VR::UI,
                PrimitiveValue::from(uid_value(class)),
            ));
        }
        elements.push(DataElement::new(
            tags::MESSAGE_ID_BEING_RESPONDED_TO,
            VR::US,
            PrimitiveValue::from(self.message_id),
        ));
        elements.push(DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            PrimitiveValue::from(NO_DATA_SET),
        ));
        elements.push(DataElement::new(
            tags::STATUS,
            VR::US,
            PrimitiveValue::from(status),
        ));
        if let Some(instance) = &self.affected_sop_instance_uid {
            elements.push(DataElement::new(
                tags::AFFECTED_SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from(uid_value(instance)),
            ));
        }
        let obj = InMemDicomObject::command_from_element_iter(elements);
        let mut bytes = Vec::with_capacity(256);
        obj.write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .expect("a command set of known elements always encodes");
        bytes
    }
}

/// The first element of `bytes` (Implicit VR Little Endian): its tag, its
/// value and what follows it.
fn element(bytes: &[u8]) -> Result<(Tag, &[u8], &[u8]), CommandError> {
    let header = bytes
        .get(..8)
        .ok_or_else(|| CommandError("an element header is cut short".into()))?;
    let tag = Tag(
        u16::from_le_bytes([header[0], header[1]]),
        u16::from_le_bytes([header[2], header[3]]),
    );
    let length = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let rest = &bytes[8..];
    if length > rest.len() {
        return Err(CommandError(format!(
            "{tag} declares {length} bytes, {} remain",
            rest.len()
        )));
    }
    let (value, rest) = rest.split_at(length);
    Ok((tag, value, rest))
}

/// An unsigned short (US) value.
fn us(tag: Tag, value: &[u8]) -> Result<u16, CommandError> {
    match value {
        [low, high] => Ok(u16::from_le_bytes([*low, *high])),
        _ => Err(CommandError(format!(
            "{tag}: {} bytes where a US value has 2",
            value.len()
        ))),
    }
}

/// A UID (UI) value without its padding; `None` when it is not text.
fn ui(value: &[u8]) -> Option<String> {
    std::str::from_utf8(value)
        .ok()
        .map(|s| s.trim_end_matches(['\0', ' ']).to_owned())
}

/// UIDs are padded to an even length with NUL (PS3.5 9.1).
fn uid_value(uid: &str) -> String {
    let mut value = uid.to_owned();
    if value.len() % 2 == 1 {
        value.push('\0');
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(field: u16, id: u16, data: bool) -> Vec<u8> {
        let obj = InMemDicomObject::command_from_element_iter([
            DataElement::new(
                tags::AFFECTED_SOP_CLASS_UID,
                VR::UI,
                PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.2\0"),
            ),
            DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(field)),
            DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(id)),
            DataElement::new(
                tags::COMMAND_DATA_SET_TYPE,
                VR::US,
                PrimitiveValue::from(if data { 0x0000u16 } else { NO_DATA_SET }),
            ),
            DataElement::new(
                tags::AFFECTED_SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from("1.2.3.4"),
            ),
        ]);
        let mut bytes = Vec::new();
        obj.write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .unwrap();
        bytes
    }

    #[test]
    fn a_c_store_request_is_read() {
        let command = Command::parse(&request(field::C_STORE_RQ, 7, true)).unwrap();
        assert_eq!(command.field, field::C_STORE_RQ);
        assert_eq!(command.message_id, 7);
        assert_eq!(
            command.affected_sop_class_uid.as_deref(),
            Some("1.2.840.10008.5.1.4.1.1.2")
        );
        assert_eq!(
            command.affected_sop_instance_uid.as_deref(),
            Some("1.2.3.4")
        );
        assert!(command.has_data_set);
    }

    #[test]
    fn a_response_echoes_the_request_message_id() {
        let echo = Command::parse(&request(field::C_ECHO_RQ, 41, false)).unwrap();
        assert!(!echo.has_data_set);
        let response = Command::parse(&echo.response(0x0000)).unwrap();
        assert_eq!(response.field, 0x8030);
        let obj = InMemDicomObject::read_dataset_with_ts(
            &echo.response(0xB006)[..],
            &IMPLICIT_VR_LITTLE_ENDIAN.erased(),
        )
        .unwrap();
        assert_eq!(
            obj.get(tags::MESSAGE_ID_BEING_RESPONDED_TO)
                .unwrap()
                .to_int::<u16>()
                .unwrap(),
            41
        );
        assert_eq!(
            obj.get(tags::STATUS).unwrap().to_int::<u16>().unwrap(),
            0xB006
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Command::parse(b"\x00\x00\x00\x00\xff\xff\xff\x7f").is_err());
        assert!(Command::parse(b"").is_err());
        let request = request(field::C_STORE_RQ, 7, true);
        for cut in 1..request.len() {
            // Cut anywhere: refused, or read as the elements before the cut.
            let parsed = Command::parse(&request[..cut]);
            if let Ok(command) = parsed {
                assert_ne!(command, Command::parse(&request).unwrap(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn a_us_field_of_the_wrong_length_is_refused() {
        // (0000,0100) CommandField with a 4-byte value.
        let bytes = b"\x00\x00\x00\x01\x04\x00\x00\x00\x01\x00\x00\x00";
        let error = Command::parse(bytes).unwrap_err().to_string();
        assert!(error.contains("US value"), "{error}");
    }
}
