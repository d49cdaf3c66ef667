//! Pages of a PDF as PNG images, rendered on the server (hayro: pure Rust, no unsafe code), so
//! every browser shows the same page and annotations and follow mode line up with it exactly.
//!
//! Rendering an untrusted PDF is contained in time, pixels and memory:
//!
//! - It runs on the blocking pool (a panic in the renderer becomes an error, not a crash), a
//!   few at a time server-wide: the caller holds a [`super::gate`] permit.
//! - The image is bounded: the scale asked for is snapped to one of [`SCALES`], then lowered
//!   until the image is at most [`MAX_SIDE`] pixels a side and [`Limits::max_pixels`] in all. A
//!   page therefore has at most four cached images, and its pixmap (four bytes a pixel) at most
//!   `4 × max_pixels` bytes.
//! - What it decodes is bounded. hayro 0.9 has no limit on what a stream inflates to (each
//!   decoder reads to the end: flate2's `read_to_end`, then its own lenient inflater) and no
//!   hook to add one, and it inflates cross-reference and object streams while it opens a file.
//!   So [`budget`] measures first, with bounded decoders that make hayro's decisions
//!   ([`filters`]): the whole file before hayro opens it, each page before hayro renders it. A
//!   stream over [`Limits::max_stream_bytes`] or a page over [`Limits::max_page_bytes`] (its
//!   decoded streams, and its images at four bytes a pixel) is refused, with a sentence saying
//!   why ([`RenderError::TooLarge`]).
//! - Encrypted PDFs are not rendered ([`RenderError::Encrypted`]): hayro decrypts a stream inside
//!   its decoders, so what an encrypted stream inflates to cannot be measured before hayro
//!   inflates it. Whoever may download the document still can.
//! - Everything is cached under the document's SHA-256 ([`super::previews`]): page images, the
//!   document's verdict with its page count (the file is checked once, however often it is
//!   viewed or counted) and each refused page's reason (a refusal costs nothing the second time).

mod budget;
mod filters;

use std::path::Path;

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::Pdf;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{PixmapSettings, RenderCache, RenderSettings};

use super::previews;

/// The scales a page is rendered at (1 = 72 dpi); any other is snapped to the nearest.
pub const SCALES: [f32; 4] = [1.0, 1.5, 2.0, 3.0];
/// The scale when none is asked for.
pub const DEFAULT_SCALE: f32 = 1.5;
/// The widest and tallest page image, in pixels (A4 at scale 3 is 1786 × 2526).
pub const MAX_SIDE: u32 = 4096;
pub const MAX_PAGES: usize = 2000;

/// What rendering one page may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Pixels in a page image.
    pub max_pixels: u64,
    /// Bytes one stream may decode to.
    pub max_stream_bytes: u64,
    /// Bytes one page's streams and images (four bytes a pixel) may decode to, together.
    pub max_page_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the PDF cannot be read: {0}")]
    Unreadable(String),
    #[error("this PDF is encrypted, so it is not shown here; download it to read it")]
    Encrypted,
    #[error("the PDF has no page {0}")]
    NoSuchPage(usize),
    /// Refused by a limit; the message says which.
    #[error("{0}")]
    TooLarge(String),
    #[error("render cache I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The nearest of [`SCALES`] (the default for a scale that is not a number).
pub fn snap_scale(requested: f32) -> f32 {
    if !requested.is_finite() {
        return DEFAULT_SCALE;
    }
    let requested = requested.clamp(SCALES[0], SCALES[SCALES.len() - 1]);
    SCALES
        .into_iter()
        .min_by(|a, b| (a - requested).abs().total_cmp(&(b - requested).abs()))
        .unwrap_or(DEFAULT_SCALE)
}

/// The scale a page of `w` × `h` points is drawn at, at most `scale`, for its image to fit
/// the limits, and that image's size in pixels (computed as hayro computes it). `None` if no
/// scale fits (a page thousands of times taller than it is wide).
pub fn page_size(w: f32, h: f32, scale: f32, max_pixels: u64) -> Option<(f32, u32, u32)> {
    if !(w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0 && scale > 0.0) {
        return None;
    }
    let side = MAX_SIDE as f32;
    let mut s = scale.min(side / w).min(side / h);
    let area = f64::from(w * s) * f64::from(h * s);
    if area > max_pixels as f64 {
        s *= ((max_pixels as f64 / area).sqrt() * 0.999) as f32;
    }
    let (pw, ph) = ((w * s) as u32, (h * s) as u32);
    let fits = (1..=MAX_SIDE).contains(&pw)
        && (1..=MAX_SIDE).contains(&ph)
        && u64::from(pw) * u64::from(ph) <= max_pixels;
    fits.then_some((s, pw, ph))
}

fn page_file(sha256: &str, page: usize, scale: f32) -> String {
    format!("{sha256}-{page}-{}.png", (scale * 100.0).round() as u32)
}

fn refused_page_file(sha256: &str, page: usize) -> String {
    format!("{sha256}-{page}.refused")
}

fn verdict_file(sha256: &str) -> String {
    format!("{sha256}.pdf")
}

/// What the document check found, as cached: `pages N`, `encrypted`, `refused <why>` or
/// `unreadable <why>`.
fn verdict_result(text: &str) -> Option<Result<usize, RenderError>> {
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    Some(match word {
        "pages" => Ok(rest.parse().ok()?),
        "encrypted" => Err(RenderError::Encrypted),
        "refused" => Err(RenderError::TooLarge(rest.to_owned())),
        "unreadable" => Err(RenderError::Unreadable(rest.to_owned())),
        _ => return None,
    })
}

fn cached_verdict(cache_dir: &Path, sha256: &str) -> Option<Result<usize, RenderError>> {
    let bytes = previews::read(cache_dir, &verdict_file(sha256))?;
    verdict_result(std::str::from_utf8(&bytes).ok()?)
}

/// Checks the whole file once (then answers from the cache): its page count (at most
/// [`MAX_PAGES`]), or why it is not shown.
fn check_document(
    path: &Path,
    sha256: &str,
    cache_dir: &Path,
    limits: &Limits,
) -> Result<usize, RenderError> {
    if let Some(known) = cached_verdict(cache_dir, sha256) {
        return known;
    }
    let bytes = std::fs::read(path)?;
    let verdict = if budget::is_encrypted(&bytes) {
        "encrypted".to_owned()
    } else if let Err(budget::Refusal(why)) = budget::scan_file(&bytes, limits.max_stream_bytes) {
        format!("refused {why}")
    } else {
        match Pdf::new(bytes) {
            Ok(pdf) => format!("pages {}", pdf.pages().len().min(MAX_PAGES)),
            Err(e) => format!("unreadable {e:?}"),
        }
    };
    previews::write(cache_dir, &verdict_file(sha256), verdict.as_bytes())?;
    verdict_result(&verdict).expect("verdicts written here parse")
}

/// Number of pages (at most [`MAX_PAGES`] are offered).
pub fn page_count(
    path: &Path,
    sha256: &str,
    cache_dir: &Path,
    limits: &Limits,
) -> Result<usize, RenderError> {
    check_document(path, sha256, cache_dir, limits)
}

/// Page `page` (1-based) at the scale `scale` snaps to, if the cache already answers: its
/// image, or why it is not shown. `None`: it has to be rendered.
pub fn cached_page(
    sha256: &str,
    page: usize,
    scale: f32,
    cache_dir: &Path,
) -> Option<Result<Vec<u8>, RenderError>> {
    let scale = snap_scale(scale);
    if let Some(png) = previews::read(cache_dir, &page_file(sha256, page, scale)) {
        return Some(Ok(png));
    }
    match cached_verdict(cache_dir, sha256)? {
        Err(e) => return Some(Err(e)),
        Ok(n) if page == 0 || page > n => return Some(Err(RenderError::NoSuchPage(page))),
        Ok(_) => {}
    }
    let why = previews::read(cache_dir, &refused_page_file(sha256, page))?;
    Some(Err(RenderError::TooLarge(
        String::from_utf8_lossy(&why).into_owned(),
    )))
}

/// Page `page` (1-based) of the PDF at `path` as PNG, at the scale `scale` snaps to (lowered
/// to fit the limits), from the cache in `cache_dir` when it was rendered before.
pub fn page_png(
    path: &Path,
    sha256: &str,
    page: usize,
    scale: f32,
    cache_dir: &Path,
    limits: &Limits,
) -> Result<Vec<u8>, RenderError> {
    if let Some(known) = cached_page(sha256, page, scale, cache_dir) {
        return known;
    }
    let scale = snap_scale(scale);
    let pages = check_document(path, sha256, cache_dir, limits)?;
    if page == 0 || page > pages {
        return Err(RenderError::NoSuchPage(page));
    }
    let pdf =
        Pdf::new(std::fs::read(path)?).map_err(|e| RenderError::Unreadable(format!("{e:?}")))?;
    let pages = pdf.pages();
    let page_ref = pages.get(page - 1).ok_or(RenderError::NoSuchPage(page))?;
    if let Err(budget::Refusal(why)) = budget::check_page(page_ref, limits) {
        previews::write(cache_dir, &refused_page_file(sha256, page), why.as_bytes())?;
        return Err(RenderError::TooLarge(why));
    }
    let (w, h) = page_ref.render_dimensions();
    let (scale_used, _, _) = page_size(w, h, scale, limits.max_pixels).ok_or_else(|| {
        RenderError::TooLarge("this page is too long and narrow to show as an image".into())
    })?;
    let pixmap = contained_render(page_ref, scale_used)?;
    let png = pixmap
        .into_png()
        .map_err(|e| RenderError::Unreadable(e.to_string()))?;
    previews::write(cache_dir, &page_file(sha256, page, scale), &png)?;
    Ok(png)
}

/// A PDF of `objects` (numbered from 1, the first the catalog) with its cross-reference table,
/// and `trailer_extra` in its trailer: for tests and fuzz seeds.
#[doc(hidden)]
pub fn pdf_of_objects(objects: &[Vec<u8>], trailer_extra: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R {trailer_extra} >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// Renders a page that passed the budget checks, with the renderer's own panics contained:
/// hayro is a parser of files strangers upload, and coverage-guided fuzzing found arithmetic
/// that overflows on crafted glyph positions (hayro 0.9.0, `glyph_cache.rs`: a panic where
/// overflow checks are on, a misplaced glyph where they are off). Such a page is refused as
/// unreadable, like any other the renderer cannot draw, rather than failing its request.
fn contained_render(
    page: &hayro::hayro_syntax::page::Page<'_>,
    scale: f32,
) -> Result<hayro::vello_cpu::Pixmap, RenderError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cache = RenderCache::new();
        hayro::render(
            page,
            &cache,
            &InterpreterSettings::default(),
            &RenderSettings::default(),
            &PixmapSettings {
                x_scale: scale,
                y_scale: scale,
                bg_color: WHITE,
            },
        )
    }))
    .map_err(|_| RenderError::Unreadable("the renderer could not draw this page".into()))
}

/// The file and page checks of this module on a PDF in memory, then the first page that passes
/// them rendered at `scale` (lowered to fit `limits`, as for a page view): its PNG, or why
/// not. For the fuzz targets (`crate::fuzz`), which must find every way to panic or to pass the
/// limits here.
pub(crate) fn render_bytes(
    bytes: &[u8],
    limits: &Limits,
    scale: f32,
) -> Result<Vec<u8>, RenderError> {
    if budget::is_encrypted(bytes) {
        return Err(RenderError::Encrypted);
    }
    if let Err(budget::Refusal(why)) = budget::scan_file(bytes, limits.max_stream_bytes) {
        return Err(RenderError::TooLarge(why));
    }
    let pdf = Pdf::new(bytes.to_vec()).map_err(|e| RenderError::Unreadable(format!("{e:?}")))?;
    let pages = pdf.pages();
    let page = pages
        .iter()
        .take(MAX_PAGES)
        .find(|p| budget::check_page(p, limits).is_ok())
        .ok_or(RenderError::NoSuchPage(1))?;
    let (w, h) = page.render_dimensions();
    let (scale, _, _) = page_size(w, h, scale, limits.max_pixels)
        .ok_or_else(|| RenderError::TooLarge("too long and narrow".into()))?;
    contained_render(page, scale)?
        .into_png()
        .map_err(|e| RenderError::Unreadable(e.to_string()))
}

/// Every check of this module, on a file in memory: the verdict of each page (`None`: the file
/// is refused or unreadable). For the robustness tests, which feed it mutated files and expect
/// answers, never panics.
#[cfg(test)]
pub(crate) fn check_bytes(bytes: &[u8], limits: &Limits) -> Option<Vec<Result<(), String>>> {
    if budget::is_encrypted(bytes) || budget::scan_file(bytes, limits.max_stream_bytes).is_err() {
        return None;
    }
    let pdf = Pdf::new(bytes.to_vec()).ok()?;
    let pages = pdf.pages();
    Some(
        pages
            .iter()
            .map(|page| budget::check_page(page, limits).map_err(|budget::Refusal(why)| why))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_snap_to_a_small_set() {
        for (asked, got) in [
            (0.25, 1.0),
            (1.0, 1.0),
            (1.3, 1.5),
            (1.9, 2.0),
            (2.4, 2.0),
            (2.6, 3.0),
            (4.0, 3.0),
            (1e9, 3.0),
            (-5.0, 1.0),
            (f32::NAN, DEFAULT_SCALE),
            (f32::INFINITY, DEFAULT_SCALE),
        ] {
            assert_eq!(snap_scale(asked), got, "{asked}");
        }
    }

    #[test]
    fn page_images_fit_both_sides_and_the_pixel_budget() {
        let max = 8 << 20;
        // A4 at 2: as asked.
        assert_eq!(page_size(595.0, 842.0, 2.0, max), Some((2.0, 1190, 1684)));
        // A tall strip (600 × 14400 pt) at any scale: 4096 pixels tall at most.
        for scale in SCALES {
            let (_, w, h) = page_size(600.0, 14400.0, scale, max).unwrap();
            assert_eq!((w, h), (170, 4096), "{scale}");
        }
        // A large square page: held to the pixel budget.
        let (_, w, h) = page_size(3000.0, 3000.0, 3.0, max).unwrap();
        assert!(u64::from(w) * u64::from(h) <= max && w > 2800, "{w} × {h}");
        // A page so narrow that it cannot be drawn one pixel wide and 4096 tall.
        assert_eq!(page_size(1.0, 100_000.0, 1.0, max), None);
        assert_eq!(page_size(f32::NAN, 10.0, 1.0, max), None);
    }
}
