//! DIMSE command sets (PS3.7 chapter 9 and annex E): reading a request's
//! fields and encoding a response that echoes its message id. Command sets
//! are always Implicit VR Little Endian.

use dicom_core::{DataElement, PrimitiveValue, VR};
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
    pub fn parse(bytes: &[u8]) -> Result<Command, CommandError> {
        let obj =
            InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
                .map_err(|e| CommandError(e.to_string()))?;
        let uint = |tag| -> Result<Option<u16>, CommandError> {
            match obj.get(tag) {
                Some(e) => e
                    .to_int::<u16>()
                    .map(Some)
                    .map_err(|e| CommandError(format!("{tag}: {e}"))),
                None => Ok(None),
            }
        };
        let text = |tag| {
            obj.get(tag)
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim_end_matches(['\0', ' ']).to_owned())
        };
        Ok(Command {
            field: uint(tags::COMMAND_FIELD)?
                .ok_or_else(|| CommandError("no CommandField".into()))?,
            message_id: uint(tags::MESSAGE_ID)?.unwrap_or(0),
            affected_sop_class_uid: text(tags::AFFECTED_SOP_CLASS_UID),
            affected_sop_instance_uid: text(tags::AFFECTED_SOP_INSTANCE_UID),
            has_data_set: uint(tags::COMMAND_DATA_SET_TYPE)?.unwrap_or(NO_DATA_SET) != NO_DATA_SET,
        })
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
    }
}
