//! Pages of a PDF as PNG images, rendered on the server (hayro: pure Rust, no unsafe code), so
//! every browser shows the same page and annotations and follow mode line up with it exactly.
//!
//! Rendering untrusted PDFs is contained: it runs on the blocking pool (a panic in the renderer
//! becomes an error, not a crash), page sizes are capped, and each rendered page is cached on
//! disk under the document's SHA-256 so a page is rendered once however many people look at it.

use std::path::{Path, PathBuf};

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::Pdf;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{PixmapSettings, RenderCache, RenderSettings};

/// The widest page image served, in pixels (a 2x render of an A4 page is about 1200).
const MAX_PIXELS_WIDE: f32 = 2400.0;
pub const MAX_PAGES: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the PDF cannot be read: {0}")]
    Unreadable(String),
    #[error("the PDF has no page {0}")]
    NoSuchPage(usize),
    #[error("render cache I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn open(path: &Path) -> Result<Pdf, RenderError> {
    let data = std::fs::read(path)?;
    Pdf::new(data).map_err(|e| RenderError::Unreadable(format!("{e:?}")))
}

/// Number of pages (at most [`MAX_PAGES`] are offered).
pub fn page_count(path: &Path) -> Result<usize, RenderError> {
    Ok(open(path)?.pages().len().min(MAX_PAGES))
}

/// Page `page` (1-based) of the PDF at `path` as PNG, at `scale` (1 = 72 dpi), from the cache
/// in `cache_dir` when it was rendered before.
pub fn page_png(
    path: &Path,
    sha256: &str,
    page: usize,
    scale: f32,
    cache_dir: &Path,
) -> Result<Vec<u8>, RenderError> {
    let cached: PathBuf = cache_dir.join(format!("{sha256}-{page}-{}.png", (scale * 100.0) as u32));
    if let Ok(bytes) = std::fs::read(&cached) {
        return Ok(bytes);
    }
    let pdf = open(path)?;
    let pages = pdf.pages();
    if page == 0 || page > pages.len().min(MAX_PAGES) {
        return Err(RenderError::NoSuchPage(page));
    }
    let page_ref = &pages[page - 1];
    let (w, _) = page_ref.render_dimensions();
    let scale = scale.min(MAX_PIXELS_WIDE / w.max(1.0));
    let cache = RenderCache::new();
    let pixmap = hayro::render(
        page_ref,
        &cache,
        &InterpreterSettings::default(),
        &RenderSettings::default(),
        &PixmapSettings {
            x_scale: scale,
            y_scale: scale,
            bg_color: WHITE,
        },
    );
    let png = pixmap
        .into_png()
        .map_err(|e| RenderError::Unreadable(e.to_string()))?;
    std::fs::create_dir_all(cache_dir)?;
    // Written under a temporary name and renamed, so a reader never sees half a file.
    let tmp = cache_dir.join(format!(".{}.tmp", rand::random::<u64>()));
    std::fs::write(&tmp, &png)?;
    std::fs::rename(&tmp, &cached)?;
    Ok(png)
}
