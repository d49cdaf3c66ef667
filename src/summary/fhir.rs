//! A consultation as a FHIR R4 `Bundle` (type `collection`): the `Encounter` (a virtual visit
//! with its participants and period), the `Patient` by its reference number, a
//! `DocumentReference` per shared document, a `DiagnosticReport` per diagnosis report, a
//! `MedicationRequest` per prescribed medication, a `Composition` per consultation note and a
//! `Communication` per chat message. Codes are given as text where the server has no coding.

use serde_json::{Value, json};

use super::Summary;
use crate::domain::record::{RecordKind, RecordStatus};
use crate::records::RecordView;

/// An ISO 8601 UTC instant from Unix milliseconds.
pub fn instant(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn entry(resource: Value) -> Value {
    let full_url = format!(
        "urn:huizhen:{}:{}",
        resource["resourceType"].as_str().unwrap_or(""),
        resource["id"].as_str().unwrap_or("")
    );
    json!({ "fullUrl": full_url, "resource": resource })
}

fn reference(kind: &str, id: &str) -> Value {
    json!({ "reference": format!("urn:huizhen:{kind}:{id}") })
}

fn text(b: &Value, field: &str) -> String {
    b[field].as_str().unwrap_or_default().to_owned()
}

pub fn bundle(s: &Summary) -> Value {
    let room = &s.room;
    let encounter_id = room.id.to_string();
    let patient_id = format!("{}-patient", room.id);
    let mut entries = Vec::new();
    entries.push(entry(json!({
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": room.patient_ref.as_ref().map(|r| vec![json!({"system": "urn:huizhen:patient-ref", "value": r})]).unwrap_or_default(),
    })));
    entries.push(entry(json!({
        "resourceType": "Encounter",
        "id": encounter_id,
        "status": if room.ended_at.is_some() { "finished" } else { "in-progress" },
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR", "display": "virtual"},
        "type": [{"text": "remote consultation"}],
        "subject": reference("Patient", &patient_id),
        "period": {
            "start": instant(room.created_at * 1000),
            "end": room.ended_at.map(|t| instant(t * 1000)),
        },
        "reasonCode": [{"text": room.title}],
        "participant": s.participants.iter().map(|p| json!({
            "type": [{"text": p.role.as_str()}],
            "period": {"start": instant(p.joined_at * 1000), "end": p.left_at.map(|t| instant(t * 1000))},
            "individual": {"display": p.name, "identifier": {"system": "urn:huizhen:participant", "value": p.id.as_str()}},
        })).collect::<Vec<_>>(),
    })));
    for d in &s.documents {
        let doc = &d.document;
        entries.push(entry(json!({
            "resourceType": "DocumentReference",
            "id": doc.id.as_str(),
            "status": "current",
            "subject": reference("Patient", &patient_id),
            "date": instant(doc.created_at_ms),
            "identifier": [{"system": "urn:huizhen:sha256", "value": doc.sha256}],
            "securityLabel": if doc.visibility == crate::domain::role::Visibility::Clinicians {
                vec![json!({"text": "clinicians only"})]
            } else { vec![] },
            "content": [{"attachment": {
                "contentType": doc.kind.media_type(),
                "title": doc.name,
                "size": doc.size,
                "url": format!("/api/v1/rooms/{}/documents/{}/content", room.id, doc.id),
            }}],
            "context": {"encounter": [reference("Encounter", &encounter_id)]},
        })));
    }
    for r in &s.records {
        entries.extend(record_resources(r, &patient_id, &encounter_id));
    }
    for m in &s.chat {
        entries.push(entry(json!({
            "resourceType": "Communication",
            "id": m.id.as_str(),
            "status": "completed",
            "subject": reference("Patient", &patient_id),
            "encounter": reference("Encounter", &encounter_id),
            "sent": instant(m.at_ms),
            "sender": {"display": m.name},
            "payload": [{"contentString": m.text}],
        })));
    }
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": instant(s.generated_at_ms),
        "entry": entries,
    })
}

fn record_resources(v: &RecordView, patient: &str, encounter: &str) -> Vec<Value> {
    let r = &v.record;
    let b = &r.body;
    let superseded = v.superseded_by.is_some();
    let author = json!({"display": r.author_name});
    match r.kind {
        RecordKind::DiagnosisReport => vec![entry(json!({
            "resourceType": "DiagnosticReport",
            "id": r.id.as_str(),
            "status": match (r.status, r.supersedes.is_some(), superseded) {
                (RecordStatus::Draft, _, _) => "preliminary",
                (_, _, true) => "entered-in-error",
                (_, true, _) => "corrected",
                _ => "final",
            },
            "code": {"text": "specialist consultation report"},
            "subject": reference("Patient", patient),
            "encounter": reference("Encounter", encounter),
            "issued": instant(r.created_at_ms),
            "performer": [author],
            "conclusion": text(b, "impression"),
            "text": {"status": "generated", "div": format!(
                "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Findings: {}</p><p>Impression: {}</p><p>Recommendation: {}</p></div>",
                xml_escape(&text(b, "findings")), xml_escape(&text(b, "impression")), xml_escape(&text(b, "recommendation")))},
        }))],
        RecordKind::Prescription => {
            let status = match r.status {
                RecordStatus::Draft => "draft",
                _ if superseded => "entered-in-error",
                RecordStatus::Issued | RecordStatus::Reviewed => "active",
                RecordStatus::Dispensed => "completed",
                RecordStatus::Rejected => "cancelled",
            };
            b["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            let mut res = json!({
                                "resourceType": "MedicationRequest",
                                "id": format!("{}-{}", r.id, i + 1),
                                "status": status,
                                "intent": "order",
                                "groupIdentifier": {"system": "urn:huizhen:prescription", "value": r.id.as_str()},
                                "medicationCodeableConcept": {"text": text(item, "medication")},
                                "subject": reference("Patient", patient),
                                "encounter": reference("Encounter", encounter),
                                "authoredOn": instant(r.created_at_ms),
                                "requester": author,
                                "dosageInstruction": [{
                                    "text": format!("{} {} {} for {}", text(item, "dose"), text(item, "route"), text(item, "frequency"), text(item, "duration")),
                                    "route": {"text": text(item, "route")},
                                    "timing": {"code": {"text": text(item, "frequency")}},
                                    "doseAndRate": [{"doseQuantity": {"unit": text(item, "dose")}}],
                                }],
                                "dispenseRequest": {"expectedSupplyDuration": {"unit": text(item, "duration")}},
                                "note": item["note"].as_str().map(|n| vec![json!({"text": n})]).unwrap_or_default(),
                            });
                            if let Some(old) = &r.supersedes {
                                res["priorPrescription"] = reference("MedicationRequest", &format!("{old}-{}", i + 1));
                            }
                            entry(res)
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
        RecordKind::Note => vec![entry(json!({
            "resourceType": "Composition",
            "id": r.id.as_str(),
            "status": if r.status == RecordStatus::Draft { "preliminary" } else if superseded { "entered-in-error" } else if r.supersedes.is_some() { "amended" } else { "final" },
            "type": {"text": "consultation note"},
            "subject": reference("Patient", patient),
            "encounter": reference("Encounter", encounter),
            "date": instant(r.created_at_ms),
            "author": [author],
            "title": "Consultation note",
            "section": [{"text": {"status": "generated", "div": format!(
                "<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", xml_escape(&text(b, "text")))}}],
        }))],
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_iso_8601_utc() {
        assert_eq!(instant(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(instant(1_795_430_400_123), "2026-11-23T10:40:00.123Z");
        assert_eq!(instant(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
