//! Validation rules shared by both APIs.

use crate::error::{Error, Result};
use std::collections::BTreeMap;

pub const MAX_UID_LEN: usize = 64;
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
pub const MAX_METADATA_PAIRS: usize = 50;
pub const MAX_METADATA_KEY_CHARS: usize = 100;
pub const MAX_METADATA_VALUE_CHARS: usize = 1000;
pub const MAX_EXPRESS_CUSTOMER_ID_LEN: usize = 68;

/// A DICOM UID per PS3.5 §9.1: numeric components separated by `.`, no
/// component empty or with a leading zero (a lone `0` is fine), at most 64 chars.
pub fn dicom_uid(field: &str, uid: &str) -> Result<()> {
    let fail = |why: &str| {
        Err(Error::invalid(
            field,
            format!("{field}: `{uid}` is not a valid DICOM UID: {why}"),
        ))
    };
    if uid.is_empty() {
        return fail("it is empty");
    }
    if uid.len() > MAX_UID_LEN {
        return fail("it is longer than 64 characters");
    }
    for component in uid.split('.') {
        if component.is_empty() {
            return fail("it has an empty component");
        }
        if !component.bytes().all(|b| b.is_ascii_digit()) {
            return fail("only digits and dots are allowed");
        }
        if component.len() > 1 && component.starts_with('0') {
            return fail("a component has a leading zero");
        }
    }
    Ok(())
}

/// A required, non-blank free-text field of bounded length.
pub fn required_text(field: &str, value: &str, max_chars: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(field, format!("{field} must not be empty")));
    }
    bounded_text(field, value, max_chars)
}

pub fn bounded_text(field: &str, value: &str, max_chars: usize) -> Result<()> {
    if value.chars().count() > max_chars {
        return Err(Error::invalid(
            field,
            format!("{field} must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}

/// Study metadata: at most 50 pairs, keys 1–100 chars, values up to 1000 chars.
pub fn metadata(metadata: &BTreeMap<String, String>) -> Result<()> {
    if metadata.len() > MAX_METADATA_PAIRS {
        return Err(Error::invalid(
            "metadata",
            format!(
                "metadata may hold at most {MAX_METADATA_PAIRS} pairs, got {}",
                metadata.len()
            ),
        ));
    }
    for (key, value) in metadata {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_METADATA_KEY_CHARS {
            return Err(Error::invalid(
                "metadata",
                format!("metadata keys must be 1 to {MAX_METADATA_KEY_CHARS} characters"),
            ));
        }
        if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(Error::invalid(
                "metadata",
                format!("metadata value of `{key}` is longer than {MAX_METADATA_VALUE_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

/// An Express customer handle: `cus_` followed by 1–64 ASCII letters or digits.
/// Lightbox does not host the Express product; it stores the handle as given.
pub fn express_customer_id(field: &str, id: &str) -> Result<()> {
    let ok = id.strip_prefix("cus_").is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("`{id}` is not a valid Express customer id (expected `cus_` and up to 64 letters or digits)"),
        ))
    }
}

/// A plausible e-mail address: one `@`, something on each side, a dot in the
/// domain, no spaces, at most 254 characters. Delivery is the only real check.
pub fn email(field: &str, email: &str) -> Result<()> {
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.contains('@') && domain.contains('.')
                && !domain.starts_with('.') && !domain.ends_with('.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("`{email}` is not a valid e-mail address"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_uids() {
        for good in [
            "1.2",
            "1.2.840.10008.5.1.4.1.1.2",
            "0.0",
            "2.25.329800735698586629295641978511506172918",
            "1",
        ] {
            assert!(dicom_uid("uid", good).is_ok(), "{good} rejected");
        }
        let long = format!("1.{}", "2".repeat(63));
        for bad in [
            "",
            ".",
            "1..2",
            "1.2.",
            ".1.2",
            "1.02",
            "1.2a",
            "1.2 ",
            "1,2",
            "١.٢",
            long.as_str(),
        ] {
            assert!(dicom_uid("uid", bad).is_err(), "{bad} accepted");
        }
        assert!(dicom_uid("uid", &format!("1.{}", "2".repeat(62))).is_ok());
    }

    #[test]
    fn metadata_bounds() {
        let mut m: BTreeMap<String, String> =
            (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(metadata(&m).is_ok());
        m.insert("one-more".into(), "v".into());
        assert!(metadata(&m).is_err());
        let long_key: BTreeMap<_, _> = [("k".repeat(101), String::new())].into();
        assert!(metadata(&long_key).is_err());
        let long_value: BTreeMap<_, _> = [("k".into(), "é".repeat(1001))].into();
        assert!(metadata(&long_value).is_err());
        let max_value: BTreeMap<_, _> = [("k".repeat(100), "é".repeat(1000))].into();
        assert!(metadata(&max_value).is_ok());
    }

    #[test]
    fn emails_and_customers() {
        assert!(email("email", "a.b@example.org").is_ok());
        for bad in [
            "", "a", "a@b", "@b.c", "a@b.c d", "a@@b.c", "a@.bc", "a@bc.",
        ] {
            assert!(email("email", bad).is_err(), "{bad} accepted");
        }
        assert!(express_customer_id("f", "cus_1").is_ok());
        assert!(express_customer_id("f", "cus_").is_err());
        assert!(express_customer_id("f", "cus_a-b").is_err());
    }
}
