//! Users of an organization.

use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::study::wire_enum;
use crate::time::Timestamp;
use crate::validate;

wire_enum!(
    /// A user's level. `owner` exists only through `lightbox admin`.
    UserLevel, "level" { Owner = "owner", Admin = "admin", Member = "member" }
);
wire_enum!(
    /// Where a user was invited from.
    InvitedSource, "invitedSource" { Dashboard = "dashboard", Api = "api" }
);

/// The 61 clinic roles of the Avara API, spelled exactly as on the wire.
pub const CLINIC_ROLES: &[&str] = &[
    "Doctor",
    "Physician",
    "Surgeon",
    "Radiologist",
    "Cardiologist",
    "Neurologist",
    "Urologist",
    "Gynecologist",
    "Endocrinologist",
    "Oncologist",
    "Radiation Oncologist",
    "Hematologist",
    "Gastroenterologist",
    "Pulmonologist",
    "Nephrologist",
    "Rheumatologist",
    "Dermatologist",
    "Ophthalmologist",
    "Otolaryngologist",
    "Pediatrician",
    "Obstetrician",
    "Psychiatrist",
    "Anesthesiologist",
    "Emergency Medicine Physician",
    "Family Medicine Physician",
    "Internal Medicine Physician",
    "Pathologist",
    "Nuclear Medicine Physician",
    "Pain Management Specialist",
    "Infectious Disease Specialist",
    "Immunologist",
    "Physician Assistant",
    "Nurse Practitioner",
    "Certified Registered Nurse Anesthetist",
    "Psychologist",
    "Medical Assistant",
    "Scribe",
    "Registered Nurse",
    "Nurse Manager",
    "Patient Care Coordinator",
    "Imaging Technologist",
    "Laboratory Technician",
    "Medical Laboratory Scientist",
    "Pathologists' Assistant",
    "Phlebotomist",
    "Pharmacist",
    "Pharmacy Technician",
    "Physical Therapist",
    "Occupational Therapist",
    "Speech-Language Pathologist",
    "Respiratory Therapist",
    "Nutritionist",
    "Front Desk Operator",
    "Revenue Cycle Manager",
    "Administrative Director",
    "Administrative Assistant",
    "Legal Administrator",
    "IT Administrator",
    "IT Support",
    "Software Engineer",
    "Other",
];

pub fn clinic_role(field: &str, role: &str) -> Result<()> {
    if CLINIC_ROLES.contains(&role) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("`{role}` is not a valid clinic role"),
        ))
    }
}

/// A user as referenced from other resources (assignee, creator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub id: UserId,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub middle_name: Option<String>,
    pub suffix1: Option<String>,
    pub suffix2: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub reference: UserRef,
    pub phone_number: Option<String>,
    pub clinic_role: String,
    pub level: UserLevel,
    pub can_manage_studies: bool,
    pub has_dashboard_access: bool,
    pub invited_source: InvitedSource,
    pub is_active: bool,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub middle_name: Option<String>,
    pub suffix1: Option<String>,
    pub suffix2: Option<String>,
    pub phone_number: Option<String>,
    pub clinic_role: String,
    pub level: UserLevel,
    pub can_manage_studies: bool,
    pub has_dashboard_access: bool,
    pub invited_source: InvitedSource,
}

pub const MAX_NAME_CHARS: usize = 200;

impl NewUser {
    pub fn validate(&self) -> Result<()> {
        validate::email("email", &self.email)?;
        validate::required_text("firstName", &self.first_name, MAX_NAME_CHARS)?;
        validate::required_text("lastName", &self.last_name, MAX_NAME_CHARS)?;
        for (field, value) in [
            ("middleName", &self.middle_name),
            ("suffix1", &self.suffix1),
            ("suffix2", &self.suffix2),
        ] {
            if let Some(value) = value {
                validate::bounded_text(field, value, MAX_NAME_CHARS)?;
            }
        }
        if let Some(phone) = &self.phone_number {
            phone_number("phoneNumber", phone)?;
        }
        clinic_role("clinicRole", &self.clinic_role)
    }
}

/// 10 to 15 digits, nothing else.
pub fn phone_number(field: &str, phone: &str) -> Result<()> {
    if (10..=15).contains(&phone.len()) && phone.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("`{phone}` is not a valid phone number (10 to 15 digits)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clinic_roles_are_the_61_wire_values() {
        assert_eq!(CLINIC_ROLES.len(), 61);
        assert!(clinic_role("r", "Pathologists' Assistant").is_ok());
        assert!(clinic_role("r", "radiologist").is_err());
    }

    #[test]
    fn phone_numbers() {
        assert!(phone_number("p", "5551234567").is_ok());
        assert!(phone_number("p", "123456789012345").is_ok());
        for bad in [
            "555123456",
            "1234567890123456",
            "555-123-4567",
            "+15551234567",
        ] {
            assert!(phone_number("p", bad).is_err(), "{bad}");
        }
    }
}

/// A partial update of a user (or of a pending invitation, which edits the
/// invited user). `None` leaves a field alone; for nullable fields
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub middle_name: Option<Option<String>>,
    pub suffix1: Option<Option<String>>,
    pub suffix2: Option<Option<String>>,
    pub phone_number: Option<Option<String>>,
    pub clinic_role: Option<String>,
    pub level: Option<UserLevel>,
    pub can_manage_studies: Option<bool>,
    pub has_dashboard_access: Option<bool>,
}

impl UserPatch {
    pub fn validate(&self) -> Result<()> {
        if let Some(first) = &self.first_name {
            validate::required_text("firstName", first, MAX_NAME_CHARS)?;
        }
        if let Some(last) = &self.last_name {
            validate::required_text("lastName", last, MAX_NAME_CHARS)?;
        }
        for (field, value) in [
            ("middleName", &self.middle_name),
            ("suffix1", &self.suffix1),
            ("suffix2", &self.suffix2),
        ] {
            if let Some(Some(value)) = value {
                validate::bounded_text(field, value, MAX_NAME_CHARS)?;
            }
        }
        if let Some(Some(phone)) = &self.phone_number {
            phone_number("phoneNumber", phone)?;
        }
        if let Some(role) = &self.clinic_role {
            clinic_role("clinicRole", role)?;
        }
        if self.level == Some(UserLevel::Owner) {
            return Err(Error::invalid(
                "level",
                "level `owner` cannot be given through the API; use admin or member",
            ));
        }
        Ok(())
    }

    /// The user as it would be after this patch; used to check rules that span fields.
    pub fn apply(&self, user: &User) -> User {
        let mut u = user.clone();
        let r = &mut u.reference;
        if let Some(v) = &self.first_name {
            r.first_name = v.clone();
        }
        if let Some(v) = &self.last_name {
            r.last_name = v.clone();
        }
        if let Some(v) = &self.middle_name {
            r.middle_name = v.clone();
        }
        if let Some(v) = &self.suffix1 {
            r.suffix1 = v.clone();
        }
        if let Some(v) = &self.suffix2 {
            r.suffix2 = v.clone();
        }
        if let Some(v) = &self.phone_number {
            u.phone_number = v.clone();
        }
        if let Some(v) = &self.clinic_role {
            u.clinic_role = v.clone();
        }
        if let Some(v) = self.level {
            u.level = v;
        }
        if let Some(v) = self.can_manage_studies {
            u.can_manage_studies = v;
        }
        if let Some(v) = self.has_dashboard_access {
            u.has_dashboard_access = v;
        }
        u
    }

    pub fn is_empty(&self) -> bool {
        self.first_name.is_none()
            && self.last_name.is_none()
            && self.middle_name.is_none()
            && self.suffix1.is_none()
            && self.suffix2.is_none()
            && self.phone_number.is_none()
            && self.clinic_role.is_none()
            && self.level.is_none()
            && self.can_manage_studies.is_none()
            && self.has_dashboard_access.is_none()
    }
}

/// Rules on a whole user record: "dashboard access is required for admin users",
/// and the owner's level is fixed.
pub fn check_user_rules(before: Option<&User>, after: &User) -> Result<()> {
    if let Some(before) = before {
        if before.level == UserLevel::Owner && after.level != UserLevel::Owner {
            return Err(Error::Unprocessable(
                "the owner's level cannot be changed through the API".into(),
            ));
        }
    }
    if after.level == UserLevel::Admin && !after.has_dashboard_access {
        return Err(Error::invalid(
            "hasDashboardAccess",
            "admin users must have dashboard access (hasDashboardAccess: true)",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Exact match, ignoring case.
    pub email: Option<String>,
    /// Case-insensitive substring.
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub level: Option<UserLevel>,
    pub invited_source: Option<InvitedSource>,
}
