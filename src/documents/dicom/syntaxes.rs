//! Every transfer syntax the viewer shows, on real files: `tests/fixtures/dicom/` holds small
//! images written by [`super::sample_of`] and compressed by GDCM's `gdcmconv` (the commands are
//! in that folder's README.md and `make.sh`). Each compressed frame must decode to the samples
//! of its uncompressed original (exactly when lossless), and render to the same PNG; the
//! syntaxes not decoded here must be refused by name; and the header limits must refuse a
//! compressed file before its frame is decoded.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dicom")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first frame's samples (little endian, interleaved), and the transfer syntax.
fn samples(bytes: &[u8]) -> (Vec<u8>, String) {
    let p = parse(bytes).unwrap();
    let img = image_params(&p).unwrap();
    let pixels = p.layout.pixels.as_ref().unwrap();
    let frame = frame::first(pixels, &img, &p.layout.transfer_syntax).unwrap();
    (frame.into_owned(), p.layout.transfer_syntax.clone())
}

const ORIGINALS: [(&str, Sample, u16); 4] = [
    ("ct.dcm", Sample::Ct, 64),
    ("signed.dcm", Sample::SignedCt, 64),
    ("gray8.dcm", Sample::Gray8, 64),
    ("rgb.dcm", Sample::Rgb, 32),
];

/// Not a test: writes the uncompressed originals into `$HUIZHEN_DICOM_FIXTURES`, for `make.sh`.
#[test]
#[ignore = "a tool: writes the fixtures' originals (tests/fixtures/dicom/make.sh runs it)"]
fn write_originals() {
    let dir = std::env::var("HUIZHEN_DICOM_FIXTURES").expect("HUIZHEN_DICOM_FIXTURES");
    for (name, kind, side) in ORIGINALS {
        std::fs::write(format!("{dir}/{name}"), sample_of(side, side, kind)).unwrap();
    }
}

#[test]
fn the_committed_originals_are_what_the_samples_draw() {
    for (name, kind, side) in ORIGINALS {
        assert_eq!(fixture(name), sample_of(side, side, kind), "{name}");
    }
}

/// (compressed file, its original, transfer syntax, root-mean-square difference of the samples
/// allowed: 0 for the lossless ones, which must be equal)
const COMPRESSED: &[(&str, &str, &str, u16)] = &[
    (
        "ct-jpeg-lossless.dcm",
        "ct.dcm",
        "1.2.840.10008.1.2.4.70",
        0,
    ),
    ("ct-rle.dcm", "ct.dcm", "1.2.840.10008.1.2.5", 0),
    ("ct-j2k.dcm", "ct.dcm", "1.2.840.10008.1.2.4.90", 0),
    (
        "signed-jpeg-lossless.dcm",
        "signed.dcm",
        "1.2.840.10008.1.2.4.70",
        0,
    ),
    ("signed-rle.dcm", "signed.dcm", "1.2.840.10008.1.2.5", 0),
    ("signed-j2k.dcm", "signed.dcm", "1.2.840.10008.1.2.4.90", 0),
    (
        "gray8-jpeg-baseline.dcm",
        "gray8.dcm",
        "1.2.840.10008.1.2.4.50",
        2,
    ),
    (
        "gray8-j2k-lossy.dcm",
        "gray8.dcm",
        "1.2.840.10008.1.2.4.91",
        4,
    ),
    (
        "rgb-jpeg-lossless.dcm",
        "rgb.dcm",
        "1.2.840.10008.1.2.4.70",
        0,
    ),
    ("rgb-rle.dcm", "rgb.dcm", "1.2.840.10008.1.2.5", 0),
    ("rgb-j2k.dcm", "rgb.dcm", "1.2.840.10008.1.2.4.90", 0),
    (
        "rgb-jpeg-baseline.dcm",
        "rgb.dcm",
        "1.2.840.10008.1.2.4.50",
        3,
    ),
];

/// The largest and the root-mean-square difference between two frames' samples.
fn differences(a: &[u8], b: &[u8], bits16: bool) -> (u16, f64) {
    assert_eq!(a.len(), b.len());
    let d: Vec<u16> = if bits16 {
        a.chunks_exact(2)
            .zip(b.chunks_exact(2))
            .map(|(x, y)| {
                i16::from_le_bytes([x[0], x[1]]).abs_diff(i16::from_le_bytes([y[0], y[1]]))
            })
            .collect()
    } else {
        a.iter()
            .zip(b)
            .map(|(x, y)| u16::from(x.abs_diff(*y)))
            .collect()
    };
    let squares: f64 = d.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    (*d.iter().max().unwrap(), (squares / d.len() as f64).sqrt())
}

#[test]
fn each_compressed_syntax_decodes_to_its_originals_samples() {
    for &(name, original, syntax, tolerance) in COMPRESSED {
        let (want, _) = samples(&fixture(original));
        let (got, ts) = samples(&fixture(name));
        assert_eq!(ts, syntax, "{name}");
        let bits16 = !original.starts_with("gray8") && !original.starts_with("rgb");
        let (largest, rms) = differences(&want, &got, bits16);
        println!("{name}: largest difference {largest}, root mean square {rms:.2}");
        assert!(
            rms <= f64::from(tolerance),
            "{name}: samples differ by {rms:.2} (root mean square; at most {tolerance})"
        );
        if tolerance == 0 {
            assert_eq!(got, want, "{name}");
            // Lossless: the viewer's image is the original's, byte for byte, whole and shrunk.
            for budget in [1 << 20, 300] {
                assert_eq!(
                    render_png(&fixture(name), budget).unwrap(),
                    render_png(&fixture(original), budget).unwrap(),
                    "{name} at {budget} pixels"
                );
            }
        } else {
            // Lossy, yet not empty: the decoded image is the original's, within the tolerance.
            assert!(got.iter().any(|&b| b != 0), "{name}");
            assert!(
                render_png(&fixture(name), 1 << 20)
                    .unwrap()
                    .starts_with(b"\x89PNG")
            );
        }
        let i = info(&fixture(name)).unwrap();
        assert_eq!(i.image_unavailable, None, "{name}");
        assert_eq!(i.transfer_syntax, syntax);
    }
}

#[test]
fn lossy_frames_decode_as_gdcm_decodes_them() {
    // GDCM's own decoders (libjpeg, OpenJPEG) wrote the `.gdcm-decoded.dcm` files; a decoder
    // may round an inverse transform differently by a level or two, no more. (Not for colour:
    // GDCM 3.0.21 writes its lossy colour JPEG's decoded samples still in YCbCr, labelled RGB.)
    for name in ["gray8-jpeg-baseline", "gray8-j2k-lossy"] {
        let (ours, _) = samples(&fixture(&format!("{name}.dcm")));
        let (gdcm, ts) = samples(&fixture(&format!("{name}.gdcm-decoded.dcm")));
        assert_eq!(ts, EXPLICIT_LE);
        let (largest, rms) = differences(&ours, &gdcm, false);
        println!("{name}: against GDCM, largest difference {largest}, root mean square {rms:.2}");
        assert!(largest <= 2, "{name}: {largest}");
    }
}

#[test]
fn signed_samples_keep_their_sign_through_each_decoder() {
    // The signed original runs from -2048 to 2047; without a window the frame's own range is
    // shown, so its darkest corner is black and its brightest white, as in the original.
    let (original, _) = samples(&fixture("signed.dcm"));
    let first = i16::from_le_bytes([original[0], original[1]]);
    assert_eq!(first, -2048);
    for name in [
        "signed-jpeg-lossless.dcm",
        "signed-rle.dcm",
        "signed-j2k.dcm",
    ] {
        let (got, _) = samples(&fixture(name));
        assert_eq!(i16::from_le_bytes([got[0], got[1]]), -2048, "{name}");
    }
}

#[test]
fn syntaxes_not_decoded_here_are_refused_by_name() {
    let d = fixture("ct-jpegls.dcm");
    let err = render_png(&d, 1 << 20).unwrap_err();
    assert!(
        matches!(&err, DicomError::UnsupportedTransferSyntax { uid, name }
            if uid == "1.2.840.10008.1.2.4.80" && name.contains("JPEG-LS")),
        "{err:?}"
    );
    // The header is still shown, with the reason there is no image.
    let i = info(&d).unwrap();
    assert_eq!(i.fields["Modality"], "CT");
    assert_eq!(i.transfer_syntax, "1.2.840.10008.1.2.4.80");
    assert!(i.image_unavailable.unwrap().contains("JPEG-LS"));
    // A syntax the registry does not know is refused with its UID.
    let unknown = retag(&fixture("ct-j2k.dcm"), "1.2.3.4.5.6.7.8.9.10.1");
    let err = render_png(&unknown, 1 << 20).unwrap_err();
    assert!(
        matches!(&err, DicomError::UnsupportedTransferSyntax { uid, .. } if uid == "1.2.3.4.5.6.7.8.9.10.1"),
        "{err:?}"
    );
    // Deflated data sets are refused before anything is inflated.
    let deflated = retag(&fixture("ct.dcm"), "1.2.840.10008.1.2.1.99");
    let err = info(&deflated).unwrap_err();
    assert!(
        matches!(&err, DicomError::UnsupportedTransferSyntax { uid, .. } if uid == "1.2.840.10008.1.2.1.99"),
        "{err:?}"
    );
}

/// The file with its transfer syntax UID (0002,0010) replaced by `uid`, its meta group length
/// (0002,0000) following.
fn retag(bytes: &[u8], uid: &str) -> Vec<u8> {
    let at = bytes
        .windows(6)
        .position(|w| w == [0x02, 0, 0x10, 0, b'U', b'I'])
        .unwrap();
    let old = usize::from(u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]));
    let mut value = uid.as_bytes().to_vec();
    if value.len() % 2 == 1 {
        value.push(0);
    }
    let mut out = bytes[..at + 6].to_vec();
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(&value);
    out.extend_from_slice(&bytes[at + 8 + old..]);
    let group = out
        .windows(8)
        .position(|w| w == [0x02, 0, 0, 0, b'U', b'L', 4, 0])
        .unwrap()
        + 8;
    let length = u32::from_le_bytes(out[group..group + 4].try_into().unwrap());
    let length = length as usize + value.len() - old;
    out[group..group + 4].copy_from_slice(&(length as u32).to_le_bytes());
    out
}

/// Overwrites the first explicit-VR US element `tag` (group, element) with `value`.
fn set_us(bytes: &mut [u8], group: u16, element: u16, value: u16) {
    let [g0, g1] = group.to_le_bytes();
    let [e0, e1] = element.to_le_bytes();
    let at = bytes
        .windows(8)
        .position(|w| w == [g0, g1, e0, e1, b'U', b'S', 2, 0])
        .unwrap()
        + 8;
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn a_compressed_frame_too_wide_is_refused_before_decoding() {
    // The header says 20000 columns: refused by size, before the stream is looked at (the
    // stream itself says 64 × 64, which would be refused as a mismatch).
    for name in ["ct-jpeg-lossless.dcm", "ct-rle.dcm", "ct-j2k.dcm"] {
        let mut d = fixture(name);
        set_us(&mut d, 0x0028, 0x0011, 20_000);
        let err = render_png(&d, 1 << 20).unwrap_err();
        assert!(
            matches!(&err, DicomError::TooLarge(m) if m.contains("16384")),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_compressed_frame_too_tall_is_refused_before_decoding() {
    let mut d = fixture("ct-j2k.dcm");
    set_us(&mut d, 0x0028, 0x0010, 16_385);
    let err = render_png(&d, 1 << 20).unwrap_err();
    assert!(
        matches!(&err, DicomError::TooLarge(m) if m.contains("16384")),
        "{err}"
    );
}

#[test]
fn a_compressed_frame_that_would_decode_past_the_limit_is_refused_before_decoding() {
    // 16384 × 16384 16-bit samples: within the side limit, but 512 MiB decoded.
    let mut d = fixture("ct-jpeg-lossless.dcm");
    set_us(&mut d, 0x0028, 0x0010, 16_384);
    set_us(&mut d, 0x0028, 0x0011, 16_384);
    let err = render_png(&d, 1 << 20).unwrap_err();
    assert!(
        matches!(&err, DicomError::TooLarge(m) if m.contains("512 MiB")),
        "{err}"
    );
    assert!(
        info(&d)
            .unwrap()
            .image_unavailable
            .unwrap()
            .contains("too large")
    );
}

#[test]
fn bits_and_samples_are_checked_from_the_header_before_decoding() {
    let mut d = fixture("ct-rle.dcm");
    set_us(&mut d, 0x0028, 0x0100, 32);
    let err = render_png(&d, 1 << 20).unwrap_err();
    assert!(
        matches!(&err, DicomError::Unsupported(m) if m.contains("16-bit")),
        "{err}"
    );
    let mut d = fixture("ct-j2k.dcm");
    set_us(&mut d, 0x0028, 0x0002, 4);
    let err = render_png(&d, 1 << 20).unwrap_err();
    assert!(
        matches!(&err, DicomError::Unsupported(m) if m.contains("RGB")),
        "{err}"
    );
}

#[test]
fn frames_are_checked_from_the_header_before_decoding() {
    // More frames than fragments: refused, nothing decoded.
    let d = fixture("ct-rle.dcm");
    let with_frames = insert_number_of_frames(&d, b"3 ");
    let err = render_png(&with_frames, 1 << 20).unwrap_err();
    assert!(
        matches!(&err, DicomError::Format(m) if m.contains("fragments")),
        "{err}"
    );
    let zero = insert_number_of_frames(&d, b"0 ");
    assert!(matches!(
        render_png(&zero, 1 << 20).unwrap_err(),
        DicomError::Format(_)
    ));
    // One frame said, one fragment there: shown.
    let one = insert_number_of_frames(&d, b"1 ");
    assert!(render_png(&one, 1 << 20).is_ok());
}

/// Adds Number of Frames (0028,0008) IS right before Rows (0028,0010), keeping the order.
fn insert_number_of_frames(bytes: &[u8], value: &[u8; 2]) -> Vec<u8> {
    let at = bytes
        .windows(6)
        .position(|w| w == [0x28, 0, 0x10, 0, b'U', b'S'])
        .unwrap();
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&[0x28, 0, 0x08, 0, b'I', b'S', 2, 0]);
    out.extend_from_slice(value);
    out.extend_from_slice(&bytes[at..]);
    out
}

#[test]
fn a_stream_that_disagrees_with_its_header_is_refused_not_decoded() {
    // The header says 32 × 32; each stream says 64 × 64. dicom-rs's JPEG adapter would copy a
    // larger image than it sized for (a panic); here it is a refusal.
    for name in ["ct-jpeg-lossless.dcm", "ct-j2k.dcm", "ct-rle.dcm"] {
        let mut d = fixture(name);
        set_us(&mut d, 0x0028, 0x0010, 32);
        set_us(&mut d, 0x0028, 0x0011, 32);
        let err = render_png(&d, 1 << 20).unwrap_err();
        assert!(
            matches!(&err, DicomError::Unsupported(m) if m.contains("does not match")),
            "{name}: {err}"
        );
    }
}

#[test]
fn damaged_streams_are_errors_not_panics() {
    for &(name, ..) in COMPRESSED {
        let good = fixture(name);
        // Truncations, and bytes flipped through the pixel data (the last part of the file).
        for n in (0..good.len()).step_by(61) {
            let _ = info(&good[..n]);
            let _ = render_png(&good[..n], 1 << 20);
        }
        let start = good.len() - good.len() / 3;
        for at in (start..good.len()).step_by(17) {
            let mut bad = good.clone();
            bad[at] ^= 0x5A;
            let _ = render_png(&bad, 1 << 20);
        }
    }
    // An RLE header that claims four billion segments, and one whose segment unpacks to far
    // more than the image (what dicom-rs would unpack whole first).
    let d = fixture("ct-rle.dcm");
    let header = d.windows(4).position(|w| w == [2, 0, 0, 0]).unwrap();
    let mut many = d.clone();
    many[header..header + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(render_png(&many, 1 << 20).is_err());
}

#[test]
fn a_huge_declared_length_is_refused_before_dicom_rs_reads_it() {
    // A data element declaring 3.9 GB in a file of a few hundred bytes: dicom-parser would
    // allocate it before reading; the layout walk refuses it first.
    let d = sample(4, 4);
    let at = d.windows(4).position(|w| w == [0x10, 0, 0x10, 0]).unwrap();
    // Patient's Name becomes an OB of 0xF000_0000 bytes.
    let mut bad = d[..at].to_vec();
    bad.extend_from_slice(&[0x10, 0, 0x10, 0, b'O', b'B', 0, 0]);
    bad.extend_from_slice(&0xF000_0000u32.to_le_bytes());
    bad.extend_from_slice(&[1, 2, 3, 4]);
    assert!(matches!(info(&bad).unwrap_err(), DicomError::Format(_)));
    // The same inside a sequence item, and as a fragment of encapsulated pixel data.
    let rle = fixture("ct-rle.dcm");
    let item = rle
        .windows(4)
        .rposition(|w| w == [0xFE, 0xFF, 0x00, 0xE0])
        .unwrap();
    let mut bad = rle.clone();
    bad[item + 4..item + 8].copy_from_slice(&0xF000_0000u32.to_le_bytes());
    assert!(matches!(
        render_png(&bad, 1 << 20).unwrap_err(),
        DicomError::Format(_)
    ));
}

#[test]
fn files_without_a_meta_group_length_are_still_read() {
    // dicom-object insists on (0002,0000); here only the header is read by dicom-object, from
    // the data set on, so files that lack it (as this module's own samples once did) still show.
    let d = sample(8, 8);
    let at = d.windows(4).position(|w| w == [0x02, 0, 0x00, 0]).unwrap();
    let without = [&d[..at], &d[at + 12..]].concat();
    let i = info(&without).unwrap();
    assert_eq!(i.fields["PatientName"], "LI^LEI");
    assert_eq!(
        render_png(&without, 1 << 20).unwrap(),
        render_png(&d, 1 << 20).unwrap()
    );
}

#[test]
fn chinese_names_in_gb18030_are_read_as_such() {
    // Specific Character Set GB18030, and a name in it: dicom-rs decodes it.
    let d = sample(4, 4);
    let name_at = d.windows(4).position(|w| w == [0x10, 0, 0x10, 0]).unwrap();
    let mut out = d[..name_at].to_vec();
    // (0008,0005) must come first among the data set's elements; after the meta group is fine
    // for dicom-rs as long as it precedes the text it applies to.
    let gb = b"\xc0\xee^\xc0\xda"; // 李^磊 in GB18030
    let mut with_cs = Vec::new();
    with_cs.extend_from_slice(&[0x08, 0, 0x05, 0, b'C', b'S', 8, 0]);
    with_cs.extend_from_slice(b"GB18030 ");
    let sop = out
        .windows(4)
        .position(|w| w == [0x08, 0, 0x16, 0])
        .unwrap();
    out.splice(sop..sop, with_cs);
    out.extend_from_slice(&[0x10, 0, 0x10, 0, b'P', b'N', 6, 0]);
    out.extend_from_slice(gb);
    out.push(b' ');
    let rest_at = name_at + 8 + usize::from(u16::from_le_bytes([d[name_at + 6], d[name_at + 7]]));
    out.extend_from_slice(&d[rest_at..]);
    assert_eq!(info(&out).unwrap().fields["PatientName"], "李^磊");
}
