//! The fuzz targets (`huizhen::fuzz`) in every test run, without coverage guidance: each
//! target's seeds, everything committed under `fuzz/corpus/<target>/` (what coverage-guided
//! runs kept) and `fuzz/regressions/<target>/` (inputs that once crashed a target, each kept
//! after its fix), and a few thousand deterministic mutations of them. Any panic fails the
//! test and names the target and the input. `HUIZHEN_WRITE_CORPUS=1` writes the seeds into
//! `fuzz/corpus/` (where cargo-fuzz starts).

use std::path::{Path, PathBuf};

use huizhen::fuzz::{TARGETS, seeds};

/// Mutations of the inputs per target: enough to reach the error paths of each parser, few
/// enough for a debug build on a small machine.
const MUTATIONS: usize = 600;

/// xorshift64*: deterministic, so a failure reproduces.
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

/// A copy of `input` with bytes overwritten, inserted, removed, duplicated, or cut.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(6) {
        match rng.below(5) {
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
            3 if !v.is_empty() => {
                let (a, b) = (rng.below(v.len()), rng.below(v.len()));
                let (a, b) = (a.min(b), a.max(b).min(a + 64));
                let copy = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, copy);
            }
            _ => {
                let n = rng.below(v.len() + 1);
                v.truncate(n);
            }
        }
    }
    v
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("corpus file readable");
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Runs `target` on `input`; a panic names both.
fn run(name: &str, target: fn(&[u8]), input: &[u8], what: &str) {
    if std::panic::catch_unwind(|| target(input)).is_err() {
        panic!(
            "fuzz target {name} panicked on {what}: {} bytes, first 64: {:02x?}",
            input.len(),
            &input[..input.len().min(64)]
        );
    }
}

#[test]
fn every_target_survives_its_corpus_regressions_and_mutations() {
    let write = std::env::var_os("HUIZHEN_WRITE_CORPUS").is_some();
    for (i, (name, target)) in TARGETS.iter().enumerate() {
        let own = seeds(name);
        assert!(!own.is_empty(), "target {name} has no seeds");
        if write {
            let dir = fuzz_dir().join("corpus").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for (n, seed) in own.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{n}")), seed).unwrap();
            }
        }
        assert!(
            fuzz_dir()
                .join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "target {name} has no fuzz/fuzz_targets/{name}.rs"
        );
        let mut inputs: Vec<Vec<u8>> = own;
        for sub in ["corpus", "regressions"] {
            for (path, bytes) in files(&fuzz_dir().join(sub).join(name)) {
                run(name, *target, &bytes, &path.display().to_string());
                inputs.push(bytes);
            }
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        for round in 0..MUTATIONS {
            let input = mutate(&mut rng, &inputs[round % inputs.len()]);
            run(name, *target, &input, &format!("mutation {round}"));
        }
    }
}

#[test]
fn every_target_has_a_fuzz_binary_and_nothing_is_left_out() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut declared: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        // The package itself, and `any`: every target in one binary, chosen at run time.
        .filter(|n| *n != "huizhen-fuzz" && *n != "any")
        .collect();
    declared.sort();
    let mut known: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    known.sort();
    assert_eq!(declared, known);
}
