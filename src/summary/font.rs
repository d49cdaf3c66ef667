//! The typeface of the consultation PDFs: Noto Sans CJK SC, regular and bold, subsetted to what
//! clinical Chinese and English need (GB2312's hanzi and symbols, ASCII, Latin-1, punctuation,
//! full-width forms, a few clinical signs; `scripts/subset-font.sh` makes them from Debian's
//! `fonts-noto-cjk`, SIL Open Font License 1.1, `assets/fonts/OFL.txt`) and built into the
//! binary. The PDF writer subsets them again to the glyphs a document uses and embeds that.
//!
//! Text is measured here by the font's own advances (its `hmtx`), so lines wrap where they
//! really end. A character the font lacks is printed as [`REPLACEMENT`] (□), in the drawn text
//! and in the text a reader copies, never dropped silently; control characters other than the
//! tab (a space) are dropped.

use std::sync::LazyLock;

use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::charmap::Charmap;
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{FontRef, MetadataProvider};

static REGULAR_BYTES: &[u8] = include_bytes!("../../assets/fonts/NotoSansSC-Regular-subset.otf");
static BOLD_BYTES: &[u8] = include_bytes!("../../assets/fonts/NotoSansSC-Bold-subset.otf");

/// What stands for a character the font does not have: WHITE SQUARE, which it has.
pub const REPLACEMENT: char = '\u{25A1}';

/// One weight: the font for the PDF writer, and its character map and advances for layout.
pub struct Face {
    pdf: Font,
    charmap: Charmap<'static>,
    metrics: GlyphMetrics<'static>,
    units_per_em: f32,
    replacement: GlyphId,
}

/// A piece of text ready to draw: the characters as they will be shown (replacements made)
/// and a glyph for each.
pub struct Shaped {
    pub text: String,
    pub glyphs: Vec<KrillaGlyph>,
}

impl Face {
    fn load(bytes: &'static [u8]) -> Self {
        // Both files are part of the source tree and checked by the tests below: a broken one
        // is a build mistake, not something a request can cause.
        let font = FontRef::new(bytes).expect("the embedded font parses");
        let pdf = Font::new(bytes.into(), 0).expect("the embedded font loads");
        let charmap = font.charmap();
        let replacement = charmap
            .map(REPLACEMENT)
            .expect("the embedded font has the replacement mark");
        Self {
            pdf,
            metrics: font.glyph_metrics(Size::unscaled(), LocationRef::default()),
            units_per_em: f32::from(
                font.metrics(Size::unscaled(), LocationRef::default())
                    .units_per_em,
            ),
            charmap,
            replacement: GlyphId::new(replacement.to_u32()),
        }
    }

    pub fn pdf(&self) -> Font {
        self.pdf.clone()
    }

    /// The glyph for `c`, or `None` when the font lacks it.
    fn glyph(&self, c: char) -> Option<GlyphId> {
        self.charmap
            .map(c)
            .filter(|g| g.to_u32() != 0)
            .map(|g| GlyphId::new(g.to_u32()))
    }

    /// The advance of a glyph, in ems.
    fn advance(&self, glyph: GlyphId) -> f32 {
        self.metrics
            .advance_width(skrifa::GlyphId::new(glyph.to_u32()))
            .unwrap_or(self.units_per_em)
            / self.units_per_em
    }

    /// The width of `c` at `size` points, as [`Face::shape`] would draw it.
    pub fn char_width(&self, c: char, size: f32) -> f32 {
        let c = printable(c);
        self.advance(self.glyph(c).unwrap_or(self.replacement)) * size
    }

    /// The width of `text` at `size` points.
    pub fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.char_width(c, size)).sum()
    }

    /// `text` as glyphs, one per character (the font's CJK and Latin need no shaping beyond
    /// that), characters it lacks replaced by [`REPLACEMENT`].
    pub fn shape(&self, text: &str) -> Shaped {
        let mut out = Shaped {
            text: String::with_capacity(text.len()),
            glyphs: Vec::with_capacity(text.len()),
        };
        for c in text.chars().filter(|&c| !c.is_control() || c == '\t') {
            let c = printable(c);
            let (c, glyph) = match self.glyph(c) {
                Some(g) => (c, g),
                None => (REPLACEMENT, self.replacement),
            };
            let start = out.text.len();
            out.text.push(c);
            out.glyphs.push(KrillaGlyph {
                glyph_id: glyph,
                text_range: start..out.text.len(),
                x_advance: self.advance(glyph),
                x_offset: 0.0,
                y_offset: 0.0,
                y_advance: 0.0,
                location: None,
            });
        }
        out
    }

    /// Whether the font has a glyph of its own for `c`.
    pub fn has(&self, c: char) -> bool {
        self.glyph(c).is_some()
    }
}

/// A tab is a space on paper.
fn printable(c: char) -> char {
    if c == '\t' { ' ' } else { c }
}

static REGULAR: LazyLock<Face> = LazyLock::new(|| Face::load(REGULAR_BYTES));
static BOLD: LazyLock<Face> = LazyLock::new(|| Face::load(BOLD_BYTES));

pub fn regular() -> &'static Face {
    &REGULAR
}

pub fn bold() -> &'static Face {
    &BOLD
}

/// The bytes of the regular weight as built in (for the tests that compare the embedded
/// subset's size with it).
pub fn regular_bytes() -> &'static [u8] {
    REGULAR_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_weights_load_and_cover_clinical_text() {
        for face in [regular(), bold()] {
            for c in
                "会诊记录诊断报告处方药师审核患者体温℃µ±，。：（）ＡＢ１２abcXYZ0123é°①".chars()
            {
                assert!(face.has(c), "{c:?}");
            }
            // GB2312's first and last hanzi.
            assert!(face.has('啊') && face.has('齄'));
        }
    }

    #[test]
    fn widths_come_from_the_font() {
        let f = regular();
        // CJK ideographs are a full em; Latin letters are proportional.
        assert!((f.char_width('会', 10.0) - 10.0).abs() < 0.01);
        assert!(f.char_width('i', 10.0) < f.char_width('W', 10.0));
        assert!(f.char_width('W', 10.0) < 10.0);
        assert!((f.width("会诊", 12.0) - 24.0).abs() < 0.01);
    }

    #[test]
    fn characters_outside_the_subset_become_the_replacement_mark() {
        let f = regular();
        // An emoji, a rare hanzi outside GB2312 (U+4DB5 in extension A) and a private-use one.
        for c in ['😀', '\u{4DB5}', '\u{E000}'] {
            assert!(!f.has(c), "{c:?}");
        }
        let s = f.shape("A😀会\u{4DB5}\u{7}\tB");
        assert_eq!(s.text, "A□会□ B");
        assert_eq!(s.glyphs.len(), 6);
        assert_eq!(s.glyphs[1].glyph_id, s.glyphs[3].glyph_id);
        assert_ne!(s.glyphs[1].glyph_id, GlyphId::new(0));
        assert_eq!(f.width("😀", 10.0), f.width("□", 10.0));
        // Each glyph points at its own characters.
        for g in &s.glyphs {
            assert_eq!(s.text[g.text_range.clone()].chars().count(), 1);
        }
    }
}
