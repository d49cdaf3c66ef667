//! Every parser of untrusted document bytes, fed corrupted and random input: each must answer
//! with a value or an error, never a panic. (A stand-in for fuzz targets, which need a nightly
//! toolchain this project does not use; deterministic, so a failure reproduces.)

use super::{annotation, dicom, ecg, kind};

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
        let _ = dicom::render_png(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = ecg::parse(text);
        }
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let _ = annotation::parse(value);
        }
    }
}
