//! Consent: what a patient agrees to for one consultation, in words they were shown, and what
//! each agreement allows. The server holds the wording (both languages) and its version, so a
//! record says exactly what was agreed to.

use serde::{Deserialize, Serialize};

/// What a patient may consent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentPurpose {
    /// The consultation may be recorded.
    Recording,
    /// An observer or trainee may be present.
    ObserverPresent,
    /// Documents may be shared with clinicians of another institution on the care team.
    ExternalSharing,
}

/// The words a patient is shown for a purpose, and their version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wording {
    pub version: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
}

impl ConsentPurpose {
    pub const ALL: [ConsentPurpose; 3] = [
        ConsentPurpose::Recording,
        ConsentPurpose::ObserverPresent,
        ConsentPurpose::ExternalSharing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentPurpose::Recording => "recording",
            ConsentPurpose::ObserverPresent => "observer_present",
            ConsentPurpose::ExternalSharing => "external_sharing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// What the patient reads before agreeing. A change of words is a new version.
    pub const fn wording(self) -> Wording {
        match self {
            ConsentPurpose::Recording => Wording {
                version: "2026-12-03",
                zh: "我同意本次会诊被录制，录像仅用于医疗记录，按医院规定保存。",
                en: "I agree that this consultation may be recorded, for the medical record \
                     only, kept as the hospital's rules require.",
            },
            // Since 2026-12-04 it also covers guests (an interpreter, a companion, a trainee
            // let speak), who are third parties like observers.
            ConsentPurpose::ObserverPresent => Wording {
                version: "2026-12-04",
                zh: "我同意旁听人员、实习医生或诊所邀请的其他人员（如翻译、陪同人员）在场参加本次会诊。",
                en: "I agree that people other than my care team (an observer, a trainee, or \
                     someone the clinic invited such as an interpreter or a companion) may be \
                     present at this consultation.",
            },
            ConsentPurpose::ExternalSharing => Wording {
                version: "2026-12-03",
                zh: "我同意将我的检查资料分享给参加会诊的其他医院的医生。",
                en: "I agree that my documents may be shared with the doctors of another \
                     hospital who take part in this consultation.",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_round_trip_and_each_has_words_in_both_languages() {
        for p in ConsentPurpose::ALL {
            assert_eq!(ConsentPurpose::parse(p.as_str()), Some(p));
            let w = p.wording();
            assert!(!w.zh.is_empty() && !w.en.is_empty() && !w.version.is_empty());
        }
        assert_eq!(ConsentPurpose::parse("everything"), None);
    }
}
