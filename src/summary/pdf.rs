//! The consultation summary as a PDF, written directly (no PDF library): A4 pages of text in
//! the standard Chinese font `STSong-Light` with the `UniGB-UCS2-H` encoding, which PDF readers
//! provide without the font being embedded, so Chinese and Latin text both show and the file
//! stays small. Text is wrapped by an estimate of glyph widths (full width for CJK, half for
//! the rest). Two documents: the clinicians' summary ([`render`]) and the patient's outcome
//! ([`render_outcome`]: only what was issued to them, in larger type, headings in Chinese and
//! English).

use std::fmt::Write as _;

use super::Summary;
use super::outcome::{OutcomeRecord, PatientOutcome};
use crate::domain::record::RecordKind;

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;

/// Type size and line spacing, in points.
#[derive(Debug, Clone, Copy)]
struct Layout {
    size: f32,
    leading: f32,
}

impl Layout {
    fn lines_per_page(self) -> usize {
        ((PAGE_H - 2.0 * MARGIN) / self.leading) as usize
    }
}

/// The clinicians' summary.
const SUMMARY: Layout = Layout {
    size: 10.0,
    leading: 14.0,
};
/// The patient's outcome: larger type, for older eyes on paper.
const PATIENT: Layout = Layout {
    size: 13.0,
    leading: 19.0,
};

fn width(c: char) -> f32 {
    if c.is_ascii() { 0.5 } else { 1.0 }
}

/// Splits text into lines that fit the summary's page width.
fn wrap(text: &str, indent: usize) -> Vec<String> {
    wrap_in(SUMMARY, text, indent)
}

/// Splits text into lines that fit the page width at `layout`'s type size.
fn wrap_in(layout: Layout, text: &str, indent: usize) -> Vec<String> {
    let max = (PAGE_W - 2.0 * MARGIN) / layout.size - indent as f32 * 0.5;
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut w = 0.0;
        for c in para.chars().filter(|c| !c.is_control()) {
            if w + width(c) > max {
                out.push(std::mem::take(&mut line));
                w = 0.0;
            }
            line.push(c);
            w += width(c);
        }
        out.push(line);
    }
    out.into_iter()
        .map(|l| format!("{}{l}", " ".repeat(indent)))
        .collect()
}

/// UTF-16BE hex for the UCS-2 encoding; characters outside the BMP become '?'.
fn hex(line: &str) -> String {
    let mut s = String::with_capacity(line.len() * 4 + 2);
    s.push('<');
    for c in line.chars() {
        let u = if (c as u32) < 0x1_0000 {
            c as u32
        } else {
            '?' as u32
        };
        let _ = write!(s, "{u:04X}");
    }
    s.push('>');
    s
}

fn time(secs: i64) -> String {
    super::fhir_instant(secs * 1000)
}

fn lines(s: &Summary) -> Vec<String> {
    let mut l = Vec::new();
    let room = &s.room;
    l.extend(wrap(
        &format!("会诊记录 Consultation record: {}", room.title),
        0,
    ));
    l.push(String::new());
    l.push(format!("Consultation: {}", room.id));
    if let Some(p) = &room.patient_ref {
        l.extend(wrap(&format!("Patient reference: {p}"), 0));
    }
    l.push(format!("Opened: {}", time(room.created_at)));
    l.push(format!(
        "Ended: {}",
        room.ended_at
            .map(time)
            .unwrap_or_else(|| "not ended".into())
    ));
    l.push(String::new());
    l.push("Participants".into());
    for p in &s.participants {
        l.extend(wrap(
            &format!(
                "{} ({}), {} to {}",
                p.name,
                p.role.as_str(),
                time(p.joined_at),
                p.left_at.map(time).unwrap_or_else(|| "-".into())
            ),
            2,
        ));
    }
    l.push(String::new());
    l.push("Documents".into());
    for d in &s.documents {
        let doc = &d.document;
        l.extend(wrap(
            &format!(
                "{} [{}; {} bytes; {}; {} annotations] SHA-256 {}",
                doc.name,
                doc.kind.as_str(),
                doc.size,
                doc.visibility.as_str(),
                d.annotations.len(),
                doc.sha256
            ),
            2,
        ));
    }
    for r in &s.records {
        let rec = &r.record;
        l.push(String::new());
        let title = match rec.kind {
            RecordKind::Note => "Consultation note",
            RecordKind::DiagnosisReport => "Diagnosis report",
            RecordKind::Prescription => "Prescription",
        };
        l.extend(wrap(
            &format!(
                "{title} {} by {} ({}), status {}{}{}",
                rec.id,
                rec.author_name,
                rec.author_role,
                rec.status.as_str(),
                rec.supersedes
                    .as_ref()
                    .map(|o| format!(", corrects {o}"))
                    .unwrap_or_default(),
                r.superseded_by
                    .as_ref()
                    .map(|n| format!(", corrected by {n}"))
                    .unwrap_or_default(),
            ),
            0,
        ));
        let b = &rec.body;
        let field = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
        match rec.kind {
            RecordKind::Note => l.extend(wrap(&field("text"), 2)),
            RecordKind::DiagnosisReport => {
                l.extend(wrap(&format!("Findings: {}", field("findings")), 2));
                l.extend(wrap(&format!("Impression: {}", field("impression")), 2));
                l.extend(wrap(
                    &format!("Recommendation: {}", field("recommendation")),
                    2,
                ));
            }
            RecordKind::Prescription => {
                for item in b["items"].as_array().into_iter().flatten() {
                    let f = |k: &str| item[k].as_str().unwrap_or_default();
                    l.extend(wrap(
                        &format!(
                            "{}: {}, {}, {}, {}",
                            f("medication"),
                            f("dose"),
                            f("route"),
                            f("frequency"),
                            f("duration")
                        ),
                        2,
                    ));
                }
            }
        }
        l.extend(wrap(&format!("Body SHA-256 {}", rec.body_sha256), 2));
        for e in &r.events {
            l.extend(wrap(
                &format!(
                    "{} -> {} by {} ({}) at {}{}",
                    e.from_status.as_str(),
                    e.to_status.as_str(),
                    e.actor,
                    e.actor_role,
                    super::fhir_instant(e.at_ms),
                    if e.note.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", e.note)
                    }
                ),
                2,
            ));
        }
    }
    l.push(String::new());
    l.push("Chat".into());
    for m in &s.chat {
        l.extend(wrap(
            &format!("{} {}: {}", super::fhir_instant(m.at_ms), m.name, m.text),
            2,
        ));
    }
    l.push(String::new());
    l.push(format!(
        "Generated {}",
        super::fhir_instant(s.generated_at_ms)
    ));
    l
}

pub fn render(s: &Summary) -> Vec<u8> {
    document(SUMMARY, &lines(s))
}

/// A date and time for the patient: `2026-12-03 09:30 UTC`.
fn day_time(ms: i64) -> String {
    let i = super::fhir_instant(ms);
    format!("{} {} UTC", &i[..10], &i[11..16])
}

fn outcome_record(l: &mut Vec<String>, r: &OutcomeRecord) {
    let w = |t: &str, indent| wrap_in(PATIENT, t, indent);
    let rec = &r.view.record;
    let words = r.words();
    let heading = match rec.kind {
        RecordKind::Prescription => "处方 Prescription",
        _ => "诊断报告 Diagnosis report",
    };
    l.extend(w(&format!("{heading}  ({} {})", words.zh, words.en), 0));
    l.extend(w(
        &format!("签发时间 Issued: {}", day_time(r.issued_at_ms)),
        2,
    ));
    if let Some(sig) = &rec.signature {
        l.extend(w(
            &format!(
                "签名医生 Signed by: {}{}{}",
                sig.name,
                if sig.title.is_empty() {
                    String::new()
                } else {
                    format!(", {}", sig.title)
                },
                if sig.institution.is_empty() {
                    String::new()
                } else {
                    format!(", {}", sig.institution)
                }
            ),
            2,
        ));
    }
    let b = &rec.body;
    let field = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
    match rec.kind {
        RecordKind::Prescription => {
            for (i, item) in b["items"].as_array().into_iter().flatten().enumerate() {
                let f = |k: &str| item[k].as_str().unwrap_or_default();
                l.extend(w(
                    &format!(
                        "{}. {}: {}, {}, {}, {}",
                        i + 1,
                        f("medication"),
                        f("dose"),
                        f("route"),
                        f("frequency"),
                        f("duration")
                    ),
                    2,
                ));
                if !f("note").is_empty() {
                    l.extend(w(&format!("注意 Note: {}", f("note")), 5));
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
                    l.extend(w(&format!("{label}: {text}"), 2));
                }
            }
        }
    }
    l.push(String::new());
}

fn outcome_lines(o: &PatientOutcome) -> Vec<String> {
    let w = |t: &str, indent| wrap_in(PATIENT, t, indent);
    let mut l = Vec::new();
    l.push("会诊结果 Consultation outcome".into());
    l.extend(w(&o.room.title, 0));
    l.push(String::new());
    if !o.institution.is_empty() {
        l.extend(w(&format!("医疗机构 Institution: {}", o.institution), 0));
    }
    l.push(format!(
        "会诊日期 Date: {}",
        day_time(o.room.ended_at.unwrap_or(o.room.created_at) * 1000)
    ));
    let signers = o.signers();
    if !signers.is_empty() {
        l.push(String::new());
        l.push("签名医生 Clinicians who signed".into());
        for s in signers {
            let parts: Vec<&str> = [s.name.as_str(), s.title.as_str(), s.institution.as_str()]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect();
            l.extend(w(&parts.join(", "), 2));
        }
    }
    l.push(String::new());
    if o.records.is_empty() {
        l.extend(w(
            "尚未签发报告或处方。 Nothing has been issued yet: no report or prescription.",
            0,
        ));
        l.push(String::new());
    }
    for r in o.of_kind(RecordKind::DiagnosisReport) {
        outcome_record(&mut l, r);
    }
    for r in o.of_kind(RecordKind::Prescription) {
        outcome_record(&mut l, r);
    }
    let follow = o.follow_up();
    if !follow.is_empty() {
        l.push("复诊与建议 Follow-up".into());
        for f in follow {
            if let Some(date) = f.date {
                l.extend(w(&format!("复诊日期 Follow-up date: {date}"), 2));
            }
            if let Some(advice) = f.advice {
                l.extend(w(advice, 2));
            }
            if !f.recommendation.trim().is_empty() {
                l.extend(w(f.recommendation, 2));
            }
        }
        l.push(String::new());
    }
    l.extend(w(
        "本文件只包含已签发的报告和处方。 This document holds only issued reports and prescriptions.",
        0,
    ));
    l.push(format!(
        "生成时间 Generated: {}",
        day_time(o.generated_at_ms)
    ));
    l
}

/// The patient's outcome as a PDF: only what was issued to them.
pub fn render_outcome(o: &PatientOutcome) -> Vec<u8> {
    document(PATIENT, &outcome_lines(o))
}

/// Lines of text as A4 pages, with page numbers.
fn document(layout: Layout, all: &[String]) -> Vec<u8> {
    let Layout { size, leading } = layout;
    let pages: Vec<&[String]> = all.chunks(layout.lines_per_page()).collect();
    // Objects: 1 catalog, 2 pages, 3 font, 4 CID font, 5 descriptor, then page + content pairs.
    let mut objects: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            (0..pages.len())
                .map(|i| format!("{} 0 R", 6 + 2 * i))
                .collect::<Vec<_>>()
                .join(" "),
            pages.len()
        ),
        "<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H \
         /DescendantFonts [4 0 R] >>"
            .into(),
        "<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo \
         << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> /FontDescriptor 5 0 R \
         /DW 1000 /W [1 95 500] >>"
            .into(),
        "<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] \
         /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>"
            .into(),
    ];
    for (i, page) in pages.iter().enumerate() {
        let mut content = format!(
            "BT /F1 {size} Tf {leading} TL {MARGIN} {} Td\n",
            PAGE_H - MARGIN - size
        );
        for line in page.iter() {
            let _ = writeln!(content, "{} Tj T*", hex(line));
        }
        let footer = hex(&format!("{} / {}", i + 1, pages.len()));
        let _ = write!(content, "{footer} Tj\nET");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] \
             /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            7 + 2 * i
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    let mut tail = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for off in offsets {
        let _ = writeln!(tail, "{off:010} 00000 n ");
    }
    let _ = write!(
        tail,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.extend_from_slice(tail.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_wrapped_and_encoded_as_ucs2() {
        assert_eq!(hex("A会"), "<00414F1A>");
        assert_eq!(hex("😀"), "<003F>");
        let long = "会".repeat(100);
        let w = wrap(&long, 0);
        assert!(w.len() > 1 && w.iter().all(|l| l.chars().count() <= 50));
    }
}
