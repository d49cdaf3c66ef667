//! The network's organisation: its institutions (county hospitals, township clinics, internet
//! hospitals) and their departments, and the profile a clinician account carries in it (title,
//! specialty, whether they take referrals now). How a room relates to an account
//! ([`RoomRelation`]) is what the permission table in `role` decides visibility with.

use serde::{Deserialize, Serialize};

use super::role::Role;
use super::text::{NameError, display_name};

/// Longest institution or department name, in characters.
pub const MAX_ORG_NAME_CHARS: usize = 100;
/// Longest professional title or specialty, in characters.
pub const MAX_PROFILE_CHARS: usize = 60;

/// The institution every account and room made before institutions existed belongs to
/// (migration 0006); an administrator renames it.
pub const DEFAULT_INSTITUTION: &str = "ins_0000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstitutionKind {
    /// A county or city hospital: where specialists usually are.
    Hospital,
    /// A township clinic or health centre: primary care, where referrals usually start.
    TownshipClinic,
    /// An internet hospital: online follow-up visits and prescriptions.
    InternetHospital,
}

impl InstitutionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InstitutionKind::Hospital => "hospital",
            InstitutionKind::TownshipClinic => "township_clinic",
            InstitutionKind::InternetHospital => "internet_hospital",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "hospital" => InstitutionKind::Hospital,
            "township_clinic" => InstitutionKind::TownshipClinic,
            "internet_hospital" => InstitutionKind::InternetHospital,
            _ => return None,
        })
    }
}

/// An institution's or department's name: shown to everyone, so held to the rules of names.
pub fn org_name(raw: &str) -> Result<String, NameError> {
    display_name(raw, MAX_ORG_NAME_CHARS)
}

/// A title or a specialty: empty is allowed (not every account has one).
pub fn profile_text(raw: &str) -> Result<String, NameError> {
    if raw.trim().is_empty() {
        return Ok(String::new());
    }
    display_name(raw, MAX_PROFILE_CHARS)
}

/// How a consultation stands to one account: whether it is held by the account's institution,
/// and the account's place on its care team, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomRelation {
    pub same_institution: bool,
    pub care_team: Option<Role>,
}

/// What clinicians are shown as in a room: their name and title, and their institution, all
/// from the account. `max_chars` bounds the whole (a very long institution name is shortened
/// first, since the name and title matter more).
pub fn clinician_label(name: &str, title: &str, institution: &str, max_chars: usize) -> String {
    let head = if title.is_empty() {
        name.to_owned()
    } else {
        format!("{name} {title}")
    };
    let head_len = head.chars().count();
    if head_len >= max_chars {
        return head.chars().take(max_chars).collect();
    }
    // " · " and at least a few characters of the institution, or nothing.
    let room = max_chars - head_len;
    if institution.is_empty() || room < 6 {
        return head;
    }
    let inst_len = institution.chars().count();
    let shown: String = if inst_len + 3 <= room {
        institution.to_owned()
    } else {
        let mut s: String = institution.chars().take(room - 4).collect();
        s.push('…');
        s
    };
    format!("{head} · {shown}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in [
            InstitutionKind::Hospital,
            InstitutionKind::TownshipClinic,
            InstitutionKind::InternetHospital,
        ] {
            assert_eq!(InstitutionKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(InstitutionKind::parse("clinic"), None);
    }

    #[test]
    fn names_and_profiles_follow_the_rules_of_names() {
        assert_eq!(org_name("  县人民医院 ").unwrap(), "县人民医院");
        assert!(org_name("").is_err());
        assert!(org_name("A\u{202e}B").is_err());
        assert!(org_name(&"x".repeat(MAX_ORG_NAME_CHARS + 1)).is_err());
        assert_eq!(profile_text("   ").unwrap(), "");
        assert_eq!(profile_text("主任医师").unwrap(), "主任医师");
        assert!(profile_text(&"x".repeat(MAX_PROFILE_CHARS + 1)).is_err());
    }

    #[test]
    fn labels_keep_name_and_title_and_shorten_the_institution() {
        assert_eq!(
            clinician_label("王伟", "主任医师", "县人民医院", 64),
            "王伟 主任医师 · 县人民医院"
        );
        assert_eq!(clinician_label("Li", "", "", 64), "Li");
        let long = clinician_label("Wang", "Chief", &"Hospital".repeat(20), 40);
        assert_eq!(long.chars().count(), 40, "{long}");
        assert!(long.starts_with("Wang Chief · ") && long.ends_with('…'));
        assert_eq!(
            clinician_label(&"n".repeat(70), "t", "i", 64)
                .chars()
                .count(),
            64
        );
    }
}
