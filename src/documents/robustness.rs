//! Every parser of untrusted document bytes, fed corrupted and random input: each must answer
//! with a value or an error, never a panic. (A stand-in for fuzz targets, which need a nightly
//! toolchain this project does not use; deterministic, so a failure reproduces.)

use std::io::Write;

use super::{annotation, dicom, ecg, kind, render};

/// xorshift64*: small, deterministic, good enough to scramble bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Copies `seed` with a few bytes overwritten, inserted or removed, and maybe truncated.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            _ => {
                let n = rng.below(v.len() + 1);
                v.truncate(n);
            }
        }
    }
    v
}

#[test]
fn document_parsers_never_panic_on_mutated_input() {
    let seeds: Vec<Vec<u8>> = vec![
        dicom::sample(6, 5),
        b"# sample_rate_hz=250\nI,II\n0.1,0.2\n0.3,0.4\n".to_vec(),
        br#"{"sample_rate_hz": 500, "leads": {"II": [0, 0.5, 1.0]}}"#.to_vec(),
        b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n".to_vec(),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
        "转诊信: 血压 150/95".as_bytes().to_vec(),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..4000 {
        let seed = &seeds[round % seeds.len()];
        let bytes = if round % 10 == 9 {
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        } else {
            mutate(&mut rng, seed)
        };
        let _ = kind::detect("x.dcm", &bytes);
        let _ = dicom::info(&bytes);
        let _ = dicom::render_png(&bytes, 1 << 20);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = ecg::parse(text);
        }
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let _ = annotation::parse(value);
        }
    }
}

/// A small PDF with what the render checks look at: a compressed content stream with an inline
/// image of `side` × `side` (four bytes of data), an image, a form, an LZW stream, inherited
/// resources.
fn pdf_seed(side: u32) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let content = format!("q 10 0 0 10 0 0 cm BI /W {side} /H {side} /BPC 8 /CS /G ID ");
    z.write_all(content.as_bytes()).unwrap();
    z.write_all(b"\x01\x02\x03\x04 EI Q /Im1 Do /Fm1 Do")
        .unwrap();
    let content = z.finish().unwrap();
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 /Resources << /XObject << /Im1 5 0 R /Fm1 6 0 R >> >> >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R >>".to_vec(),
        [format!("<< /Filter /FlateDecode /Length {} >>\nstream\n", content.len()).as_bytes(), &content, b"\nendstream"].concat(),
        b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /BitsPerComponent 8 /ColorSpace /DeviceGray /Filter /AHx /Length 9 >>\nstream\n01020304>\nendstream".to_vec(),
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 10 10] /Filter /LZWDecode /Length 4 >>\nstream\n\x80\x0b\x60\x50\nendstream".to_vec(),
    ];
    render::pdf_of_objects(&objects, "")
}

#[test]
fn pdf_render_checks_never_panic_on_mutated_input() {
    let seed = pdf_seed(2);
    let limits = render::Limits {
        max_pixels: 1 << 20,
        max_stream_bytes: 1 << 20,
        max_page_bytes: 4 << 20,
    };
    assert_eq!(render::check_bytes(&seed, &limits), Some(vec![Ok(())]));
    // The walk reaches the page's streams: 100 bytes are too few for them.
    let tight = render::Limits {
        max_page_bytes: 100,
        ..limits
    };
    assert!(matches!(
        render::check_bytes(&seed, &tight).as_deref(),
        Some([Err(_)])
    ));
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..1500 {
        let _ = render::check_bytes(&mutate(&mut rng, &seed), &limits);
    }
}
