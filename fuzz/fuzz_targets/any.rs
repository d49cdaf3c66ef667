//! Every target in one binary, chosen by `HUIZHEN_FUZZ_TARGET`: what `scripts/fuzz.sh` carries
//! to another machine for long runs (one file to copy instead of ten, each of which would link
//! the whole server). Coverage counters then span every target's code, which costs libFuzzer
//! a little speed and nothing in what it finds.
#![no_main]

use std::sync::OnceLock;

fn target() -> huizhen::fuzz::Target {
    static TARGET: OnceLock<huizhen::fuzz::Target> = OnceLock::new();
    *TARGET.get_or_init(|| {
        let name = std::env::var("HUIZHEN_FUZZ_TARGET").unwrap_or_default();
        huizhen::fuzz::TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| {
                let names: Vec<&str> = huizhen::fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
                eprintln!("HUIZHEN_FUZZ_TARGET must name one of: {}", names.join(", "));
                std::process::exit(2)
            })
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| target()(data));
