//! ECG waveforms as shared documents: a small, documented input format (CSV or JSON of samples)
//! parsed into leads the room's viewer draws as a strip.
//!
//! CSV: optional `# sample_rate_hz=500` and `# units=mV` comment lines, then a header of lead
//! names, then one row of numbers per sample. A first column named `t`, `time`, `time_s` or
//! `time_ms` gives the timing instead (the rate is taken from its first two rows).
//! JSON: `{"sample_rate_hz": 500, "units": "mV", "leads": {"I": [..], "II": [..]}}`.
//! Without a rate, 500 Hz is assumed (the usual diagnostic ECG rate).

use serde::Serialize;

pub const DEFAULT_RATE_HZ: f64 = 500.0;
const MAX_LEADS: usize = 16;
const MAX_SAMPLES: usize = 2_000_000;
const RATE_RANGE: std::ops::RangeInclusive<f64> = 50.0..=20_000.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ecg {
    pub sample_rate_hz: f64,
    pub units: String,
    pub leads: Vec<Lead>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lead {
    pub name: String,
    pub samples: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcgError {
    #[error("not an ECG file: {0}")]
    Format(&'static str),
}

pub fn parse(text: &str) -> Result<Ecg, EcgError> {
    let trimmed = text.trim_start();
    let ecg = if trimmed.starts_with('{') {
        parse_json(trimmed)?
    } else {
        parse_csv(text)?
    };
    if ecg.leads.is_empty() || ecg.leads.len() > MAX_LEADS {
        return Err(EcgError::Format("between 1 and 16 leads are needed"));
    }
    let n = ecg.leads[0].samples.len();
    if !(2..=MAX_SAMPLES).contains(&n) || ecg.leads.iter().any(|l| l.samples.len() != n) {
        return Err(EcgError::Format(
            "every lead needs the same number of samples (2 or more)",
        ));
    }
    if !RATE_RANGE.contains(&ecg.sample_rate_hz) {
        return Err(EcgError::Format(
            "sample rate out of range (50 to 20000 Hz)",
        ));
    }
    Ok(ecg)
}

fn parse_json(text: &str) -> Result<Ecg, EcgError> {
    // Samples go straight into numbers: a tree of JSON values first would take about 16 times
    // the file's size (a 16 MiB file of short numbers, some 250 MiB).
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(default)]
        sample_rate_hz: Option<f64>,
        #[serde(default)]
        units: Option<String>,
        leads: std::collections::BTreeMap<String, Vec<f32>>,
    }
    let doc: Doc = serde_json::from_str(text)
        .map_err(|_| EcgError::Format("bad JSON, or a lead that is not an array of numbers"))?;
    let leads = doc
        .leads
        .into_iter()
        .map(|(name, samples)| Lead {
            name: clean_name(&name),
            samples,
        })
        .collect();
    Ok(Ecg {
        sample_rate_hz: doc.sample_rate_hz.unwrap_or(DEFAULT_RATE_HZ),
        units: doc
            .units
            .map(|u| clean_name(&u))
            .unwrap_or_else(|| "mV".into()),
        leads,
    })
}

fn parse_csv(text: &str) -> Result<Ecg, EcgError> {
    let mut rate = None;
    let mut units = "mV".to_owned();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let header = loop {
        let line = lines.next().ok_or(EcgError::Format("no header"))?;
        match line.strip_prefix('#') {
            Some(comment) => {
                if let Some((k, v)) = comment.split_once('=') {
                    match k.trim() {
                        "sample_rate_hz" => rate = v.trim().parse::<f64>().ok(),
                        "units" => units = clean_name(v),
                        _ => {}
                    }
                }
            }
            None => break line,
        }
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    if names
        .iter()
        .any(|n| n.is_empty() || n.parse::<f64>().is_ok())
    {
        return Err(EcgError::Format("the first line must name the leads"));
    }
    let time_col = match names[0].to_ascii_lowercase().as_str() {
        "t" | "time" | "time_s" => Some(1.0),
        "time_ms" => Some(1000.0),
        _ => None,
    };
    let first_lead = usize::from(time_col.is_some());
    if names.len() <= first_lead || names.len() - first_lead > MAX_LEADS {
        return Err(EcgError::Format("between 1 and 16 leads are needed"));
    }
    let mut columns: Vec<Vec<f32>> = vec![Vec::new(); names.len() - first_lead];
    let mut times: Vec<f64> = Vec::new();
    for line in lines {
        let mut cells = line.split(',').map(str::trim);
        if let Some(scale) = time_col {
            let t: f64 = next_number(&mut cells)?;
            if times.len() < 2 {
                times.push(t / scale);
            }
        }
        for col in &mut columns {
            col.push(next_number(&mut cells)? as f32);
            if col.len() > MAX_SAMPLES {
                return Err(EcgError::Format("too many samples"));
            }
        }
        if cells.next().is_some() {
            return Err(EcgError::Format("a row has more cells than the header"));
        }
    }
    if let [t0, t1] = times[..] {
        if t1 <= t0 {
            return Err(EcgError::Format("time must increase"));
        }
        rate = Some(1.0 / (t1 - t0));
    }
    Ok(Ecg {
        sample_rate_hz: rate.unwrap_or(DEFAULT_RATE_HZ),
        units,
        leads: names[first_lead..]
            .iter()
            .zip(columns)
            .map(|(n, samples)| Lead {
                name: clean_name(n),
                samples,
            })
            .collect(),
    })
}

fn next_number<'a>(cells: &mut impl Iterator<Item = &'a str>) -> Result<f64, EcgError> {
    cells
        .next()
        .and_then(|c| c.parse::<f64>().ok())
        .filter(|f| f.is_finite())
        .ok_or(EcgError::Format("a row has a missing or non-numeric cell"))
}

/// Lead names and units are shown in the viewer: short and printable.
fn clean_name(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_rate_comment_and_time_column() {
        let e = parse("# sample_rate_hz=250\nI,II,V1\n0.1,0.2,0.3\n0.2,0.3,0.4\n").unwrap();
        assert_eq!(e.sample_rate_hz, 250.0);
        assert_eq!(e.leads.len(), 3);
        assert_eq!(e.leads[1].samples, vec![0.2, 0.3]);
        let t = parse("time_ms,II\n0,0.1\n2,0.2\n4,0.1\n").unwrap();
        assert_eq!(t.sample_rate_hz, 500.0);
        assert_eq!(t.leads[0].name, "II");
    }

    #[test]
    fn json_form() {
        let e = parse(r#"{"sample_rate_hz": 1000, "leads": {"II": [0, 0.5, 1.0]}}"#).unwrap();
        assert_eq!(e.sample_rate_hz, 1000.0);
        assert_eq!(e.leads[0].samples.len(), 3);
    }

    #[test]
    fn text_that_is_not_an_ecg_is_refused() {
        for bad in [
            "Dear colleague,\nplease see the patient.",
            "I,II\n0.1\n",
            "I,II\n0.1,x\n0.2,0.3\n",
            "1,2\n3,4\n",
            r#"{"leads": {"II": ["a"]}}"#,
            "I\n0.1\n",
            "time,II\n0,1\n0,2\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
