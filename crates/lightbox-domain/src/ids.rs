//! Identifiers. Product-facing ids follow the Avara convention `prefix_` + 32
//! lowercase hex digits; we fill the hex with a UUIDv7, so ids sort by creation
//! time and the id alone is a stable keyset-pagination key.

use crate::error::Error;
use uuid::Uuid;

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self::from_uuid(::uuid::Uuid::now_v7())
            }

            pub fn from_uuid(uuid: ::uuid::Uuid) -> Self {
                Self(format!("{}{}", $prefix, uuid.simple()))
            }

            /// Accepts `prefix` + 32 hex digits (either case; stored lowercase).
            pub fn parse(s: &str) -> Result<Self, $crate::Error> {
                Self::parse_for($what, s)
            }

            /// Like [`Self::parse`], naming `field` of the request in the error.
            pub fn parse_for(field: &str, s: &str) -> Result<Self, $crate::Error> {
                match s.strip_prefix($prefix) {
                    Some(hex) if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                        Ok(Self(format!("{}{}", $prefix, hex.to_ascii_lowercase())))
                    }
                    _ => Err($crate::Error::invalid(
                        field,
                        format!("{field}: `{s}` is not a valid {} (expected `{}` followed by 32 hex digits)", $what, $prefix),
                    )),
                }
            }

            /// Wraps a value read back from our own store.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub(crate) use prefixed_id;

prefixed_id!(
    /// A Viewer study (`stu_…`).
    StudyId, "stu_", "studyId"
);
prefixed_id!(
    /// A user of an organization (`usr_…`).
    UserId, "usr_", "userId"
);
prefixed_id!(
    /// An OAuth client of the Images API (`cli_…`).
    OAuthClientId, "cli_", "client_id"
);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            pub fn generate() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn parse(s: &str) -> Result<Self, $crate::Error> {
                Uuid::try_parse(s)
                    .map(Self)
                    .map_err(|_| Error::invalid($what, format!("`{s}` is not a valid UUID")))
            }

            pub fn uuid(&self) -> Uuid {
                self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An organization (tenant). Avara calls it the clinic and shows it as a plain UUID.
    OrgId, "orgId"
);
uuid_id!(
    /// An API key. Avara's `APIKeyReference.apiKeyId` is a plain UUIDv4.
    ApiKeyId, "apiKeyId"
);
uuid_id!(
    /// A pre-encounter image. The candidhealth SDK puts ids in paths unescaped,
    /// so they are plain (URL-safe) UUIDs.
    ImageId, "id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_ids_round_trip_and_reject_garbage() {
        let id = StudyId::generate();
        assert!(id.as_str().starts_with("stu_"));
        assert_eq!(id.as_str().len(), 36);
        assert_eq!(StudyId::parse(id.as_str()).unwrap(), id);
        let upper = format!("stu_{}", id.as_str()[4..].to_ascii_uppercase());
        assert_eq!(StudyId::parse(&upper).unwrap(), id);
        for bad in [
            "",
            "stu_",
            "cancel",
            "usr_0123456789abcdef0123456789abcdef",
            "stu_0123456789abcdef0123456789abcdeg",
        ] {
            assert!(StudyId::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn generated_ids_sort_by_creation() {
        let a = StudyId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = StudyId::generate();
        assert!(a < b);
    }
}
