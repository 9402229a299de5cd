//! Ephemeral viewer sessions: a short-lived link with no user and no study.

use crate::error::{Error, Result};
use crate::study::wire_enum;

crate::ids::prefixed_id!(
    /// An ephemeral viewer session (`eph_…`).
    EphemeralSessionId, "eph_", "sessionId"
);

/// Seconds an ephemeral session link stays valid (the Avara documentation's 30 s).
pub const EPHEMERAL_TTL_SECS: i64 = 30;
pub const MAX_OPTIONS_BYTES: usize = 3072;
pub const MAX_RETRIEVAL_ID_CHARS: usize = 256;

wire_enum!(
    /// Viewport grid, `RxC`.
    ViewerLayout, "layout" {
        L1x1 = "1x1", L1x2 = "1x2", L1x3 = "1x3", L1x4 = "1x4",
        L2x1 = "2x1", L2x2 = "2x2", L2x3 = "2x3", L2x4 = "2x4",
        L3x1 = "3x1", L3x2 = "3x2", L3x3 = "3x3", L3x4 = "3x4",
        L4x1 = "4x1", L4x2 = "4x2", L4x3 = "4x3", L4x4 = "4x4",
    }
);

impl ViewerLayout {
    pub fn viewports(self) -> usize {
        let s = self.as_str().as_bytes();
        usize::from(s[0] - b'0') * usize::from(s[2] - b'0')
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HangingProtocol {
    pub layout: ViewerLayout,
    pub viewport_assignments: Vec<Option<String>>,
}

impl HangingProtocol {
    /// One assignment per viewport: a `2x2` layout takes exactly four entries.
    pub fn validate(&self) -> Result<()> {
        let expected = self.layout.viewports();
        if self.viewport_assignments.len() != expected {
            return Err(Error::invalid(
                "hangingProtocol",
                format!(
                    "hangingProtocol.viewportAssignments must have one entry per viewport: layout {} has {expected}, got {}",
                    self.layout.as_str(),
                    self.viewport_assignments.len()
                ),
            ));
        }
        Ok(())
    }
}

pub fn validate_retrieval_id(id: &str) -> Result<()> {
    crate::validate::required_text("retrievalId", id, MAX_RETRIEVAL_ID_CHARS)
}

/// `options` is echoed to webhook receivers; it must stay small.
pub fn validate_options(options: &serde_json::Value) -> Result<()> {
    let size = serde_json::to_string(options)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if size > MAX_OPTIONS_BYTES {
        return Err(Error::invalid(
            "options",
            format!("options must be at most {MAX_OPTIONS_BYTES} bytes as JSON, got {size}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_viewports() {
        assert_eq!(ViewerLayout::ALL.len(), 16);
        assert_eq!(ViewerLayout::parse("2x3").unwrap().viewports(), 6);
        let hp = |layout: &str, n: usize| HangingProtocol {
            layout: ViewerLayout::parse(layout).unwrap(),
            viewport_assignments: vec![None; n],
        };
        assert!(hp("2x2", 4).validate().is_ok());
        assert!(hp("2x2", 3).validate().is_err());
        assert!(hp("1x1", 0).validate().is_err());
    }

    #[test]
    fn options_size() {
        assert!(validate_options(&serde_json::json!({"a": "x".repeat(3000)})).is_ok());
        assert!(validate_options(&serde_json::json!({"a": "x".repeat(3100)})).is_err());
    }
}
