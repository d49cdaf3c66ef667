//! The server's PDFs read back as a reader reads them: each page's text through its fonts'
//! ToUnicode maps (hayro's interpreter, the renderer the server already uses for shared
//! documents), one string per run of glyphs (the PDF writer shows each laid-out line as one
//! run); each page rendered to pixels; the fonts embedded.

use hayro::hayro_interpret::font::GlyphRun;
use hayro::hayro_interpret::hayro_cmap::BfString;
use hayro::hayro_interpret::{
    BlendMode, ClipPath, Context, Device, DrawMode, DrawProps, Image, ImageDrawProps,
    InterpreterCache, InterpreterSettings, SoftMask, interpret_page,
};
use hayro::hayro_syntax::Pdf;
use hayro::kurbo::{Affine, BezPath, Rect};
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{PixmapSettings, RenderCache, RenderSettings};

/// Collects the text of glyph runs; a glyph without a Unicode mapping shows as U+FFFD.
#[derive(Default)]
struct TextDevice {
    runs: Vec<String>,
}

impl<'a> Device<'a> for TextDevice {
    fn draw_path(&mut self, _: &BezPath, _: DrawProps<'a>, _: &DrawMode) {}
    fn push_clip_path(&mut self, _: &ClipPath) {}
    fn push_transparency_group(&mut self, _: f32, _: Option<SoftMask<'a>>, _: BlendMode) {}
    fn draw_glyph_run(&mut self, run: &GlyphRun<'_, 'a>, _: DrawProps<'a>, _: &DrawMode) {
        let mut s = String::new();
        for g in run.glyphs() {
            match g.as_unicode() {
                Some(BfString::Char(c)) => s.push(c),
                Some(BfString::String(t)) => s.push_str(&t),
                None => s.push('\u{FFFD}'),
            }
        }
        self.runs.push(s);
    }
    fn draw_image(&mut self, _: Image<'a, '_>, _: ImageDrawProps<'a>) {}
    fn pop_clip(&mut self) {}
    fn pop_transparency_group(&mut self) {}
}

/// The text of each page: its runs of glyphs, in drawing order, one per line.
pub fn page_texts(bytes: &[u8]) -> Vec<String> {
    let pdf = Pdf::new(bytes.to_vec()).expect("the PDF opens");
    let pages = pdf.pages();
    let cache = InterpreterCache::new();
    pages
        .iter()
        .map(|page| {
            let mut ctx = Context::new(
                Affine::IDENTITY,
                Rect::new(0.0, 0.0, 595.0, 842.0),
                &cache,
                page.xref(),
                InterpreterSettings::default(),
            );
            let mut device = TextDevice::default();
            interpret_page(page, &mut ctx, &mut device);
            device.runs.join("\n")
        })
        .collect()
}

/// All the text, pages joined.
pub fn text(bytes: &[u8]) -> String {
    page_texts(bytes).join("\n")
}

/// Each page rendered at `scale` by hayro: the share of its pixels that are not white (a blank
/// page gives 0).
pub fn ink_per_page(bytes: &[u8], scale: f32, only: Option<usize>) -> Vec<f64> {
    let pdf = Pdf::new(bytes.to_vec()).expect("the PDF opens");
    let pages = pdf.pages();
    pages
        .iter()
        .take(only.unwrap_or(usize::MAX))
        .map(|page| {
            let cache = RenderCache::new();
            let pixmap = hayro::render(
                page,
                &cache,
                &InterpreterSettings::default(),
                &RenderSettings::default(),
                &PixmapSettings {
                    x_scale: scale,
                    y_scale: scale,
                    bg_color: WHITE,
                },
            );
            let px = pixmap.data_as_u8_slice();
            let inked = px
                .chunks_exact(4)
                .filter(|p| p[0] < 200 || p[1] < 200 || p[2] < 200)
                .count();
            inked as f64 / (px.len() / 4) as f64
        })
        .collect()
}

/// Whether `needle` occurs in the file's bytes (names in dictionaries are not compressed).
pub fn has_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A font a page uses, as its dictionaries describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedFont {
    pub base_font: String,
    /// `FontFile`, `FontFile2` or `FontFile3`, and its decoded length; `None`: not embedded.
    pub file: Option<(String, usize)>,
    pub to_unicode: bool,
}

/// The fonts of every page, each once.
pub fn fonts(bytes: &[u8]) -> Vec<EmbeddedFont> {
    use hayro::hayro_syntax::object::{Array, Dict, Name, Stream};
    let pdf = Pdf::new(bytes.to_vec()).expect("the PDF opens");
    let mut out: Vec<EmbeddedFont> = Vec::new();
    for page in pdf.pages().iter() {
        let fonts = &page.resources().fonts;
        for key in fonts.keys() {
            let Some(font) = fonts.get::<Dict<'_>>(&*key) else {
                continue;
            };
            let base_font = font
                .get::<Name<'_>>("BaseFont")
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default();
            // A composite font keeps its descriptor in its descendant.
            let descendant = font
                .get::<Array<'_>>("DescendantFonts")
                .and_then(|a| a.iter::<Dict<'_>>().next());
            let descriptor = descendant
                .as_ref()
                .unwrap_or(&font)
                .get::<Dict<'_>>("FontDescriptor");
            let file = descriptor.and_then(|d| {
                ["FontFile", "FontFile2", "FontFile3"]
                    .into_iter()
                    .find_map(|k| {
                        d.get::<Stream<'_>>(k)
                            .map(|s| (k.to_owned(), s.decoded().map(|b| b.len()).unwrap_or(0)))
                    })
            });
            let f = EmbeddedFont {
                base_font,
                file,
                to_unicode: font.contains_key("ToUnicode"),
            };
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}
