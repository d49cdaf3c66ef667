//! The consultation's PDFs, written with krilla in the embedded Noto Sans CJK SC
//! ([`super::font`], subsetted again to the glyphs used, with a ToUnicode map so the text can be
//! copied and searched), on A4 pages laid out by [`super::layout`]. Every time is printed in the
//! institution's zone ([`DisplayZone`], `display.time_zone`) with its offset.
//!
//! Two documents:
//! - the clinicians' summary ([`render`]): a clinical document with a header (institution,
//!   title in Chinese and English, the consultation's reference and date), then its times, the
//!   participants (clinicians with title and institution), the documents shared, the records
//!   (who signed them, when, the pharmacist's review, every step) and the chat; at most
//!   [`MAX_SUMMARY_PAGES`] pages, the rest (the chat comes last) named in a closing notice and
//!   in full in the FHIR export;
//! - the patient's outcome ([`render_outcome`]): only what was issued to them, larger type,
//!   headings in Chinese and English.
//!
//! Each page has a footer "第 n 页 / 共 m 页 · Page n of m" and the time it was generated; the
//! pages after the first repeat the institution and reference at the top.

use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;

use super::layout::{BOTTOM, Flow, Line, MARGIN_X, PAGE_H, PAGE_W, Style, TOP};
use super::outcome::{OutcomeRecord, PatientOutcome, status_words};
use super::{Summary, SummaryError};
use crate::domain::record::RecordKind;
use crate::domain::role::Role;
use crate::domain::time_zone::DisplayZone;

/// Pages of a clinicians' summary at most (about 10,000 lines).
pub const MAX_SUMMARY_PAGES: usize = 200;
/// Pages of a patient's outcome at most.
pub const MAX_OUTCOME_PAGES: usize = 60;

/// The clinicians' summary.
const BODY: Style = Style::new(9.5, 14.0);
const SMALL: Style = Style::new(8.0, 11.5).muted();
const SECTION: Style = Style::new(12.0, 22.0).bold();
const ITEM: Style = Style::new(10.0, 15.0).bold();
const TITLE: Style = Style::new(18.0, 26.0).bold();
const INSTITUTION: Style = Style::new(13.0, 19.0).bold();
/// The patient's outcome: larger type, for older eyes on paper.
const PATIENT: Style = Style::new(13.0, 19.0);
const PATIENT_HEADING: Style = Style::new(15.0, 24.0).bold();
const PATIENT_TITLE: Style = Style::new(20.0, 30.0).bold();

const INDENT: f32 = 14.0;

/// What every page carries besides its lines.
struct Chrome {
    /// The document's title in its metadata.
    title: String,
    /// At the top of every page after the first.
    running_header: String,
    /// At the foot of every page, left: when it was generated.
    generated: String,
}

fn role_words(role: Role) -> &'static str {
    match role {
        Role::Doctor => "主诊医生 Doctor",
        Role::Specialist => "会诊专家 Specialist",
        Role::Patient => "患者 Patient",
        Role::Observer => "旁听 Observer",
        Role::Guest => "参会 Guest",
    }
}

fn kind_words(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Note => "会诊记录 Consultation note",
        RecordKind::DiagnosisReport => "诊断报告 Diagnosis report",
        RecordKind::Prescription => "处方 Prescription",
    }
}

/// `name, title, institution`, leaving out what is empty.
fn joined(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

fn bytes_words(n: i64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KB", n as f64 / f64::from(1 << 10)),
        n => format!("{n} B"),
    }
}

/// The clinicians' summary as a PDF.
pub fn render(s: &Summary, zone: &DisplayZone) -> Result<Vec<u8>, SummaryError> {
    let room = &s.room;
    let at = |secs: i64| zone.date_time(secs.saturating_mul(1000));
    let mut f = Flow::default();

    // The header.
    if !s.institution.is_empty() {
        f.para(INSTITUTION, &s.institution);
    }
    f.para(TITLE, "远程会诊记录  Teleconsultation record");
    f.para(ITEM, &room.title);
    f.gap(4.0);
    f.para(BODY, &format!("会诊编号 Reference: {}", room.id));
    if let Some(p) = &room.patient_ref {
        f.para(BODY, &format!("患者标识 Patient reference: {p}"));
    }
    f.para(
        BODY,
        &format!("会诊日期 Date: {}", zone.date(room.created_at * 1000)),
    );
    f.para(
        SMALL,
        &format!("时间均为 Times are in {}", zone.describe(s.generated_at_ms)),
    );

    // Times.
    f.gap(8.0);
    f.heading(SECTION, "会诊时间 Consultation times", true);
    if let Some((start, minutes)) = room.slot {
        f.para(
            BODY,
            &format!("预约时间 Scheduled: {}, {minutes} 分钟 min", at(start)),
        );
    }
    f.para(BODY, &format!("开始 Opened: {}", at(room.created_at)));
    match room.ended_at {
        Some(end) => f.para(
            BODY,
            &format!(
                "结束 Ended: {} ({} 分钟 min)",
                at(end),
                (end - room.created_at).max(0) / 60
            ),
        ),
        None => f.para(BODY, "结束 Ended: 尚未结束 not ended"),
    }

    // Participants: the care team's clinicians with their accounts, then who came when.
    f.gap(8.0);
    f.heading(SECTION, "参与人员 Participants", true);
    for m in &s.care_team {
        f.para(
            BODY,
            &format!(
                "{}  {}  {}",
                m.name,
                role_words(m.role),
                joined(&[&m.title, &m.institution])
            ),
        );
        f.para(
            SMALL.indent(INDENT),
            &format!("账号 Account: {}", m.account),
        );
    }
    if !s.care_team.is_empty() && !s.participants.is_empty() {
        f.gap(4.0);
    }
    f.para(SMALL, "出席 Attendance");
    if s.participants.is_empty() {
        f.para(BODY.indent(INDENT), "无人加入 Nobody joined");
    }
    for p in &s.participants {
        let member = s.care_team.iter().find(|m| m.seat == p.invite_id);
        let who = match member {
            Some(m) => joined(&[&p.name, &m.title, &m.institution]),
            None => p.name.clone(),
        };
        f.para(
            BODY.indent(INDENT),
            &format!(
                "{who} ({}): {} – {}",
                role_words(p.role),
                at(p.joined_at),
                p.left_at.map(at).unwrap_or_else(|| "—".into())
            ),
        );
    }

    // Documents.
    f.gap(8.0);
    f.heading(SECTION, "共享文件 Documents shared", true);
    if s.documents.is_empty() {
        f.para(BODY, "无 None");
    }
    for d in &s.documents {
        let doc = &d.document;
        f.para(BODY, &doc.name);
        f.para(
            SMALL.indent(INDENT),
            &format!(
                "{} · {} · {} {} · {} {} · {} {} · {} 条标注 annotations",
                doc.kind.as_str(),
                bytes_words(doc.size),
                "可见 visible to",
                doc.visibility.as_str(),
                "共享者 shared by",
                doc.shared_by_role.as_str(),
                "时间 at",
                zone.date_time(doc.created_at_ms),
                d.annotations.len()
            ),
        );
        f.para(SMALL.indent(INDENT), &format!("SHA-256 {}", doc.sha256));
    }

    // Records.
    f.gap(8.0);
    f.heading(SECTION, "临床记录 Records", true);
    if s.records.is_empty() {
        f.para(BODY, "无 None");
    }
    for r in &s.records {
        let rec = &r.record;
        let words = status_words(rec.kind, rec.status, r.superseded_by.is_some());
        f.gap(4.0);
        f.heading(
            ITEM,
            &format!("{} · {} {}", kind_words(rec.kind), words.zh, words.en),
            false,
        );
        f.para(SMALL.indent(INDENT), &format!("编号 ID {}", rec.id));
        f.para(
            BODY.indent(INDENT),
            &format!(
                "作者 Author: {} ({}), {}",
                rec.author_name,
                rec.author_role,
                zone.date_time(rec.created_at_ms)
            ),
        );
        match &rec.signature {
            Some(sig) => f.para(
                BODY.indent(INDENT),
                &format!(
                    "签名 Signed by: {} · {}",
                    joined(&[&sig.name, &sig.title, &sig.institution]),
                    zone.date_time(sig.at_ms)
                ),
            ),
            None if rec.kind != RecordKind::Note => {
                f.para(BODY.indent(INDENT), "签名 Signed by: 未签名 not signed")
            }
            None => {}
        }
        if rec.kind == RecordKind::Prescription {
            let review = status_words(rec.kind, rec.status, false);
            f.para(
                BODY.indent(INDENT),
                &format!("药师审核 Pharmacist review: {} {}", review.zh, review.en),
            );
        }
        if let Some(old) = &rec.supersedes {
            f.para(BODY.indent(INDENT), &format!("更正 Corrects: {old}"));
        }
        if let Some(new) = &r.superseded_by {
            f.para(
                BODY.indent(INDENT),
                &format!("已更正为 Corrected by: {new}"),
            );
        }
        let b = &rec.body;
        let field = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
        match rec.kind {
            RecordKind::Note => f.para(BODY.indent(INDENT), &field("text")),
            RecordKind::DiagnosisReport => {
                for (label, key) in [
                    ("检查所见 Findings", "findings"),
                    ("诊断意见 Impression", "impression"),
                    ("建议 Recommendation", "recommendation"),
                    ("复诊日期 Follow-up date", "follow_up_date"),
                    ("复诊建议 Follow-up advice", "follow_up_advice"),
                ] {
                    let text = field(key);
                    if !text.trim().is_empty() {
                        f.para(BODY.indent(INDENT), &format!("{label}: {text}"));
                    }
                }
            }
            RecordKind::Prescription => {
                for (i, item) in b["items"].as_array().into_iter().flatten().enumerate() {
                    let (line, note) = prescription_item(i, item);
                    f.para(BODY.indent(INDENT), &line);
                    if let Some(note) = note {
                        f.para(BODY.indent(2.0 * INDENT), &note);
                    }
                }
            }
        }
        for e in &r.events {
            f.para(
                SMALL.indent(INDENT),
                &format!(
                    "{} {} → {} · {} {}{}",
                    zone.precise(e.at_ms),
                    e.from_status.as_str(),
                    e.to_status.as_str(),
                    e.actor_role,
                    e.actor,
                    if e.note.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", e.note)
                    }
                ),
            );
        }
        f.para(
            SMALL.indent(INDENT),
            &format!("内容 SHA-256 Body SHA-256 {}", rec.body_sha256),
        );
    }

    // The chat, last: what the page ceiling cuts first.
    f.gap(8.0);
    f.heading(SECTION, "聊天记录 Chat", true);
    if s.chat.is_empty() {
        f.para(BODY, "无 None");
    }
    for m in &s.chat {
        // What the clinicians wrote among themselves during a huddle says so.
        let private = if m.huddle {
            " (医生间讨论 Among clinicians)"
        } else {
            ""
        };
        f.para(
            BODY,
            &format!(
                "{} {}{private}: {}",
                zone.date_time(m.at_ms),
                m.name,
                m.text
            ),
        );
    }

    let chrome = Chrome {
        title: format!("远程会诊记录 Teleconsultation record {}", room.id),
        running_header: joined(&[
            &s.institution,
            "远程会诊记录 Teleconsultation record",
            room.id.as_str(),
        ])
        .replace(", ", " · "),
        generated: format!("生成时间 Generated: {}", zone.date_time(s.generated_at_ms)),
    };
    let pages = f.paginate(MAX_SUMMARY_PAGES, |left_out| {
        truncation_notice(
            left_out,
            "完整记录见 FHIR 导出。 The FHIR export holds all of it.",
        )
    });
    write(pages, &chrome)
}

/// The closing lines of a document cut at its page ceiling.
fn truncation_notice(left_out: usize, where_else: &str) -> Vec<Line> {
    let mut f = Flow::default();
    f.gap(8.0);
    f.para(
        ITEM,
        &format!(
            "本文件已达页数上限，其余 {left_out} 行未列出。 This document reached its page limit: {left_out} more lines are not shown."
        ),
    );
    f.para(BODY, where_else);
    f.lines
}

fn outcome_record(f: &mut Flow, r: &OutcomeRecord, zone: &DisplayZone) {
    let rec = &r.view.record;
    let words = r.words();
    let heading = match rec.kind {
        RecordKind::Prescription => "处方 Prescription",
        _ => "诊断报告 Diagnosis report",
    };
    f.gap(6.0);
    f.heading(
        PATIENT_HEADING,
        &format!("{heading}  ({} {})", words.zh, words.en),
        true,
    );
    let body = PATIENT.indent(INDENT);
    f.para(
        body,
        &format!("签发时间 Issued: {}", zone.date_time(r.issued_at_ms)),
    );
    if let Some(sig) = &rec.signature {
        f.para(
            body,
            &format!(
                "签名医生 Signed by: {}",
                joined(&[&sig.name, &sig.title, &sig.institution])
            ),
        );
    }
    let b = &rec.body;
    let field = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
    match rec.kind {
        RecordKind::Prescription => {
            for (i, item) in b["items"].as_array().into_iter().flatten().enumerate() {
                let (line, note) = prescription_item(i, item);
                f.para(body, &line);
                if let Some(note) = note {
                    f.para(PATIENT.indent(2.5 * INDENT), &note);
                }
            }
        }
        _ => {
            for (label, key) in [
                ("检查所见 Findings", "findings"),
                ("诊断意见 Impression", "impression"),
                ("建议 Recommendation", "recommendation"),
                ("复诊日期 Follow-up date", "follow_up_date"),
                ("复诊建议 Follow-up advice", "follow_up_advice"),
            ] {
                let text = field(key);
                if !text.trim().is_empty() {
                    f.para(body, &format!("{label}: {text}"));
                }
            }
        }
    }
}

/// The patient's outcome as a PDF: only what was issued to them.
pub fn render_outcome(o: &PatientOutcome, zone: &DisplayZone) -> Result<Vec<u8>, SummaryError> {
    let mut f = Flow::default();
    if !o.institution.is_empty() {
        f.para(PATIENT_HEADING, &o.institution);
    }
    f.para(PATIENT_TITLE, "会诊结果 Consultation outcome");
    f.para(PATIENT, &o.room.title);
    f.gap(6.0);
    if !o.institution.is_empty() {
        f.para(PATIENT, &format!("医疗机构 Institution: {}", o.institution));
    }
    f.para(
        PATIENT,
        &format!(
            "会诊日期 Date: {}",
            zone.date_time(o.room.ended_at.unwrap_or(o.room.created_at) * 1000)
        ),
    );
    let signers = o.signers();
    if !signers.is_empty() {
        f.gap(6.0);
        f.heading(PATIENT_HEADING, "签名医生 Clinicians who signed", true);
        for s in signers {
            f.para(
                PATIENT.indent(INDENT),
                &joined(&[&s.name, &s.title, &s.institution]),
            );
        }
    }
    if o.records.is_empty() {
        f.gap(10.0);
        f.para(
            PATIENT,
            "尚未签发报告或处方。 Nothing has been issued yet: no report or prescription.",
        );
    }
    for r in o.of_kind(RecordKind::DiagnosisReport) {
        outcome_record(&mut f, r, zone);
    }
    for r in o.of_kind(RecordKind::Prescription) {
        outcome_record(&mut f, r, zone);
    }
    let follow = o.follow_up();
    if !follow.is_empty() {
        f.gap(6.0);
        f.heading(PATIENT_HEADING, "复诊与建议 Follow-up", true);
        for x in follow {
            if let Some(date) = x.date {
                f.para(
                    PATIENT.indent(INDENT),
                    &format!("复诊日期 Follow-up date: {date}"),
                );
            }
            if let Some(advice) = x.advice {
                f.para(PATIENT.indent(INDENT), advice);
            }
            if !x.recommendation.trim().is_empty() {
                f.para(PATIENT.indent(INDENT), x.recommendation);
            }
        }
    }
    f.gap(12.0);
    f.para(
        SMALL,
        "本文件只包含已签发的报告和处方。 This document holds only issued reports and prescriptions.",
    );
    f.para(
        SMALL,
        &format!("时间均为 Times are in {}", zone.describe(o.generated_at_ms)),
    );
    let chrome = Chrome {
        title: "会诊结果 Consultation outcome".into(),
        running_header: joined(&[&o.institution, "会诊结果 Consultation outcome"])
            .replace(", ", " · "),
        generated: format!("生成时间 Generated: {}", zone.date_time(o.generated_at_ms)),
    };
    let pages = f.paginate(MAX_OUTCOME_PAGES, |left_out| {
        truncation_notice(
            left_out,
            "完整内容见会诊结果页面。 The outcome page shows all of it.",
        )
    });
    write(pages, &chrome)
}

fn black() -> rgb::Color {
    rgb::Color::new(0, 0, 0)
}

fn grey() -> rgb::Color {
    rgb::Color::new(96, 96, 96)
}

fn fill(color: rgb::Color) -> Fill {
    Fill {
        paint: color.into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}

/// One line of text with its baseline at `baseline`.
fn text(surface: &mut Surface<'_>, x: f32, baseline: f32, style: Style, content: &str) {
    let face = style.face();
    let shaped = face.shape(content);
    surface.set_fill(Some(fill(if style.muted { grey() } else { black() })));
    surface.draw_glyphs(
        Point::from_xy(x, baseline),
        &shaped.glyphs,
        face.pdf(),
        &shaped.text,
        style.size,
        false,
    );
}

/// A thin horizontal rule across the text width at `y`.
fn rule(surface: &mut Surface<'_>, y: f32) {
    let mut p = PathBuilder::new();
    p.move_to(MARGIN_X, y);
    p.line_to(PAGE_W - MARGIN_X, y);
    if let Some(path) = p.finish() {
        surface.set_fill(None);
        surface.set_stroke(Some(Stroke {
            paint: rgb::Color::new(160, 160, 160).into(),
            width: 0.5,
            ..Default::default()
        }));
        surface.draw_path(&path);
        surface.set_stroke(None);
    }
}

/// The pages as a PDF.
fn write(pages: Vec<Vec<Line>>, chrome: &Chrome) -> Result<Vec<u8>, SummaryError> {
    let mut doc = Document::new();
    doc.set_metadata(
        Metadata::new()
            .title(chrome.title.clone())
            .language("zh-CN".into())
            .creator("huizhen".into()),
    );
    let count = pages.len();
    let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| SummaryError::Pdf("page size".into()))?;
    for (i, lines) in pages.iter().enumerate() {
        let mut page = doc.start_page_with(settings.clone());
        let mut surface = page.surface();
        if i > 0 {
            text(
                &mut surface,
                MARGIN_X,
                TOP - 22.0,
                SMALL,
                &chrome.running_header,
            );
            rule(&mut surface, TOP - 16.0);
        }
        let mut y = TOP;
        for line in lines {
            let st = line.style;
            if line.rule_above {
                rule(&mut surface, y + 1.0);
            }
            if !line.text.is_empty() {
                // The line's box is `leading` high; the type sits in its middle (Noto's
                // ascender is 0.88 em, its descender 0.12).
                let baseline = y + (st.leading - st.size) / 2.0 + 0.88 * st.size;
                text(&mut surface, MARGIN_X + st.indent, baseline, st, &line.text);
            }
            y += st.leading;
        }
        let foot = PAGE_H - BOTTOM + 30.0;
        rule(&mut surface, PAGE_H - BOTTOM + 14.0);
        text(&mut surface, MARGIN_X, foot, SMALL, &chrome.generated);
        let number = format!("第 {n} 页 / 共 {count} 页 · Page {n} of {count}", n = i + 1);
        let w = SMALL.face().width(&number, SMALL.size);
        text(&mut surface, PAGE_W - MARGIN_X - w, foot, SMALL, &number);
        surface.finish();
        page.finish();
    }
    doc.finish()
        .map_err(|e| SummaryError::Pdf(format!("{e:?}")))
}

/// The `i`-th item of a prescription as one line ("1. medication: dose, route, frequency,
/// duration"), and its note's line when it has one: the same words in both documents.
fn prescription_item(i: usize, item: &serde_json::Value) -> (String, Option<String>) {
    let g = |k: &str| item[k].as_str().unwrap_or_default();
    let line = format!(
        "{}. {}: {}, {}, {}, {}",
        i + 1,
        g("medication"),
        g("dose"),
        g("route"),
        g("frequency"),
        g("duration")
    );
    let note = Some(g("note"))
        .filter(|n| !n.is_empty())
        .map(|n| format!("注意 Note: {n}"));
    (line, note)
}
