//! Keyset pagination. A cursor is the sort key of the last item served,
//! wrapped in URL-safe base64 so clients treat it as opaque. The store then
//! continues with `id < cursor` on an index that starts with the organization,
//! so a deep page costs the same as the first.

use crate::error::{Error, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub const DEFAULT_LIMIT: u32 = 25;
pub const MAX_LIMIT: u32 = 100;

/// Encodes the position after `last_id` in a listing of `kind` (e.g. `studies`).
pub fn encode_cursor(kind: &str, last_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{last_id}"))
}

/// Decodes a cursor made by [`encode_cursor`] for the same listing and returns
/// the id it stands after; `parse_id` validates that id. Anything else is a 400.
pub fn decode_cursor<T>(
    kind: &str,
    cursor: &str,
    parse_id: impl Fn(&str) -> Result<T>,
) -> Result<T> {
    let invalid = || {
        Error::invalid(
            "cursor",
            "cursor is not valid for this listing; pass back the `cursor` of a previous page",
        )
    };
    // Standard base64 is accepted too, in case a client re-encoded the cursor.
    let trimmed = cursor
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    let bytes = URL_SAFE_NO_PAD
        .decode(trimmed.as_bytes())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let id = text
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(invalid)?;
    parse_id(id).map_err(|_| invalid())
}

/// Parses a page size. The avara SDK types `limit` as a float, so `10.0`
/// arrives on the wire; a whole number in 1..=100 is accepted in either form.
pub fn parse_limit(raw: Option<&str>) -> Result<u32> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    let invalid = || {
        Error::invalid(
            "limit",
            format!("limit must be a whole number from 1 to {MAX_LIMIT}, got `{raw}`"),
        )
    };
    let value: f64 = raw.trim().parse().map_err(|_| invalid())?;
    if !value.is_finite() || value.fract() != 0.0 || !(1.0..=MAX_LIMIT as f64).contains(&value) {
        return Err(invalid());
    }
    Ok(value as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::StudyId;

    #[test]
    fn cursor_round_trip_and_rejection() {
        let id = StudyId::generate();
        let c = encode_cursor("studies", id.as_str());
        assert_eq!(decode_cursor("studies", &c, StudyId::parse).unwrap(), id);
        assert!(decode_cursor("users", &c, StudyId::parse).is_err());
        for garbage in ["", "!!!", "Zm9v", "c3R1ZGllczpzdHVfMQ"] {
            assert!(
                decode_cursor("studies", garbage, StudyId::parse).is_err(),
                "{garbage}"
            );
        }
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None).unwrap(), 25);
        assert_eq!(parse_limit(Some("10")).unwrap(), 10);
        assert_eq!(parse_limit(Some("10.0")).unwrap(), 10);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "10.5", "-1", "ten", "", "NaN", "inf", "1e9"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
