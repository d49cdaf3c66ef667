//! The consultation PDFs as files (src/summary/pdf.rs), read back by a PDF reader (hayro's
//! interpreter and renderer): the typeface is embedded as a subset far smaller than the built-in
//! font, with a ToUnicode map, so the Chinese and English text can be extracted; the clinical
//! layout carries the institution, the bilingual title, the reference, who signed what and when,
//! the pharmacist's review, and page footers "第 n 页 / 共 m 页 · Page n of m"; a long summary
//! splits across pages without losing a line, a huge one stops at the page ceiling with a
//! notice; every page renders with ink on it; times are in the configured zone with its offset;
//! a character outside the font prints as □.

use crate::common::pdf;

use huizhen::domain::document::DocumentKind;
use huizhen::domain::ids::{
    ChatMessageId, DocumentId, InstitutionId, InviteId, ParticipantId, RecordId, RoomId, UserId,
};
use huizhen::domain::record::{RecordKind, RecordStatus};
use huizhen::domain::role::{Role, Visibility};
use huizhen::domain::time_zone::DisplayZone;
use huizhen::records::RecordView;
use huizhen::storage::{
    ChatRecord, DocumentRecord, ParticipantRecord, RecordEvent, RecordRow, RoomRecord, RoomStatus,
    Signature,
};
use huizhen::summary::outcome::{OutcomeRecord, PatientOutcome};
use huizhen::summary::pdf::{MAX_SUMMARY_PAGES, render, render_outcome};
use huizhen::summary::{DocumentSummary, Summary, TeamMember};
use serde_json::json;

/// 2026-12-03T09:30:00Z: 17:30 in Shanghai.
const OPENED: i64 = 1_796_290_200;

fn shanghai() -> DisplayZone {
    DisplayZone::configured("Asia/Shanghai").unwrap()
}

fn room() -> RoomRecord {
    RoomRecord {
        id: RoomId::generate(),
        title: "胸痛会诊 Chest pain consultation".into(),
        patient_ref: Some("MRN-0042".into()),
        created_by: UserId::generate(),
        institution_id: InstitutionId::generate(),
        created_at: OPENED,
        ended_at: Some(OPENED + 45 * 60),
        status: RoomStatus::Ended,
        waiting_room: true,
        slot: None,
    }
}

fn record(kind: RecordKind, status: RecordStatus, body: serde_json::Value) -> RecordRow {
    RecordRow {
        id: RecordId::generate(),
        room_id: RoomId::generate(),
        kind,
        supersedes: None,
        status,
        body,
        body_sha256: "ab".repeat(32),
        author: "p1".into(),
        author_name: "王医生".into(),
        author_role: "doctor".into(),
        created_at_ms: OPENED * 1000 + 600_000,
        signature: (status != RecordStatus::Draft).then(|| Signature {
            by: UserId::generate(),
            name: "赵教授 Prof. Zhao".into(),
            title: "主任医师".into(),
            institution: "省人民医院".into(),
            at_ms: OPENED * 1000 + 1_200_000,
        }),
        subject: None,
    }
}

fn summary(chat: usize, chat_text: &str) -> Summary {
    let room = room();
    let seat = InviteId::generate();
    let report = record(
        RecordKind::DiagnosisReport,
        RecordStatus::Issued,
        json!({"findings": "ST 段抬高 ST elevation V1-V4", "impression": "急性前壁心肌梗死",
               "recommendation": "Transfer for primary PCI"}),
    );
    let rx = record(
        RecordKind::Prescription,
        RecordStatus::Reviewed,
        json!({"items": [{"medication": "阿司匹林肠溶片", "dose": "100 mg", "route": "口服",
                          "frequency": "每日一次", "duration": "30 天"}]}),
    );
    let reviewed = RecordEvent {
        record_id: rx.id.clone(),
        from_status: RecordStatus::Issued,
        to_status: RecordStatus::Reviewed,
        actor: "u-pharm".into(),
        actor_role: "pharmacist".into(),
        note: "剂量合适".into(),
        at_ms: OPENED * 1000 + 3_600_000,
    };
    Summary {
        institution: "县人民医院 County Hospital".into(),
        care_team: vec![TeamMember {
            account: UserId::parse("u_Zhao000000000001").unwrap(),
            name: "赵教授 Prof. Zhao".into(),
            role: Role::Specialist,
            title: "主任医师".into(),
            institution: "省人民医院".into(),
            seat: seat.clone(),
        }],
        participants: vec![
            ParticipantRecord {
                id: ParticipantId::generate(),
                invite_id: seat,
                role: Role::Specialist,
                name: "赵教授 Prof. Zhao".into(),
                joined_at: OPENED + 60,
                left_at: Some(OPENED + 40 * 60),
            },
            ParticipantRecord {
                id: ParticipantId::generate(),
                invite_id: InviteId::generate(),
                role: Role::Patient,
                name: "李女士".into(),
                joined_at: OPENED + 30,
                left_at: None,
            },
        ],
        documents: vec![DocumentSummary {
            document: DocumentRecord {
                id: DocumentId::generate(),
                room_id: room.id.clone(),
                sha256: "cd".repeat(32),
                size: 123_456,
                kind: DocumentKind::Pdf,
                name: "心电图 ECG.pdf".into(),
                visibility: Visibility::Everyone,
                shared_by: ParticipantId::generate(),
                shared_by_role: Role::Doctor,
                created_at_ms: OPENED * 1000 + 120_000,
            },
            annotations: Vec::new(),
        }],
        chat: (0..chat)
            .map(|i| ChatRecord {
                id: ChatMessageId::generate(),
                participant_id: ParticipantId::generate(),
                name: "李女士".into(),
                role: Role::Patient,
                text: format!("消息{i}号 {chat_text}"),
                at_ms: OPENED * 1000 + i as i64,
                huddle: false,
            })
            .collect(),
        records: vec![
            RecordView {
                record: report,
                events: Vec::new(),
                superseded_by: None,
                subject_name: None,
            },
            RecordView {
                record: rx,
                events: vec![reviewed],
                superseded_by: None,
                subject_name: None,
            },
        ],
        generated_at_ms: OPENED * 1000 + 7_200_000,
        room,
    }
}

/// The footer's page numbers on each page: (n, m).
fn footers(pages: &[String]) -> Vec<(usize, usize)> {
    pages
        .iter()
        .map(|p| {
            let line = p
                .lines()
                .find(|l| l.contains(" · Page "))
                .unwrap_or_else(|| panic!("no footer on a page: {p}"));
            let rest = line.split("Page ").nth(1).unwrap();
            let (n, m) = rest.split_once(" of ").unwrap();
            assert!(
                line.starts_with(&format!("第 {n} 页 / 共 {m} 页 · ")),
                "{line}"
            );
            (n.parse().unwrap(), m.trim().parse().unwrap())
        })
        .collect()
}

#[test]
fn the_summary_is_a_clinical_document_in_an_embedded_subset_font() {
    let s = summary(3, "胸口疼 chest hurts");
    let bytes = render(&s, &shanghai()).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));

    // One or two faces (regular, bold), each embedded as a subset with a ToUnicode map.
    let fonts = pdf::fonts(&bytes);
    assert!(!fonts.is_empty() && fonts.len() <= 2, "{fonts:?}");
    let built_in = huizhen::summary::font::regular_bytes().len();
    for f in &fonts {
        assert!(f.base_font.contains("NotoSansCJK"), "{f:?}");
        // The six-letter tag of a subset: `ABCDEF+NotoSansCJKsc-Regular`.
        assert_eq!(f.base_font.find('+'), Some(6), "{f:?}");
        let (key, len) = f.file.clone().expect("the font is embedded");
        assert!(key == "FontFile3" || key == "FontFile2", "{key}");
        assert!(len > 1000 && len < built_in / 20, "{len} of {built_in}");
        assert!(f.to_unicode, "{f:?}");
    }
    assert!(!pdf::has_bytes(&bytes, b"STSong-Light"));
    // The whole PDF is far smaller than the font built into the server.
    assert!(bytes.len() < built_in / 10, "{}", bytes.len());

    let text = pdf::text(&bytes);
    for shown in [
        "县人民医院 County Hospital",
        "远程会诊记录  Teleconsultation record",
        "胸痛会诊 Chest pain consultation",
        &format!("会诊编号 Reference: {}", s.room.id),
        "患者标识 Patient reference: MRN-0042",
        "会诊日期 Date: 2026-12-03",
        "时间均为 Times are in Asia/Shanghai (UTC+08:00)",
        "开始 Opened: 2026-12-03 17:30 +08:00",
        "结束 Ended: 2026-12-03 18:15 +08:00 (45 分钟 min)",
        // Participants: the clinician with title and institution, and the account (its id, as
        // the audit trail names it; never the sign-in name).
        "赵教授 Prof. Zhao  会诊专家 Specialist  主任医师, 省人民医院",
        "账号 Account: u_Zhao000000000001",
        "赵教授 Prof. Zhao, 主任医师, 省人民医院 (会诊专家 Specialist): 2026-12-03 17:31 +08:00 – 2026-12-03 18:10",
        "李女士 (患者 Patient): 2026-12-03 17:30 +08:00 – —",
        "心电图 ECG.pdf",
        // Records: who signed, when; the pharmacist's review and its step.
        "诊断报告 Diagnosis report · 已签发 Issued",
        "签名 Signed by: 赵教授 Prof. Zhao, 主任医师, 省人民医院 · 2026-12-03 17:50 +08:00",
        "诊断意见 Impression: 急性前壁心肌梗死",
        "处方 Prescription · 药师已审核 Reviewed by the pharmacist",
        "药师审核 Pharmacist review: 药师已审核 Reviewed by the pharmacist",
        "1. 阿司匹林肠溶片: 100 mg, 口服, 每日一次, 30 天",
        "2026-12-03 18:30:00 +08:00 issued → reviewed · pharmacist u-pharm: 剂量合适",
        "消息2号 胸口疼 chest hurts",
        "生成时间 Generated: 2026-12-03 19:30 +08:00",
        "第 1 页 / 共 1 页 · Page 1 of 1",
    ] {
        assert!(text.contains(shown), "{shown:?} missing from:\n{text}");
    }
    assert!(
        !text.contains('\u{FFFD}'),
        "a glyph without Unicode:\n{text}"
    );

    // Rendered by a reader: every page has ink.
    for ink in pdf::ink_per_page(&bytes, 0.5, None) {
        assert!(ink > 0.005, "{ink}");
    }
}

#[test]
fn times_follow_the_configured_zone() {
    let s = summary(1, "hello");
    let utc = pdf::text(&render(&s, &DisplayZone::configured("UTC").unwrap()).unwrap());
    assert!(
        utc.contains("开始 Opened: 2026-12-03 09:30 +00:00"),
        "{utc}"
    );
    assert!(!utc.contains("+08:00"), "{utc}");
    let ny = pdf::text(&render(&s, &DisplayZone::configured("America/New_York").unwrap()).unwrap());
    assert!(ny.contains("开始 Opened: 2026-12-03 04:30 -05:00"), "{ny}");
}

#[test]
fn a_long_summary_splits_across_pages_without_losing_a_line() {
    let n = 600;
    let s = summary(n, "follow-up question about the medication 关于用药的问题");
    let bytes = render(&s, &shanghai()).unwrap();
    let pages = pdf::page_texts(&bytes);
    assert!(pages.len() >= 10, "{}", pages.len());
    let numbers = footers(&pages);
    let m = pages.len();
    assert_eq!(numbers, (1..=m).map(|n| (n, m)).collect::<Vec<_>>());
    // Every message once, in order, none cut at a page boundary.
    let text = pages.join("\n");
    let mut at = 0;
    for i in 0..n {
        let needle = format!("消息{i}号 follow-up question");
        let found = text[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("message {i} missing or out of order"));
        at += found + needle.len();
        assert!(
            !text[at..].contains(&format!("消息{i}号 ")),
            "message {i} twice"
        );
    }
    // The pages after the first repeat the institution and reference at the top.
    assert!(
        pages[1]
            .starts_with("县人民医院 County Hospital · 远程会诊记录 Teleconsultation record · ")
    );
    for ink in pdf::ink_per_page(&bytes, 0.25, None) {
        assert!(ink > 0.005, "{ink}");
    }
}

#[test]
fn a_huge_summary_stops_at_the_page_ceiling_and_says_so() {
    // The most chat a summary holds (summary::MAX_CHAT), each message long.
    let s = summary(10_000, &"长消息 long message ".repeat(20));
    let bytes = render(&s, &shanghai()).unwrap();
    let pages = pdf::page_texts(&bytes);
    assert_eq!(pages.len(), MAX_SUMMARY_PAGES);
    let numbers = footers(&pages);
    assert_eq!(
        numbers.last(),
        Some(&(MAX_SUMMARY_PAGES, MAX_SUMMARY_PAGES))
    );
    let last = pages.last().unwrap();
    assert!(
        last.contains("This document reached its page limit"),
        "{last}"
    );
    assert!(last.contains("The FHIR export holds all of it."), "{last}");
    // The records, before the chat, are all there.
    assert!(
        pages[0].contains("诊断报告 Diagnosis report")
            || pages[1].contains("诊断报告 Diagnosis report")
    );
    for ink in pdf::ink_per_page(&bytes, 0.2, Some(2)) {
        assert!(ink > 0.005, "{ink}");
    }
}

#[test]
fn characters_outside_the_font_print_as_a_white_square() {
    let s = summary(1, "表情 😀 罕用字 \u{4DB5} end");
    let text = pdf::text(&render(&s, &shanghai()).unwrap());
    assert!(text.contains("消息0号 表情 □ 罕用字 □ end"), "{text}");
}

#[test]
fn the_patients_outcome_uses_the_same_font_larger_and_bilingual() {
    let s = summary(0, "");
    let rx = s.records[1].clone();
    let o = PatientOutcome {
        institution: "县人民医院 County Hospital".into(),
        records: vec![OutcomeRecord {
            issued_at_ms: rx.record.signature.as_ref().unwrap().at_ms,
            view: rx,
            replaced_by: None,
        }],
        available_until: OPENED + 30 * 86_400,
        generated_at_ms: OPENED * 1000 + 7_200_000,
        room: s.room.clone(),
    };
    let bytes = render_outcome(&o, &shanghai()).unwrap();
    let fonts = pdf::fonts(&bytes);
    assert!(!fonts.is_empty());
    assert!(
        fonts.iter().all(|f| f.file.is_some() && f.to_unicode),
        "{fonts:?}"
    );
    let text = pdf::text(&bytes);
    for shown in [
        "会诊结果 Consultation outcome",
        "医疗机构 Institution: 县人民医院 County Hospital",
        "会诊日期 Date: 2026-12-03 18:15 +08:00",
        "签名医生 Clinicians who signed",
        "处方 Prescription  (药师已审核 Reviewed by the pharmacist)",
        "签发时间 Issued: 2026-12-03 17:50 +08:00",
        "1. 阿司匹林肠溶片: 100 mg, 口服, 每日一次, 30 天",
        "第 1 页 / 共 1 页 · Page 1 of 1",
    ] {
        assert!(text.contains(shown), "{shown:?} missing from:\n{text}");
    }
    for ink in pdf::ink_per_page(&bytes, 0.5, None) {
        assert!(ink > 0.005, "{ink}");
    }
}
