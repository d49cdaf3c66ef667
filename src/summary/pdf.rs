//! The consultation summary as a PDF, written directly (no PDF library): A4 pages of text in
//! the standard Chinese font `STSong-Light` with the `UniGB-UCS2-H` encoding, which PDF readers
//! provide without the font being embedded, so Chinese and Latin text both show and the file
//! stays small. Text is wrapped by an estimate of glyph widths (full width for CJK, half for
//! the rest).

use std::fmt::Write as _;

use super::Summary;
use crate::domain::record::RecordKind;

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const SIZE: f32 = 10.0;
const LEADING: f32 = 14.0;
const LINES_PER_PAGE: usize = ((PAGE_H - 2.0 * MARGIN) / LEADING) as usize;

fn width(c: char) -> f32 {
    if c.is_ascii() { 0.5 } else { 1.0 }
}

/// Splits text into lines that fit the page width.
fn wrap(text: &str, indent: usize) -> Vec<String> {
    let max = (PAGE_W - 2.0 * MARGIN) / SIZE - indent as f32 * 0.5;
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
    let all = lines(s);
    let pages: Vec<&[String]> = all.chunks(LINES_PER_PAGE).collect();
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
            "BT /F1 {SIZE} Tf {LEADING} TL {MARGIN} {} Td\n",
            PAGE_H - MARGIN - SIZE
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
