//! PDUs out of the bytes an association has read. A P-DATA PDU (nearly
//! every byte an association carries) is split into its values in place:
//! each value's data shares the buffer the socket filled, where dicom-ul's
//! reader copies a PDU out of its buffer and then each value out of the PDU.
//! Every other PDU is left to dicom-ul's reader.

use bytes::{Buf, Bytes, BytesMut};
use dicom_ul::pdu::{PDataValueType, Pdu};

const P_DATA_TF: u8 = 0x04;
/// Type, a reserved byte, and the length of what follows.
pub const HEADER_LEN: usize = 6;

/// One presentation data value (PS3.8 9.3.5.1).
#[derive(Debug, Clone)]
pub struct Value {
    pub context_id: u8,
    pub kind: PDataValueType,
    /// The last fragment of its command or data set.
    pub last: bool,
    pub data: Bytes,
}

#[derive(Debug)]
pub enum Received {
    Data(Vec<Value>),
    Other(Pdu),
}

#[derive(Debug, thiserror::Error)]
pub enum PduError {
    #[error("a PDU of {length} bytes, over the {max} allowed")]
    TooLarge { length: u32, max: u32 },
    #[error("a P-DATA PDU whose value lengths do not add up")]
    Malformed,
    #[error("an unreadable PDU: {0}")]
    Unreadable(String),
}

/// Takes the first PDU out of `buffer` once all of it is there; `Ok(Err(n))`
/// when it is not: at least `n` more bytes are needed.
pub fn take(buffer: &mut BytesMut, max_pdu: u32) -> Result<Result<Received, usize>, PduError> {
    if buffer.len() < HEADER_LEN {
        return Ok(Err(HEADER_LEN - buffer.len()));
    }
    let length = u32::from_be_bytes([buffer[2], buffer[3], buffer[4], buffer[5]]);
    if length > max_pdu {
        return Err(PduError::TooLarge {
            length,
            max: max_pdu,
        });
    }
    let total = HEADER_LEN + length as usize;
    if buffer.len() < total {
        return Ok(Err(total - buffer.len()));
    }
    if buffer[0] != P_DATA_TF {
        let pdu = dicom_ul::pdu::read_pdu(&buffer[..total], max_pdu, true)
            .map_err(|e| PduError::Unreadable(e.to_string()))?
            .ok_or(PduError::Malformed)?;
        buffer.advance(total);
        return Ok(Ok(Received::Other(pdu)));
    }
    let mut pdu = buffer.split_to(total).freeze();
    pdu.advance(HEADER_LEN);
    let mut values = Vec::new();
    while pdu.has_remaining() {
        // Item length (covering the two bytes below and the data), context, header.
        if pdu.remaining() < 6 {
            return Err(PduError::Malformed);
        }
        let item = pdu.get_u32() as usize;
        if item < 2 || pdu.remaining() < item {
            return Err(PduError::Malformed);
        }
        let context_id = pdu.get_u8();
        let header = pdu.get_u8();
        values.push(Value {
            context_id,
            kind: if header & 0x01 != 0 {
                PDataValueType::Command
            } else {
                PDataValueType::Data
            },
            last: header & 0x02 != 0,
            data: pdu.split_to(item - 2),
        });
    }
    Ok(Ok(Received::Data(values)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_ul::pdu::{write_pdu, PDataValue};

    fn wire(pdu: &Pdu) -> Vec<u8> {
        let mut bytes = Vec::new();
        write_pdu(&mut bytes, pdu).unwrap();
        bytes
    }

    fn p_data() -> Pdu {
        Pdu::PData {
            data: vec![
                PDataValue {
                    presentation_context_id: 3,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: vec![1, 2, 3],
                },
                PDataValue {
                    presentation_context_id: 3,
                    value_type: PDataValueType::Data,
                    is_last: false,
                    data: (0..200u8).collect(),
                },
            ],
        }
    }

    #[test]
    fn a_p_data_pdu_is_split_into_the_values_dicom_ul_wrote() {
        let mut buffer = BytesMut::from(&wire(&p_data())[..]);
        buffer.extend_from_slice(&[0x04, 0]); // the start of the next PDU
        let Ok(Received::Data(values)) = take(&mut buffer, 16_384).unwrap() else {
            panic!("expected P-DATA");
        };
        assert_eq!(values.len(), 2);
        assert_eq!(values[0].context_id, 3);
        assert_eq!(values[0].kind, PDataValueType::Command);
        assert!(values[0].last);
        assert_eq!(&values[0].data[..], &[1, 2, 3]);
        assert_eq!(values[1].kind, PDataValueType::Data);
        assert!(!values[1].last);
        assert_eq!(values[1].data.to_vec(), (0..200u8).collect::<Vec<_>>());
        assert_eq!(&buffer[..], &[0x04, 0], "the next PDU's bytes stay");
    }

    #[test]
    fn until_the_whole_pdu_is_there_it_asks_for_the_rest() {
        let bytes = wire(&p_data());
        for cut in 0..bytes.len() {
            let mut buffer = BytesMut::from(&bytes[..cut]);
            let wanted = take(&mut buffer, 16_384).unwrap().unwrap_err();
            assert!(wanted >= 1 && cut + wanted <= bytes.len(), "cut at {cut}");
            assert_eq!(buffer.len(), cut, "nothing taken");
        }
    }

    #[test]
    fn other_pdus_are_read_by_dicom_ul() {
        let mut buffer = BytesMut::from(&wire(&Pdu::ReleaseRQ)[..]);
        assert!(matches!(
            take(&mut buffer, 16_384).unwrap(),
            Ok(Received::Other(Pdu::ReleaseRQ))
        ));
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_pdu_over_the_maximum_is_refused_from_its_header() {
        let mut buffer = BytesMut::from(&[0x04, 0, 0, 1, 0, 0][..]);
        assert!(matches!(
            take(&mut buffer, 16_384),
            Err(PduError::TooLarge { length: 65_536, .. })
        ));
    }

    #[test]
    fn value_lengths_that_do_not_fit_the_pdu_are_refused() {
        // One item claiming 10 bytes in a PDU that holds 6 bytes of items.
        let mut buffer = BytesMut::from(&[0x04, 0, 0, 0, 0, 6, 0, 0, 0, 10, 1, 0][..]);
        assert!(matches!(
            take(&mut buffer, 16_384),
            Err(PduError::Malformed)
        ));
        // An item length under two bytes.
        let mut buffer = BytesMut::from(&[0x04, 0, 0, 0, 0, 6, 0, 0, 0, 1, 1, 0][..]);
        assert!(matches!(
            take(&mut buffer, 16_384),
            Err(PduError::Malformed)
        ));
    }
}
