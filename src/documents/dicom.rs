//! DICOM files (imaging) as shared documents: the key header fields for the viewer, and the
//! first frame as a PNG image.
//!
//! A deliberately small reader for what a consultation needs, written for untrusted input:
//! Part 10 files in implicit or explicit VR little endian, uncompressed pixel data, 8 or 16 bits,
//! MONOCHROME1/2 or RGB; compressed transfer syntaxes give the header without an image. Every
//! length is checked against the bytes present and sizes are capped, so a hostile file yields an
//! error, never a panic or an allocation it did not pay for.
//!
//! Rendering costs memory in proportion to the image shown, not to the frame: the window (or the
//! range of values) comes from one pass over the stored pixels, a lookup table turns a stored
//! value into a gray level, and rows go to the PNG encoder one at a time. A frame larger than
//! the caller's pixel budget is shown shrunk by a whole factor (each output pixel the mean of a
//! square of stored ones); a frame wider or taller than [`MAX_SIDE`] is not shown.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

/// The widest and tallest frame shown: well past any CT or MR slice (512), CR/DX plate (about
/// 4300 × 3500) or mammogram (about 4096 × 5000).
pub const MAX_SIDE: usize = 16_384;
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DicomError {
    #[error("not a DICOM file: {0}")]
    Format(&'static str),
    #[error("the image cannot be shown: {0}")]
    Unsupported(String),
    #[error("the image is too large to show: {0}")]
    TooLarge(String),
}

/// Header fields shown beside the image (by keyword), and whether an image can be rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DicomInfo {
    pub fields: BTreeMap<&'static str, String>,
    pub rows: u32,
    pub columns: u32,
    pub transfer_syntax: String,
    /// Why no image can be shown, if so.
    pub image_unavailable: Option<String>,
}

/// The header elements kept, by tag.
const FIELDS: &[(u32, &str)] = &[
    (0x0008_0020, "StudyDate"),
    (0x0008_0060, "Modality"),
    (0x0008_0080, "InstitutionName"),
    (0x0008_1030, "StudyDescription"),
    (0x0008_103E, "SeriesDescription"),
    (0x0010_0010, "PatientName"),
    (0x0010_0020, "PatientID"),
    (0x0010_0040, "PatientSex"),
    (0x0018_0015, "BodyPartExamined"),
    (0x0028_0004, "PhotometricInterpretation"),
    (0x0028_1050, "WindowCenter"),
    (0x0028_1051, "WindowWidth"),
];

struct Parsed<'a> {
    text: BTreeMap<u32, String>,
    ints: BTreeMap<u32, u32>,
    pixels: Option<&'a [u8]>,
    encapsulated: bool,
    transfer_syntax: String,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DicomError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or(DicomError::Format("truncated element"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, DicomError> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, DicomError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
}

/// VRs whose explicit encoding has a 2-byte reserved field and a 4-byte length.
fn long_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"OB"
            | b"OW"
            | b"OF"
            | b"OD"
            | b"OL"
            | b"OV"
            | b"SQ"
            | b"UT"
            | b"UN"
            | b"UC"
            | b"UR"
            | b"SV"
            | b"UV"
    )
}

fn parse(bytes: &[u8]) -> Result<Parsed<'_>, DicomError> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(DicomError::Format("no DICM marker"));
    }
    let mut r = Reader { b: bytes, pos: 132 };
    let mut p = Parsed {
        text: BTreeMap::new(),
        ints: BTreeMap::new(),
        pixels: None,
        encapsulated: false,
        transfer_syntax: String::new(),
    };
    // The file meta group is always explicit VR little endian.
    let mut explicit = true;
    let mut in_meta = true;
    while !r.done() {
        let group = r.u16()?;
        if in_meta && group != 0x0002 {
            in_meta = false;
            match p.transfer_syntax.as_str() {
                IMPLICIT_LE => explicit = false,
                DEFLATED_LE => {
                    return Err(DicomError::Unsupported("deflated transfer syntax".into()));
                }
                "1.2.840.10008.1.2.2" => {
                    return Err(DicomError::Unsupported("big endian transfer syntax".into()));
                }
                _ => explicit = true,
            }
        }
        let element = r.u16()?;
        let tag = (u32::from(group) << 16) | u32::from(element);
        let (vr, len) = if explicit {
            let vr = r.take(2)?;
            if long_vr(vr) {
                r.take(2)?;
                (Some(vr), r.u32()?)
            } else {
                (Some(vr), u32::from(r.u16()?))
            }
        } else {
            (None, r.u32()?)
        };
        if len == u32::MAX {
            if tag == 0x7FE0_0010 {
                // Encapsulated (compressed) pixel data: the header is all we show.
                p.encapsulated = true;
                break;
            }
            // A sequence of undefined length: skip to its delimiter.
            skip_undefined(&mut r)?;
            continue;
        }
        let value = r.take(len as usize)?;
        match tag {
            0x0002_0010 => p.transfer_syntax = text(value),
            0x7FE0_0010 => p.pixels = Some(value),
            _ if FIELDS.iter().any(|(t, _)| *t == tag) => {
                p.text.insert(tag, text(value));
            }
            0x0028_0002 | 0x0028_0008 | 0x0028_0010 | 0x0028_0011 | 0x0028_0100 | 0x0028_0101
            | 0x0028_0103 | 0x0028_0006 => {
                let n = match (vr, value.len()) {
                    (Some(b"IS"), _) => text(value).parse().unwrap_or(0),
                    (_, 2) => u32::from(u16::from_le_bytes([value[0], value[1]])),
                    (_, 4) => u32::from_le_bytes([value[0], value[1], value[2], value[3]]),
                    _ => text(value).parse().unwrap_or(0),
                };
                p.ints.insert(tag, n);
            }
            0x0028_1052 | 0x0028_1053 => {
                p.text.insert(tag, text(value));
            }
            _ => {}
        }
    }
    Ok(p)
}

/// Skips items and nested sequences up to and including a sequence delimitation item.
fn skip_undefined(r: &mut Reader<'_>) -> Result<(), DicomError> {
    let mut depth = 1u32;
    while depth > 0 {
        let group = r.u16()?;
        let element = r.u16()?;
        let len = r.u32()?;
        match (group, element) {
            (0xFFFE, 0xE0DD) => depth -= 1,
            (0xFFFE, 0xE000) if len == u32::MAX => depth += 1,
            (0xFFFE, 0xE00D) => depth -= 1,
            _ if len == u32::MAX => depth += 1,
            _ => {
                r.take(len as usize)?;
            }
        }
        if depth > 64 {
            return Err(DicomError::Format("sequences nested too deeply"));
        }
    }
    Ok(())
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

fn first_number(s: Option<&String>) -> Option<f64> {
    s?.split('\\').next()?.trim().parse().ok()
}

pub fn info(bytes: &[u8]) -> Result<DicomInfo, DicomError> {
    let p = parse(bytes)?;
    let fields = FIELDS
        .iter()
        .filter_map(|(tag, name)| p.text.get(tag).map(|v| (*name, v.clone())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let image_unavailable = match image_params(&p) {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    Ok(DicomInfo {
        fields,
        rows: p.ints.get(&0x0028_0010).copied().unwrap_or(0),
        columns: p.ints.get(&0x0028_0011).copied().unwrap_or(0),
        transfer_syntax: p.transfer_syntax.clone(),
        image_unavailable,
    })
}

struct ImageParams<'a> {
    rows: usize,
    cols: usize,
    samples: usize,
    bits: usize,
    signed: bool,
    monochrome1: bool,
    pixels: &'a [u8],
}

fn image_params<'a>(p: &Parsed<'a>) -> Result<ImageParams<'a>, DicomError> {
    let unsupported = |m: &str| Err(DicomError::Unsupported(m.to_owned()));
    if p.encapsulated {
        return unsupported("compressed pixel data (download to view it in an imaging viewer)");
    }
    if !matches!(p.transfer_syntax.as_str(), IMPLICIT_LE | EXPLICIT_LE) {
        return unsupported("this transfer syntax");
    }
    let pixels = match p.pixels {
        Some(px) => px,
        None => return unsupported("no pixel data"),
    };
    let get = |tag: u32| p.ints.get(&tag).copied().unwrap_or(0) as usize;
    let (rows, cols) = (get(0x0028_0010), get(0x0028_0011));
    let samples = get(0x0028_0002).max(1);
    let bits = get(0x0028_0100);
    if rows == 0 || cols == 0 {
        return unsupported("image size out of range");
    }
    if rows > MAX_SIDE || cols > MAX_SIDE {
        return Err(DicomError::TooLarge(format!(
            "{cols} × {rows} pixels (at most {MAX_SIDE} a side are shown)"
        )));
    }
    if !matches!((samples, bits), (1, 8) | (1, 16) | (3, 8)) {
        return unsupported("only 8- or 16-bit grayscale and 8-bit RGB are shown");
    }
    if samples == 3 && get(0x0028_0006) != 0 {
        return unsupported("planar RGB");
    }
    let needed = rows * cols * samples * bits / 8;
    if pixels.len() < needed {
        return Err(DicomError::Format("pixel data shorter than the image"));
    }
    let photometric = p.text.get(&0x0028_0004).map(String::as_str).unwrap_or("");
    Ok(ImageParams {
        rows,
        cols,
        samples,
        bits,
        signed: get(0x0028_0103) == 1,
        monochrome1: photometric == "MONOCHROME1",
        pixels: &pixels[..needed],
    })
}

/// The first frame as an 8-bit PNG of at most `max_pixels` pixels: grayscale through the
/// file's window (or the full range of values when it has none), RGB as it is.
pub fn render_png(bytes: &[u8], max_pixels: u64) -> Result<Vec<u8>, DicomError> {
    let p = parse(bytes)?;
    let img = image_params(&p)?;
    let step = shrink_factor(img.cols, img.rows, max_pixels);
    let (w, h) = (img.cols.div_ceil(step), img.rows.div_ceil(step));
    let lut = (img.samples == 1).then(|| gray_lut(&p, &img));
    let encoding = |e: png::EncodingError| DicomError::Unsupported(e.to_string());
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
    enc.set_color(if img.samples == 3 {
        png::ColorType::Rgb
    } else {
        png::ColorType::Grayscale
    });
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(encoding)?;
    let mut rows = writer.stream_writer().map_err(encoding)?;
    let stride = img.cols * img.samples * img.bits / 8;
    let channels = img.samples;
    let mut sums = vec![0u64; w * channels];
    let mut row = vec![0u8; w * channels];
    for out_y in 0..h {
        sums.fill(0);
        let ys = out_y * step..((out_y + 1) * step).min(img.rows);
        let tall = ys.len();
        for y in ys {
            let line = &img.pixels[y * stride..(y + 1) * stride];
            for x in 0..img.cols {
                for c in 0..channels {
                    let v = match (&lut, img.bits) {
                        (Some(lut), 8) => lut[usize::from(line[x])],
                        (Some(lut), _) => {
                            lut[usize::from(u16::from_le_bytes([line[2 * x], line[2 * x + 1]]))]
                        }
                        (None, _) => line[x * 3 + c],
                    };
                    sums[(x / step) * channels + c] += u64::from(v);
                }
            }
        }
        for out_x in 0..w {
            let wide = ((out_x + 1) * step).min(img.cols) - out_x * step;
            let n = (wide * tall) as u64;
            for c in 0..channels {
                row[out_x * channels + c] = ((sums[out_x * channels + c] + n / 2) / n) as u8;
            }
        }
        rows.write_all(&row)
            .map_err(|e| DicomError::Unsupported(e.to_string()))?;
    }
    rows.finish().map_err(encoding)?;
    writer.finish().map_err(encoding)?;
    Ok(out)
}

/// The smallest whole factor that shrinks a `cols` × `rows` frame to at most `max_pixels`.
fn shrink_factor(cols: usize, rows: usize, max_pixels: u64) -> usize {
    let mut step = 1;
    while (cols.div_ceil(step) as u64) * (rows.div_ceil(step) as u64) > max_pixels.max(1) {
        step += 1;
    }
    step
}

/// Gray level for every stored value (256 or 65536 of them): rescale, window, invert for
/// MONOCHROME1. Without a window in the file, the frame's own range of values is used, found
/// in one pass over the stored values.
fn gray_lut(p: &Parsed<'_>, img: &ImageParams<'_>) -> Vec<u8> {
    let slope = first_number(p.text.get(&0x0028_1053)).unwrap_or(1.0);
    let intercept = first_number(p.text.get(&0x0028_1052)).unwrap_or(0.0);
    let stored = |raw: usize| -> f64 {
        if img.bits == 8 {
            raw as f64
        } else if img.signed {
            f64::from(raw as u16 as i16)
        } else {
            raw as f64
        }
    };
    let (lo, hi) = match (
        first_number(p.text.get(&0x0028_1050)),
        first_number(p.text.get(&0x0028_1051)),
    ) {
        (Some(c), Some(w)) if w > 0.0 => (c - w / 2.0, c + w / 2.0),
        _ => {
            let (mut min, mut max) = (f64::MAX, f64::MIN);
            let mut see = |raw: usize| {
                let v = stored(raw);
                min = min.min(v);
                max = max.max(v);
            };
            if img.bits == 8 {
                img.pixels.iter().for_each(|&b| see(usize::from(b)));
            } else {
                img.pixels
                    .chunks_exact(2)
                    .for_each(|c| see(usize::from(u16::from_le_bytes([c[0], c[1]]))));
            }
            let (a, b) = (min * slope + intercept, max * slope + intercept);
            (a.min(b), a.max(b))
        }
    };
    let span = (hi - lo).max(f64::EPSILON);
    (0..1usize << img.bits)
        .map(|raw| {
            let v = stored(raw) * slope + intercept;
            let g = (((v - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8;
            if img.monochrome1 { 255 - g } else { g }
        })
        .collect()
}

/// A small explicit-VR-little-endian CT slice (a gradient), for tests and demonstrations.
#[doc(hidden)]
pub fn sample(rows: u16, cols: u16) -> Vec<u8> {
    fn el(out: &mut Vec<u8>, group: u16, element: u16, vr: &[u8; 2], value: &[u8]) {
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(vr);
        if long_vr(vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
    }
    let mut d = vec![0u8; 128];
    d.extend_from_slice(b"DICM");
    el(&mut d, 0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0");
    el(&mut d, 0x0008, 0x0060, b"CS", b"CT");
    el(&mut d, 0x0008, 0x1030, b"LO", b"CHEST W/O CONTRAST");
    el(&mut d, 0x0010, 0x0010, b"PN", b"LI^LEI");
    // A sequence of undefined length, to be skipped.
    d.extend_from_slice(&[
        0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    d.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0, 1, 2, 3, 4]);
    d.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    el(&mut d, 0x0028, 0x0002, b"US", &1u16.to_le_bytes());
    el(&mut d, 0x0028, 0x0004, b"CS", b"MONOCHROME2 ");
    el(&mut d, 0x0028, 0x0010, b"US", &rows.to_le_bytes());
    el(&mut d, 0x0028, 0x0011, b"US", &cols.to_le_bytes());
    el(&mut d, 0x0028, 0x0100, b"US", &16u16.to_le_bytes());
    el(&mut d, 0x0028, 0x0103, b"US", &0u16.to_le_bytes());
    el(&mut d, 0x0028, 0x1050, b"DS", b"40");
    el(&mut d, 0x0028, 0x1051, b"DS", b"400 ");
    el(&mut d, 0x0028, 0x1052, b"DS", b"-1024");
    el(&mut d, 0x0028, 0x1053, b"DS", b"1 ");
    let mut px = Vec::with_capacity(rows as usize * cols as usize * 2);
    for y in 0..rows {
        for x in 0..cols {
            px.extend_from_slice(
                &(((x as u32 + y as u32) * 2000 / (rows as u32 + cols as u32)) as u16)
                    .to_le_bytes(),
            );
        }
    }
    el(&mut d, 0x7FE0, 0x0010, b"OW", &px);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_image_of_a_small_ct_slice() {
        let d = sample(32, 48);
        let i = info(&d).unwrap();
        assert_eq!(i.fields["Modality"], "CT");
        assert_eq!(i.fields["PatientName"], "LI^LEI");
        assert_eq!(i.fields["WindowWidth"], "400");
        assert_eq!((i.rows, i.columns), (32, 48));
        assert_eq!(i.image_unavailable, None);
        let png = render_png(&d, 1 << 20).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
    }

    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        (info.width, info.height, pixels)
    }

    #[test]
    fn frames_are_windowed_and_shrunk_to_the_pixel_budget() {
        let d = sample(64, 48);
        // Whole: window 40 ± 200 on values rescaled by -1024, so the dark corner is black and
        // the far one white, and gray rises along the diagonal.
        let (w, h, px) = decode(&render_png(&d, 64 * 48).unwrap());
        assert_eq!((w, h), (48, 64));
        let diagonal: Vec<u8> = (0..48).map(|i| px[i * 48 + i]).collect();
        assert_eq!((diagonal[0], px[px.len() - 1]), (0, 255));
        assert!(diagonal.windows(2).all(|p| p[0] <= p[1]), "{diagonal:?}");
        // Over the budget: halved (24 × 32 = 768 pixels fit in 1000), each pixel the mean of a
        // square of four.
        let (w, h, small) = decode(&render_png(&d, 1000).unwrap());
        assert_eq!((w, h), (24, 32));
        let mean =
            (u32::from(px[0]) + u32::from(px[1]) + u32::from(px[48]) + u32::from(px[49]) + 2) / 4;
        assert_eq!(u32::from(small[0]), mean);
        // The smallest factor that fits; odd sizes keep their last row and column (5 × 3
        // halved is 3 × 2).
        assert_eq!(shrink_factor(5, 3, 15), 1);
        assert_eq!(shrink_factor(5, 3, 6), 2);
        assert_eq!(shrink_factor(5, 3, 5), 3);
    }

    #[test]
    fn frames_wider_or_taller_than_the_maximum_are_refused_by_size() {
        let mut d = sample(8, 8);
        let rows = d
            .windows(8)
            .position(|w| w == [0x28, 0, 0x10, 0, b'U', b'S', 2, 0])
            .unwrap()
            + 8;
        d[rows..rows + 2].copy_from_slice(&20_000u16.to_le_bytes());
        let err = render_png(&d, 1 << 20).unwrap_err();
        assert!(
            matches!(&err, DicomError::TooLarge(m) if m.contains("16384")),
            "{err}"
        );
        let i = info(&d).unwrap();
        assert!(i.image_unavailable.unwrap().contains("too large"));
    }

    #[test]
    fn hostile_files_are_errors_not_panics() {
        let good = sample(8, 8);
        // Every truncation of a valid file is an error or a header without an image.
        for n in (0..good.len()).step_by(7) {
            let _ = info(&good[..n]);
            let _ = render_png(&good[..n], 1 << 20);
        }
        // A huge declared length.
        let mut bad = good.clone();
        let at = bad.len() - 8 * 8 * 2 - 4;
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let _ = render_png(&bad, 1 << 20);
        assert!(info(b"not dicom").is_err());
    }
}
