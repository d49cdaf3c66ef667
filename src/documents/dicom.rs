//! DICOM files (imaging) as shared documents: the key header fields for the viewer, and the
//! first frame as a PNG image.
//!
//! Reading is dicom-rs's: dicom-object parses the header (values, VRs, character sets such as
//! GB18030), and the transfer syntax registry's decoders turn compressed frames into samples
//! (JPEG baseline, extended and lossless through jpeg-decoder; RLE lossless); JPEG 2000 is
//! decoded by hayro-jpeg2000 (pure Rust, no unsafe code, already here for PDFs). Other transfer
//! syntaxes (JPEG-LS, HTJ2K, JPEG XL, video, deflated, big endian) give the header and a
//! refusal that names them ([`DicomError::UnsupportedTransferSyntax`]).
//!
//! Written for untrusted input, with every limit checked before the pixels are touched:
//!
//! - [`layout`] checks every declared length in the file against the bytes present before
//!   dicom-rs reads it (dicom-parser allocates a declared length before reading it), and finds
//!   the pixel data; dicom-object reads only the header, never the pixels.
//! - Rows, columns, samples, bits, the number of frames and the decoded size are checked from the
//!   header before anything is decoded ([`MAX_SIDE`], [`MAX_DECODED_BYTES`]); [`frame`] then
//!   checks that the compressed stream describes the same image before a decoder sees it, and
//!   contains the decoders' panics.
//! - Only the first frame is decoded (the one the viewer shows), from its own fragments.
//!
//! Rendering costs memory in proportion to the image shown plus, for a compressed file, the one
//! decoded frame: the window (or the range of values) comes from one pass over the samples, a
//! lookup table turns a stored value into a gray level, and rows go to the PNG encoder one at a
//! time. A frame larger than the caller's pixel budget is shown shrunk by a whole factor (each
//! output pixel the mean of a square of stored ones); a frame wider or taller than [`MAX_SIDE`]
//! is not shown. An uncompressed frame is read where it lies in the file, as before.

mod frame;
mod layout;
#[cfg(test)]
mod syntaxes;

use std::collections::BTreeMap;
use std::io::Write;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use serde::Serialize;

use frame::Codec;
use layout::{Layout, Pixels};

/// The widest and tallest frame shown: well past any CT or MR slice (512), CR/DX plate (about
/// 4300 × 3500) or mammogram (about 4096 × 5000).
pub const MAX_SIDE: usize = 16_384;
/// The most bytes a compressed frame may decode to (a 16-bit 8192 × 8192 frame; a mammogram is
/// about 40 MB). An uncompressed frame is read in place and has only [`MAX_SIDE`].
pub const MAX_DECODED_BYTES: usize = 128 << 20;
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DicomError {
    #[error("not a DICOM file: {0}")]
    Format(&'static str),
    #[error("the DICOM header cannot be read: {0}")]
    Header(String),
    #[error("the image cannot be shown: {0}")]
    Unsupported(String),
    /// Pixel data in a transfer syntax this server does not decode.
    #[error(
        "the image cannot be shown: {name} ({uid}) is not decoded here (download the file to view it in an imaging viewer)"
    )]
    UnsupportedTransferSyntax { name: String, uid: String },
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
const FIELDS: &[(Tag, &str)] = &[
    (tags::STUDY_DATE, "StudyDate"),
    (tags::MODALITY, "Modality"),
    (tags::INSTITUTION_NAME, "InstitutionName"),
    (tags::STUDY_DESCRIPTION, "StudyDescription"),
    (tags::SERIES_DESCRIPTION, "SeriesDescription"),
    (tags::PATIENT_NAME, "PatientName"),
    (tags::PATIENT_ID, "PatientID"),
    (tags::PATIENT_SEX, "PatientSex"),
    (tags::BODY_PART_EXAMINED, "BodyPartExamined"),
    (
        tags::PHOTOMETRIC_INTERPRETATION,
        "PhotometricInterpretation",
    ),
    (tags::WINDOW_CENTER, "WindowCenter"),
    (tags::WINDOW_WIDTH, "WindowWidth"),
];

/// A file checked by [`layout`], with its header read by dicom-object.
struct Parsed<'a> {
    layout: Layout<'a>,
    header: InMemDicomObject,
}

fn parse(bytes: &[u8]) -> Result<Parsed<'_>, DicomError> {
    let uid = layout::transfer_syntax(bytes)?;
    // Only little-endian data sets are walked and read; deflated ones inflate to a size that
    // cannot be known before inflating, and explicit big endian is retired.
    if !frame::little_endian_data_set(&uid) {
        return Err(frame::refusal(&uid));
    }
    let layout = layout::read(bytes)?;
    let ts = TransferSyntaxRegistry
        .get(if layout.transfer_syntax == IMPLICIT_LE {
            IMPLICIT_LE
        } else {
            EXPLICIT_LE
        })
        .ok_or(DicomError::Format("no little-endian transfer syntax"))?;
    // dicom-parser is a parser of strangers' files too: a panic of its own is contained.
    let read = || InMemDicomObject::read_dataset_with_ts(layout.header, ts);
    let header = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
        .map_err(|_| DicomError::Header("the header reader stopped".into()))?
        .map_err(|e| DicomError::Header(e.to_string()))?;
    Ok(Parsed { layout, header })
}

fn text(v: &str) -> String {
    v.trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

impl Parsed<'_> {
    fn text(&self, tag: Tag) -> Option<String> {
        let value = self.header.get(tag)?.to_str().ok()?;
        Some(text(&value))
    }
    fn int(&self, tag: Tag) -> Option<u32> {
        self.header.get(tag)?.to_int::<u32>().ok()
    }
    fn first_number(&self, tag: Tag) -> Option<f64> {
        self.text(tag)?.split('\\').next()?.trim().parse().ok()
    }
}

pub fn info(bytes: &[u8]) -> Result<DicomInfo, DicomError> {
    let p = parse(bytes)?;
    let fields = FIELDS
        .iter()
        .filter_map(|(tag, name)| p.text(*tag).map(|v| (*name, v)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let image_unavailable = match image_params(&p) {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    Ok(DicomInfo {
        fields,
        rows: p.int(tags::ROWS).unwrap_or(0),
        columns: p.int(tags::COLUMNS).unwrap_or(0),
        transfer_syntax: p.layout.transfer_syntax.clone(),
        image_unavailable,
    })
}

/// What the header says about the image, checked against every limit.
struct ImageParams {
    codec: Codec,
    rows: usize,
    cols: usize,
    samples: usize,
    bits: usize,
    /// Bits Stored, when smaller than `bits` (a signed value's sign is its top stored bit).
    bits_stored: usize,
    signed: bool,
    monochrome1: bool,
    /// Stored as YCbCr (YBR_FULL), shown as RGB.
    ybr: bool,
    frames: usize,
    slope: f64,
    intercept: f64,
    window: Option<(f64, f64)>,
}

impl ImageParams {
    /// The bytes of one frame.
    fn frame_bytes(&self) -> usize {
        self.rows * self.cols * self.samples * self.bits / 8
    }
}

fn image_params(p: &Parsed<'_>) -> Result<ImageParams, DicomError> {
    let unsupported = |m: &str| Err(DicomError::Unsupported(m.to_owned()));
    let codec = frame::codec(&p.layout.transfer_syntax)?;
    let Some(pixels) = &p.layout.pixels else {
        return unsupported("no pixel data");
    };
    let get = |tag: Tag| p.int(tag).unwrap_or(0) as usize;
    let (rows, cols) = (get(tags::ROWS), get(tags::COLUMNS));
    let samples = get(tags::SAMPLES_PER_PIXEL).max(1);
    let bits = get(tags::BITS_ALLOCATED);
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
    let photometric = p.text(tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    // A compressed frame's decoder yields RGB whatever the colour model it was coded in
    // (jpeg-decoder and hayro-jpeg2000 convert YCbCr); RLE and uncompressed frames keep theirs.
    let keeps_colour_model = matches!(codec, Codec::Native | Codec::Rle);
    let ybr = samples == 3 && keeps_colour_model && photometric == "YBR_FULL";
    if samples == 3 && keeps_colour_model && !ybr && photometric != "RGB" {
        return unsupported(&format!("{photometric} colour in this transfer syntax"));
    }
    if samples == 3 && codec == Codec::Native && get(tags::PLANAR_CONFIGURATION) != 0 {
        return unsupported("planar RGB");
    }
    let frames = match p.header.get(tags::NUMBER_OF_FRAMES) {
        None => 1,
        Some(e) => match e.to_int::<u32>() {
            Ok(n) if n >= 1 => n as usize,
            _ => return Err(DicomError::Format("number of frames out of range")),
        },
    };
    let bits_stored = match get(tags::BITS_STORED) {
        n if (1..bits).contains(&n) => n,
        _ => bits,
    };
    let img = ImageParams {
        codec,
        rows,
        cols,
        samples,
        bits,
        bits_stored,
        signed: get(tags::PIXEL_REPRESENTATION) == 1,
        monochrome1: photometric == "MONOCHROME1",
        ybr,
        frames,
        slope: p.first_number(tags::RESCALE_SLOPE).unwrap_or(1.0),
        intercept: p.first_number(tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        window: match (
            p.first_number(tags::WINDOW_CENTER),
            p.first_number(tags::WINDOW_WIDTH),
        ) {
            (Some(c), Some(w)) if w > 0.0 => Some((c, w)),
            _ => None,
        },
    };
    match (pixels, codec) {
        (Pixels::Native(data), Codec::Native) => {
            if data.len() < img.frame_bytes() {
                return Err(DicomError::Format("pixel data shorter than the image"));
            }
        }
        (Pixels::Encapsulated { fragments, .. }, Codec::Jpeg | Codec::Rle | Codec::Jpeg2000) => {
            if img.frame_bytes() > MAX_DECODED_BYTES {
                return Err(DicomError::TooLarge(format!(
                    "a compressed {cols} × {rows} frame decodes to {} MiB (at most {} MiB)",
                    img.frame_bytes().div_ceil(1 << 20),
                    MAX_DECODED_BYTES >> 20
                )));
            }
            if fragments.is_empty() || frames > fragments.len() {
                return Err(DicomError::Format("fewer pixel data fragments than frames"));
            }
        }
        (Pixels::Native(_), _) => {
            return unsupported("native pixel data in a compressed transfer syntax");
        }
        (Pixels::Encapsulated { .. }, _) => {
            return unsupported("encapsulated pixel data in an uncompressed transfer syntax");
        }
    }
    Ok(img)
}

/// The first frame as an 8-bit PNG of at most `max_pixels` pixels: grayscale through the
/// file's window (or the full range of values when it has none), colour as RGB.
pub fn render_png(bytes: &[u8], max_pixels: u64) -> Result<Vec<u8>, DicomError> {
    let p = parse(bytes)?;
    let img = image_params(&p)?;
    let pixels = p
        .layout
        .pixels
        .as_ref()
        .ok_or(DicomError::Format("no pixel data"))?;
    let frame = frame::first(pixels, &img, &p.layout.transfer_syntax)?;
    png_of(&img, &frame, max_pixels)
}

fn png_of(img: &ImageParams, pixels: &[u8], max_pixels: u64) -> Result<Vec<u8>, DicomError> {
    let step = shrink_factor(img.cols, img.rows, max_pixels);
    let (w, h) = (img.cols.div_ceil(step), img.rows.div_ceil(step));
    let lut = (img.samples == 1).then(|| gray_lut(img, pixels));
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
            let line = &pixels[y * stride..(y + 1) * stride];
            for x in 0..img.cols {
                let sum = &mut sums[(x / step) * channels..(x / step + 1) * channels];
                match (&lut, img.bits) {
                    (Some(lut), 8) => sum[0] += u64::from(lut[usize::from(line[x])]),
                    (Some(lut), _) => {
                        let raw = u16::from_le_bytes([line[2 * x], line[2 * x + 1]]);
                        sum[0] += u64::from(lut[usize::from(raw)]);
                    }
                    (None, _) => {
                        let px = [line[x * 3], line[x * 3 + 1], line[x * 3 + 2]];
                        let px = if img.ybr { ybr_to_rgb(px) } else { px };
                        for (s, v) in sum.iter_mut().zip(px) {
                            *s += u64::from(v);
                        }
                    }
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

/// YBR_FULL (full-range YCbCr, ITU-R BT.601) to RGB, as PS3.3 C.7.6.3.1.2 defines it.
fn ybr_to_rgb([y, cb, cr]: [u8; 3]) -> [u8; 3] {
    let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
    let c = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    [
        c(y + 1.402 * cr),
        c(y - 0.344_136 * cb - 0.714_136 * cr),
        c(y + 1.772 * cb),
    ]
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
fn gray_lut(img: &ImageParams, pixels: &[u8]) -> Vec<u8> {
    let (slope, intercept) = (img.slope, img.intercept);
    let stored = |raw: usize| -> f64 {
        if img.bits == 8 || !img.signed {
            raw as f64
        } else {
            // Two's complement in the stored bits (all 16 unless Bits Stored says fewer).
            let unused = 16 - img.bits_stored as u32;
            f64::from(((raw as u16) << unused) as i16 >> unused)
        }
    };
    let (lo, hi) = match img.window {
        Some((c, w)) => (c - w / 2.0, c + w / 2.0),
        None => {
            let (mut min, mut max) = (f64::MAX, f64::MIN);
            let mut see = |raw: usize| {
                let v = stored(raw);
                min = min.min(v);
                max = max.max(v);
            };
            if img.bits == 8 {
                pixels.iter().for_each(|&b| see(usize::from(b)));
            } else {
                pixels
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
    sample_of(rows, cols, Sample::Ct)
}

/// The images [`sample_of`] draws.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// 16-bit unsigned CT values (0 to 2000, rescaled by -1024), windowed 40 ± 200.
    Ct,
    /// 16-bit signed, 12 bits stored (-2048 to 2047 across the image), no window.
    SignedCt,
    /// 8-bit grayscale (a gradient and a bright square), no window.
    Gray8,
    /// 8-bit RGB, interleaved (a red, green and blue gradient each way).
    Rgb,
}

/// A small explicit-VR-little-endian image, for tests and demonstrations: the file meta group
/// with its group length and UIDs, a few header fields, a sequence of undefined length, and
/// uncompressed pixel data.
#[doc(hidden)]
pub fn sample_of(rows: u16, cols: u16, kind: Sample) -> Vec<u8> {
    fn el(out: &mut Vec<u8>, group: u16, element: u16, vr: &[u8; 2], value: &[u8]) {
        // Values have even lengths: UIs are padded with NUL, text with a space.
        let pad: &[u8] = match (value.len() % 2, vr) {
            (0, _) => b"",
            (_, b"UI") => b"\0",
            _ => b" ",
        };
        let value = &[value, pad].concat();
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(vr);
        if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
    }
    let sop_class: &[u8] = match kind {
        Sample::Ct | Sample::SignedCt => b"1.2.840.10008.5.1.4.1.1.2\0",
        // Secondary capture.
        Sample::Gray8 | Sample::Rgb => b"1.2.840.10008.5.1.4.1.1.7\0",
    };
    let instance = b"1.2.826.0.1.3680043.10.1434.1.1";
    let mut meta = Vec::new();
    el(&mut meta, 0x0002, 0x0001, b"OB", &[0, 1]);
    el(&mut meta, 0x0002, 0x0002, b"UI", sop_class);
    el(&mut meta, 0x0002, 0x0003, b"UI", instance);
    el(&mut meta, 0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0");
    let mut d = vec![0u8; 128];
    d.extend_from_slice(b"DICM");
    el(
        &mut d,
        0x0002,
        0x0000,
        b"UL",
        &(meta.len() as u32).to_le_bytes(),
    );
    d.extend_from_slice(&meta);
    el(&mut d, 0x0008, 0x0016, b"UI", sop_class);
    el(&mut d, 0x0008, 0x0018, b"UI", instance);
    let modality: &[u8] = if sop_class.starts_with(b"1.2.840.10008.5.1.4.1.1.2") {
        b"CT"
    } else {
        b"OT"
    };
    el(&mut d, 0x0008, 0x0060, b"CS", modality);
    el(&mut d, 0x0008, 0x1030, b"LO", b"CHEST W/O CONTRAST");
    // A sequence of undefined length (Referenced Study Sequence) with one item of defined
    // length.
    d.extend_from_slice(&[
        0x08, 0x00, 0x10, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    let mut item = Vec::new();
    el(&mut item, 0x0008, 0x1155, b"UI", b"1.2.3.4\0");
    d.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
    d.extend_from_slice(&(item.len() as u32).to_le_bytes());
    d.extend_from_slice(&item);
    d.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    el(&mut d, 0x0010, 0x0010, b"PN", b"LI^LEI");
    let (samples, photometric, bits, stored, signed): (u16, &[u8], u16, u16, u16) = match kind {
        Sample::Ct => (1, b"MONOCHROME2 ", 16, 16, 0),
        Sample::SignedCt => (1, b"MONOCHROME2 ", 16, 12, 1),
        Sample::Gray8 => (1, b"MONOCHROME2 ", 8, 8, 0),
        Sample::Rgb => (3, b"RGB ", 8, 8, 0),
    };
    el(
        &mut d,
        0x0020,
        0x000D,
        b"UI",
        b"1.2.826.0.1.3680043.10.1434.1\0",
    );
    el(
        &mut d,
        0x0020,
        0x000E,
        b"UI",
        b"1.2.826.0.1.3680043.10.1434.1.2\0",
    );
    el(&mut d, 0x0028, 0x0002, b"US", &samples.to_le_bytes());
    el(&mut d, 0x0028, 0x0004, b"CS", photometric);
    if samples == 3 {
        el(&mut d, 0x0028, 0x0006, b"US", &0u16.to_le_bytes());
    }
    el(&mut d, 0x0028, 0x0010, b"US", &rows.to_le_bytes());
    el(&mut d, 0x0028, 0x0011, b"US", &cols.to_le_bytes());
    el(&mut d, 0x0028, 0x0100, b"US", &bits.to_le_bytes());
    el(&mut d, 0x0028, 0x0101, b"US", &stored.to_le_bytes());
    el(&mut d, 0x0028, 0x0102, b"US", &(stored - 1).to_le_bytes());
    el(&mut d, 0x0028, 0x0103, b"US", &signed.to_le_bytes());
    if kind == Sample::Ct {
        el(&mut d, 0x0028, 0x1050, b"DS", b"40");
        el(&mut d, 0x0028, 0x1051, b"DS", b"400 ");
        el(&mut d, 0x0028, 0x1052, b"DS", b"-1024");
        el(&mut d, 0x0028, 0x1053, b"DS", b"1 ");
    }
    let (r, c) = (u32::from(rows), u32::from(cols));
    let mut px = Vec::with_capacity(rows as usize * cols as usize * 3);
    for y in 0..r {
        for x in 0..c {
            match kind {
                Sample::Ct => {
                    px.extend_from_slice(&(((x + y) * 2000 / (r + c)) as u16).to_le_bytes());
                }
                Sample::SignedCt => {
                    let v = ((x + y) * 4095 / (r + c).saturating_sub(2).max(1)) as i32 - 2048;
                    px.extend_from_slice(&(v.min(2047) as i16).to_le_bytes());
                }
                Sample::Gray8 => {
                    let square = x > c / 4 && x < c / 2 && y > r / 4 && y < r / 2;
                    px.push(if square {
                        250
                    } else {
                        ((x + y) * 200 / (r + c)) as u8
                    });
                }
                Sample::Rgb => {
                    px.extend_from_slice(&[
                        (x * 255 / c) as u8,
                        (y * 255 / r) as u8,
                        ((x + y) * 255 / (r + c)) as u8,
                    ]);
                }
            }
        }
    }
    if px.len() % 2 == 1 {
        px.push(0);
    }
    let vr = if bits == 8 { b"OB" } else { b"OW" };
    el(&mut d, 0x7FE0, 0x0010, vr, &px);
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
    fn full_range_ycbcr_is_shown_as_rgb() {
        // PS3.3 C.7.6.3.1.2: gray stays gray; pure red, green and blue (their YCbCr rounded to
        // whole levels) come back within a level.
        assert_eq!(ybr_to_rgb([128, 128, 128]), [128, 128, 128]);
        let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 1);
        assert!(near(ybr_to_rgb([76, 85, 255]), [255, 0, 0]));
        assert!(near(ybr_to_rgb([150, 44, 21]), [0, 255, 0]));
        assert!(near(ybr_to_rgb([29, 255, 107]), [0, 0, 255]));
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
