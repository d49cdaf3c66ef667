//! The server's panic hook (`telemetry::install_panic_hook`, installed by `main`): a panic is
//! logged with where it happened and on which thread, never with its message, which is whatever
//! the panicking code formatted (here an address and a name). Alone in its file: the hook is
//! process-wide.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panic_is_logged_without_its_message() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    huizhen::telemetry::install_panic_hook();

    let worker = std::thread::Builder::new()
        .name("media-7".into())
        .spawn(|| panic!("no route for 203.0.113.9:5004 (participant Wang Xiuying)"))
        .unwrap();
    assert!(worker.join().is_err(), "the thread panicked");

    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("panic"), "the panic is logged: {log}");
    assert!(log.contains("media-7"), "with its thread: {log}");
    assert!(log.contains("tests/panic_log.rs:"), "and where: {log}");
    for secret in ["203.0.113.9", "Wang Xiuying", "no route"] {
        assert!(!log.contains(secret), "{secret} reached the log: {log}");
    }
}
