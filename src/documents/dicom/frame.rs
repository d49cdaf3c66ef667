//! The first frame's samples, as uncompressed little-endian bytes (interleaved when in colour),
//! whatever the transfer syntax they came in: read in place when uncompressed; decoded by
//! jpeg-decoder (JPEG baseline, extended, lossless), dicom-rs's registry (RLE lossless) or
//! hayro-jpeg2000 (JPEG 2000) when compressed.
//!
//! JPEG goes to jpeg-decoder directly rather than through dicom-rs's JPEG adapter: the adapter
//! is a thin wrapper that sets no decoding limit and panics on a stream larger than its header,
//! and enabling it brings in dicom-rs's JPEG *encoder* (jpeg-encoder, under the IJG licence,
//! which deny.toml does not allow) for nothing.
//!
//! A decoder sees a stream only after it was checked to describe the image the header
//! describes (a JPEG frame header's size, components and precision; RLE's segment table and
//! what each segment unpacks to; a JPEG 2000 codestream's size, components and depth), because
//! the decoders trust their streams: dicom-rs's RLE adapter sizes a table from the stream's
//! segment count (up to 4 billion entries), unpacks a segment whole before looking at its
//! length (PackBits unpacks 2 bytes into up to 128), and indexes past a short segment. What a
//! check cannot foresee, a decoder's own panic, is contained and refused like any other damaged
//! image.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use dicom_encoding::TransferSyntaxIndex;
use dicom_encoding::adapters::{PixelDataObject, RawPixelData};
use dicom_encoding::transfer_syntax::Codec as Encoding;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::layout::Pixels;
use super::{DicomError, EXPLICIT_LE, IMPLICIT_LE, ImageParams, MAX_DECODED_BYTES};

const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const JPEG_LOSSLESS: &str = "1.2.840.10008.1.2.4.57";
const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
const JPEG_2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";
const JPEG_2000: &str = "1.2.840.10008.1.2.4.91";

/// How a transfer syntax's frames are turned into samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    /// Uncompressed, read where it lies.
    Native,
    /// jpeg-decoder: baseline, extended (8-bit), lossless.
    Jpeg,
    /// dicom-rs's RLE lossless adapter.
    Rle,
    /// hayro-jpeg2000.
    Jpeg2000,
}

/// The transfer syntax's codec, or the refusal that names it. Not decoded, and why: JPEG-LS
/// (CharLS, the only decoder dicom-rs has, is C++ parsing strangers' files in the server
/// process, and its build needs cmake), HTJ2K (hayro-jpeg2000 0.5 does not read it), JPEG XL, video, the JPIP references,
/// and the encapsulated-uncompressed and retired JPEG processes nobody sends.
pub(super) fn codec(uid: &str) -> Result<Codec, DicomError> {
    match uid {
        IMPLICIT_LE | EXPLICIT_LE => Ok(Codec::Native),
        JPEG_BASELINE | JPEG_EXTENDED | JPEG_LOSSLESS | JPEG_LOSSLESS_SV1 => Ok(Codec::Jpeg),
        RLE_LOSSLESS => Ok(Codec::Rle),
        JPEG_2000_LOSSLESS | JPEG_2000 => Ok(Codec::Jpeg2000),
        _ => Err(refusal(uid)),
    }
}

/// Whether the data set itself is little endian and not deflated, so it can be walked and read
/// without inflating it (deflate's output cannot be bounded before inflating; explicit big
/// endian is retired).
pub(super) fn little_endian_data_set(uid: &str) -> bool {
    !matches!(
        uid,
        "1.2.840.10008.1.2.2"
            | "1.2.840.10008.1.2.1.99"
            | "1.2.840.10008.1.2.4.95"
            | "1.2.840.10008.1.2.4.205"
    )
}

/// The refusal for a transfer syntax not decoded here, named as dicom-rs's registry names it.
pub(super) fn refusal(uid: &str) -> DicomError {
    let uid: String = uid
        .chars()
        .filter(char::is_ascii_graphic)
        .take(64)
        .collect();
    let name = TransferSyntaxRegistry
        .get(&uid)
        .map(|ts| ts.name().to_owned())
        .unwrap_or_else(|| "an unknown transfer syntax".to_owned());
    DicomError::UnsupportedTransferSyntax { name, uid }
}

/// The first frame's samples: `img.frame_bytes()` of them, little endian, interleaved.
pub(super) fn first<'a>(
    pixels: &Pixels<'a>,
    img: &ImageParams,
    transfer_syntax: &str,
) -> Result<Cow<'a, [u8]>, DicomError> {
    let short = DicomError::Format("pixel data shorter than the image");
    match (pixels, img.codec) {
        (Pixels::Native(data), Codec::Native) => {
            Ok(Cow::Borrowed(data.get(..img.frame_bytes()).ok_or(short)?))
        }
        (
            Pixels::Encapsulated {
                offset_table,
                fragments,
            },
            codec,
        ) => {
            let stream = first_stream(offset_table, fragments, img.frames)?;
            let decoded = match codec {
                Codec::Jpeg => {
                    check_jpeg(&stream, img)?;
                    jpeg(&stream, img)?
                }
                Codec::Rle => {
                    check_rle(&stream, img)?;
                    with_registry(transfer_syntax, &stream, img)?
                }
                Codec::Jpeg2000 => jpeg2000(&stream, img)?,
                Codec::Native => {
                    return Err(DicomError::Unsupported(
                        "encapsulated pixel data in an uncompressed transfer syntax".into(),
                    ));
                }
            };
            if decoded.len() < img.frame_bytes() {
                return Err(DicomError::Format(
                    "the decoded frame is shorter than the image",
                ));
            }
            Ok(Cow::Owned(decoded))
        }
        _ => Err(DicomError::Unsupported(
            "native pixel data in a compressed transfer syntax".into(),
        )),
    }
}

/// The first frame's compressed stream: its own fragment when each frame has one, all of them
/// for a single frame, else the fragments before the second frame's offset in the basic
/// offset table (offsets count from the first fragment's item tag, 8 bytes of tag and length
/// per item).
fn first_stream<'a>(
    offset_table: &[u8],
    fragments: &[&'a [u8]],
    frames: usize,
) -> Result<Cow<'a, [u8]>, DicomError> {
    let Some(first) = fragments.first() else {
        return Err(DicomError::Format("no pixel data fragments"));
    };
    if fragments.len() == 1 || fragments.len() == frames {
        return Ok(Cow::Borrowed(first));
    }
    if frames == 1 {
        return Ok(Cow::Owned(fragments.concat()));
    }
    let offset = |i: usize| {
        offset_table
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let (Some(start), Some(end)) = (offset(0), offset(1)) else {
        return Err(DicomError::Unsupported(
            "the first frame's fragments cannot be told apart (no basic offset table)".into(),
        ));
    };
    let mut at = 0usize;
    let mut stream = Vec::new();
    for f in fragments {
        if at >= end {
            break;
        }
        if at >= start {
            stream.extend_from_slice(f);
        }
        at += f.len() + 8;
    }
    if stream.is_empty() {
        return Err(DicomError::Format(
            "the basic offset table points at no fragment",
        ));
    }
    Ok(Cow::Owned(stream))
}

/// A decoder's panic, contained and refused as damage.
fn contained<T>(decode: impl FnOnce() -> T) -> Result<T, DicomError> {
    catch_unwind(AssertUnwindSafe(decode)).map_err(|_| {
        DicomError::Unsupported("the compressed image is damaged (its decoder stopped)".into())
    })
}

/// One frame as dicom-rs's decoders see a DICOM object: the header's image description and the
/// one compressed stream, nothing else (so they never copy other frames' fragments).
struct FirstFrame<'s> {
    transfer_syntax: &'s str,
    img: &'s ImageParams,
    stream: &'s [u8],
}

impl PixelDataObject for FirstFrame<'_> {
    fn transfer_syntax_uid(&self) -> &str {
        self.transfer_syntax
    }
    fn rows(&self) -> Option<u16> {
        u16::try_from(self.img.rows).ok()
    }
    fn cols(&self) -> Option<u16> {
        u16::try_from(self.img.cols).ok()
    }
    fn samples_per_pixel(&self) -> Option<u16> {
        u16::try_from(self.img.samples).ok()
    }
    fn bits_allocated(&self) -> Option<u16> {
        u16::try_from(self.img.bits).ok()
    }
    fn bits_stored(&self) -> Option<u16> {
        u16::try_from(self.img.bits_stored).ok()
    }
    fn photometric_interpretation(&self) -> Option<&str> {
        None
    }
    fn number_of_frames(&self) -> Option<u32> {
        Some(1)
    }
    fn number_of_fragments(&self) -> Option<u32> {
        Some(1)
    }
    fn fragment(&self, fragment: usize) -> Option<Cow<'_, [u8]>> {
        (fragment == 0).then_some(Cow::Borrowed(self.stream))
    }
    fn offset_table(&self) -> Option<Cow<'_, [u32]>> {
        None
    }
    fn raw_pixel_data(&self) -> Option<RawPixelData> {
        Some(RawPixelData {
            fragments: vec![self.stream.to_vec()].into(),
            offset_table: Default::default(),
        })
    }
}

/// Decodes the stream with the registry's adapter for the transfer syntax (RLE).
fn with_registry(uid: &str, stream: &[u8], img: &ImageParams) -> Result<Vec<u8>, DicomError> {
    let ts = TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| refusal(uid))?;
    let Encoding::EncapsulatedPixelData(Some(reader), _) = ts.codec() else {
        return Err(refusal(uid));
    };
    let object = FirstFrame {
        transfer_syntax: uid,
        img,
        stream,
    };
    let mut out = Vec::new();
    contained(|| reader.decode_frame(&object, 0, &mut out))?.map_err(|e| {
        DicomError::Unsupported(format!("the compressed image cannot be decoded: {e}"))
    })?;
    Ok(out)
}

/// A JPEG stream decoded by jpeg-decoder, its output capped at [`MAX_DECODED_BYTES`] (the
/// header check already made it the frame's size). 8-bit samples come as bytes, 9 to 16 bits
/// as native-endian 16-bit words (little endian on every target this server builds for),
/// three components as RGB.
fn jpeg(stream: &[u8], img: &ImageParams) -> Result<Vec<u8>, DicomError> {
    use jpeg_decoder::{Decoder, PixelFormat};
    let mut decoder = Decoder::new(stream);
    decoder.set_max_decoding_buffer_size(MAX_DECODED_BYTES);
    let decoded = contained(|| decoder.decode())?
        .map_err(|e| DicomError::Unsupported(format!("the JPEG stream cannot be decoded: {e}")))?;
    let info = decoder
        .info()
        .ok_or(DicomError::Format("damaged JPEG stream"))?;
    let format_fits = matches!(
        (info.pixel_format, img.samples, img.bits),
        (PixelFormat::L8, 1, 8) | (PixelFormat::L16, 1, 16) | (PixelFormat::RGB24, 3, 8)
    );
    if !format_fits || (usize::from(info.width), usize::from(info.height)) != (img.cols, img.rows) {
        return Err(mismatch("the decoded image"));
    }
    if cfg!(target_endian = "big") && img.bits == 16 {
        return Err(DicomError::Unsupported(
            "16-bit JPEG on a big-endian server".into(),
        ));
    }
    Ok(decoded)
}

fn mismatch(what: &str) -> DicomError {
    DicomError::Unsupported(format!(
        "the compressed image does not match its header ({what})"
    ))
}

/// The JPEG stream's frame header (the first SOFn segment) against the image: the same size
/// and components, and 8-bit samples for 8 bits allocated, 9 to 16 for 16.
fn check_jpeg(stream: &[u8], img: &ImageParams) -> Result<(), DicomError> {
    let damaged = || DicomError::Format("damaged JPEG stream");
    if !stream.starts_with(&[0xFF, 0xD8]) {
        return Err(damaged());
    }
    let mut i = 2;
    loop {
        if stream.get(i) != Some(&0xFF) {
            return Err(damaged());
        }
        while stream.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let marker = *stream.get(i + 1).ok_or_else(damaged)?;
        let length = stream
            .get(i + 2..i + 4)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or_else(damaged)?;
        match marker {
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let h = stream.get(i + 4..i + 10).ok_or_else(damaged)?;
                let precision = usize::from(h[0]);
                let height = usize::from(u16::from_be_bytes([h[1], h[2]]));
                let width = usize::from(u16::from_be_bytes([h[3], h[4]]));
                let components = usize::from(h[5]);
                if (width, height) != (img.cols, img.rows) {
                    return Err(mismatch(&format!("{width} × {height} pixels")));
                }
                if components != img.samples {
                    return Err(mismatch(&format!("{components} components")));
                }
                let depth_fits = match img.bits {
                    8 => precision <= 8,
                    _ => (9..=16).contains(&precision),
                };
                if !depth_fits {
                    return Err(mismatch(&format!("{precision}-bit samples")));
                }
                return Ok(());
            }
            // A scan, the end, or a marker without a length before any frame header.
            0x01 | 0xD0..=0xDA => return Err(damaged()),
            _ if length < 2 => return Err(damaged()),
            _ => i += 2 + length,
        }
    }
}

/// RLE's header (PS3.5 G.3.1: a segment count and 15 offsets) against the image, and what each
/// segment unpacks to: one segment per byte of a sample, each exactly one byte a pixel (a few
/// bytes of padding allowed).
fn check_rle(stream: &[u8], img: &ImageParams) -> Result<(), DicomError> {
    let damaged = |m: &'static str| DicomError::Format(m);
    let word = |i: usize| {
        stream
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let header = damaged("damaged RLE header");
    if stream.len() < 64 {
        return Err(header);
    }
    let segments = word(0).ok_or(header.clone())?;
    if segments != img.samples * img.bits / 8 {
        return Err(mismatch(&format!("{segments} RLE segments")));
    }
    let pixels = img.rows * img.cols;
    for s in 0..segments {
        let start = word(1 + s).ok_or(header.clone())?;
        let end = if s + 1 == segments {
            stream.len()
        } else {
            word(2 + s).ok_or(header.clone())?
        };
        if start < 64 || start > end || end > stream.len() {
            return Err(header);
        }
        let unpacked = packbits_len(&stream[start..end]).ok_or(damaged("damaged RLE segment"))?;
        if unpacked < pixels || unpacked > pixels + 128 {
            return Err(mismatch(&format!("an RLE segment of {unpacked} bytes")));
        }
    }
    Ok(())
}

/// What a PackBits segment unpacks to, counted the way dicom-rs's reader unpacks it (a literal
/// run cut short by the end copies what is there; a repeat with no byte to repeat fails).
fn packbits_len(segment: &[u8]) -> Option<usize> {
    let (mut i, mut n) = (0usize, 0usize);
    while i < segment.len() {
        let h = segment[i] as i8;
        i += 1;
        match h {
            -127..=-1 => {
                segment.get(i)?;
                n += (1 - isize::from(h)) as usize;
                i += 1;
            }
            0..=127 => {
                let run = h as usize + 1;
                n += run.min(segment.len() - i);
                i += run;
            }
            // -128 is a no-op.
            _ => {}
        }
    }
    Some(n)
}

/// A JPEG 2000 codestream (or JP2 file) decoded by hayro-jpeg2000, once its header was checked
/// against the image. hayro returns each component's samples as floats in the unsigned range
/// of the component's depth (it applies the unsigned level shift to signed components too), so
/// a signed component is shifted back.
fn jpeg2000(stream: &[u8], img: &ImageParams) -> Result<Vec<u8>, DicomError> {
    use hayro_jpeg2000::{DecodeSettings, DecoderContext, Image};
    let unreadable = |e: &dyn std::fmt::Display| {
        DicomError::Unsupported(format!("the JPEG 2000 stream cannot be read: {e}"))
    };
    let settings = DecodeSettings {
        resolve_palette_indices: false,
        ..DecodeSettings::default()
    };
    let image = contained(|| Image::new(stream, &settings))?.map_err(|e| unreadable(&e))?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    if (width, height) != (img.cols, img.rows) {
        return Err(mismatch(&format!("{width} × {height} pixels")));
    }
    let channels = usize::from(image.color_space().num_channels()) + usize::from(image.has_alpha());
    if channels != img.samples {
        return Err(mismatch(&format!("{channels} components")));
    }
    let depth = usize::from(image.original_bit_depth());
    if depth == 0 || depth > img.bits {
        return Err(mismatch(&format!("{depth}-bit samples")));
    }
    let mut context = DecoderContext::default();
    let decoded = contained(|| image.decode(&mut context))?.map_err(|e| unreadable(&e))?;
    let components = decoded.components();
    let pixels = img.rows * img.cols;
    if components.len() != img.samples || components.iter().any(|c| c.samples().len() != pixels) {
        return Err(mismatch("its components"));
    }
    let shift = if img.signed && img.bits == 16 {
        f32::from(1u16 << (depth - 1).min(15))
    } else {
        0.0
    };
    let mut out = Vec::with_capacity(img.frame_bytes());
    for i in 0..pixels {
        for c in components {
            let v = c.samples()[i].round();
            if img.bits == 8 {
                out.push(v.clamp(0.0, 255.0) as u8);
            } else if img.signed {
                let v = (v - shift).clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
                out.extend_from_slice(&v.to_le_bytes());
            } else {
                out.extend_from_slice(&(v.clamp(0.0, 65535.0) as u16).to_le_bytes());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_frame_is_its_own_fragment_or_what_the_offset_table_says() {
        let (a, b, c, d) = (&[1u8, 2][..], &[3u8][..], &[4u8, 5, 6][..], &[7u8][..]);
        // One fragment a frame, or a single frame over several fragments.
        assert_eq!(&*first_stream(&[], &[a, b], 2).unwrap(), a);
        assert_eq!(
            &*first_stream(&[], &[a, b, c], 1).unwrap(),
            [1, 2, 3, 4, 5, 6]
        );
        // Two frames over four fragments: the table says the second starts at the third
        // fragment (8 + 2 + 8 + 1 = 19 bytes from the first item's tag).
        let table: Vec<u8> = [0u32, 19].iter().flat_map(|o| o.to_le_bytes()).collect();
        assert_eq!(&*first_stream(&table, &[a, b, c, d], 2).unwrap(), [1, 2, 3]);
        // Without a table they cannot be told apart; with no fragment there is nothing.
        assert!(matches!(
            first_stream(&[], &[a, b, c, d], 2),
            Err(DicomError::Unsupported(_))
        ));
        assert!(first_stream(&[], &[], 1).is_err());
    }

    #[test]
    fn packbits_is_counted_as_dicom_rs_unpacks_it() {
        // A repeat of 3, a literal of 2, a no-op: 5 bytes.
        assert_eq!(packbits_len(&[0xFE, 9, 0x01, 1, 2, 0x80]), Some(5));
        // A literal cut short copies what is there; a repeat with nothing to repeat fails.
        assert_eq!(packbits_len(&[0x05, 1, 2]), Some(2));
        assert_eq!(packbits_len(&[0x81]), None);
        // Two bytes unpack to 128: the ratio the segment check exists for.
        assert_eq!(packbits_len(&[0x81, 0]), Some(128));
    }
}
