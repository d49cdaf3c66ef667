//! Text laid out on A4 pages for the consultation PDFs: paragraphs wrapped by the font's real
//! advances ([`super::font`]), lines gathered into pages, headings kept with what follows them,
//! and a ceiling on the number of pages.
//!
//! Lines break at spaces between Latin words and between any two CJK characters (Chinese has no
//! spaces); a word longer than the line is cut where it no longer fits.

use super::font::{self, Face};

pub const PAGE_W: f32 = 595.0;
pub const PAGE_H: f32 = 842.0;
pub const MARGIN_X: f32 = 56.0;
/// From the top edge to the first line's top (room for the running header).
pub const TOP: f32 = 64.0;
/// From the bottom edge to the last line's bottom (room for the footer).
pub const BOTTOM: f32 = 64.0;
pub const TEXT_W: f32 = PAGE_W - 2.0 * MARGIN_X;
const TEXT_H: f32 = PAGE_H - TOP - BOTTOM;

/// How a line is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// Type size, points.
    pub size: f32,
    /// Height of the line, points.
    pub leading: f32,
    pub bold: bool,
    /// Grey rather than black (labels, hashes, steps).
    pub muted: bool,
    /// From the left margin, points.
    pub indent: f32,
}

impl Style {
    pub const fn new(size: f32, leading: f32) -> Self {
        Self {
            size,
            leading,
            bold: false,
            muted: false,
            indent: 0.0,
        }
    }

    pub const fn bold(self) -> Self {
        Self { bold: true, ..self }
    }

    pub const fn muted(self) -> Self {
        Self {
            muted: true,
            ..self
        }
    }

    pub const fn indent(self, indent: f32) -> Self {
        Self { indent, ..self }
    }

    pub fn face(&self) -> &'static Face {
        if self.bold {
            font::bold()
        } else {
            font::regular()
        }
    }
}

/// One line of a page (or a blank of `style.leading` points when `text` is empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub text: String,
    pub style: Style,
    /// A heading: not left alone at the bottom of a page.
    pub keep_with_next: bool,
    /// A thin rule is drawn above it.
    pub rule_above: bool,
}

/// The lines of a document, in order.
#[derive(Debug, Default)]
pub struct Flow {
    pub lines: Vec<Line>,
}

impl Flow {
    /// A paragraph: `text` wrapped to the text width (each `\n` starts a new line).
    pub fn para(&mut self, style: Style, text: &str) {
        for line in wrap(style, text) {
            self.lines.push(Line {
                text: line,
                style,
                keep_with_next: false,
                rule_above: false,
            });
        }
    }

    /// A heading, kept with the line after it, with a rule above when `rule`.
    pub fn heading(&mut self, style: Style, text: &str, rule: bool) {
        let first = self.lines.len();
        self.para(style, text);
        for (i, l) in self.lines[first..].iter_mut().enumerate() {
            l.keep_with_next = true;
            l.rule_above = rule && i == 0;
        }
    }

    /// Vertical space.
    pub fn gap(&mut self, points: f32) {
        self.lines.push(Line {
            text: String::new(),
            style: Style::new(1.0, points),
            keep_with_next: false,
            rule_above: false,
        });
    }

    /// The lines in pages of at most the text height, headings moved to the next page rather
    /// than left last on one, blank lines dropped at the top of a page. At most `max_pages`:
    /// past that, the last page ends with `cut(lines left out)`.
    pub fn paginate(self, max_pages: usize, cut: impl Fn(usize) -> Vec<Line>) -> Vec<Vec<Line>> {
        let mut pages: Vec<Vec<Line>> = Vec::new();
        let mut page: Vec<Line> = Vec::new();
        let mut used = 0.0;
        let total = self.lines.len();
        for (i, line) in self.lines.into_iter().enumerate() {
            if page.is_empty() && line.text.is_empty() {
                continue;
            }
            if used + line.style.leading > TEXT_H && !page.is_empty() {
                // Headings at the foot of a full page go over with what follows them.
                let mut carried = Vec::new();
                while page.last().is_some_and(|l| l.keep_with_next) && page.len() > 1 {
                    carried.push(page.pop().expect("not empty"));
                }
                carried.reverse();
                pages.push(std::mem::take(&mut page));
                used = carried.iter().map(|l| l.style.leading).sum();
                page = carried;
                if pages.len() == max_pages {
                    // The page limit: the last page ends with the notice of what is left out.
                    let notice = cut(0);
                    let mut last = pages.pop().expect("a page");
                    let notice_h: f32 = notice.iter().map(|l| l.style.leading).sum();
                    let mut h: f32 = last.iter().map(|l| l.style.leading).sum();
                    let mut dropped = 0;
                    while h + notice_h > TEXT_H && !last.is_empty() {
                        h -= last.pop().expect("not empty").style.leading;
                        dropped += 1;
                    }
                    let left_out = dropped + page.len() + (total - i);
                    last.extend(cut(left_out));
                    pages.push(last);
                    return pages;
                }
            }
            used += line.style.leading;
            page.push(line);
        }
        if !page.is_empty() || pages.is_empty() {
            pages.push(page);
        }
        pages
    }
}

/// Whether a line may break before or after `c` without a space (CJK ideographs, kana,
/// full-width forms and CJK punctuation).
fn breaks_anywhere(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFFEF)
}

/// CJK punctuation that must not begin a line (it goes with the character before it).
fn no_line_start(c: char) -> bool {
    "，。、；：！？）》」』】〕〉”’．·…%,.;:!?)]}".contains(c)
}

/// `text` in lines no wider than the text width less `style.indent`, measured by the face's
/// advances at `style.size`.
pub fn wrap(style: Style, text: &str) -> Vec<String> {
    let face = style.face();
    let max = (TEXT_W - style.indent).max(style.size);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let chars: Vec<char> = para
            .chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect();
        let widths: Vec<f32> = chars
            .iter()
            .map(|&c| face.char_width(c, style.size))
            .collect();
        let mut start = 0;
        while start < chars.len() {
            let mut w = 0.0;
            let mut end = start;
            // Where the line may end: after a space, or between CJK characters.
            let mut last_break = None;
            while end < chars.len() && w + widths[end] <= max {
                w += widths[end];
                end += 1;
                if end < chars.len() {
                    let (a, b) = (chars[end - 1], chars[end]);
                    if (a == ' ' || breaks_anywhere(a) || breaks_anywhere(b)) && !no_line_start(b) {
                        last_break = Some(end);
                    }
                }
            }
            if end < chars.len()
                && let Some(b) = last_break
            {
                end = b;
            }
            if end == start {
                // Not even one character fits (cannot happen at these sizes): take one.
                end = start + 1;
            }
            let line: String = chars[start..end].iter().collect();
            out.push(line.trim_end().to_owned());
            start = end;
            while start < chars.len() && chars[start] == ' ' {
                start += 1;
            }
        }
        if chars.is_empty() {
            out.push(String::new());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: Style = Style::new(10.0, 14.0);

    fn width(style: Style, s: &str) -> f32 {
        style.face().width(s, style.size)
    }

    #[test]
    fn lines_fit_the_width_by_real_advances() {
        let text = "会诊".repeat(200);
        let lines = wrap(BODY, &text);
        assert!(lines.len() > 1);
        for l in &lines {
            assert!(width(BODY, l) <= TEXT_W + 0.01, "{l}");
        }
        // Full lines of ideographs hold as many as fit: 483 pt at 10 pt a character.
        assert_eq!(lines[0].chars().count(), (TEXT_W / 10.0) as usize);
        // Narrow Latin letters fit more to a line than wide ones.
        let narrow = wrap(BODY, &"i".repeat(1000));
        let wide = wrap(BODY, &"W".repeat(1000));
        assert!(narrow[0].len() > 2 * wide[0].len());
        assert_eq!(narrow.concat().len(), 1000);
    }

    #[test]
    fn english_breaks_between_words_and_keeps_every_word() {
        let words: Vec<String> = (0..300).map(|i| format!("word{i}")).collect();
        let text = words.join(" ");
        let lines = wrap(BODY.indent(20.0), &text);
        assert!(lines.len() > 3);
        let rejoined: Vec<&str> = lines.iter().flat_map(|l| l.split(' ')).collect();
        assert_eq!(
            rejoined,
            words.iter().map(String::as_str).collect::<Vec<_>>()
        );
        for l in &lines {
            assert!(width(BODY, l) <= TEXT_W - 20.0 + 0.01);
        }
    }

    #[test]
    fn punctuation_does_not_start_a_line_and_newlines_split() {
        let text = format!("{}。下一句", "字".repeat(48));
        for l in wrap(BODY, &text) {
            assert!(!l.starts_with('。'), "{l}");
        }
        assert_eq!(wrap(BODY, "a\n\nb"), ["a", "", "b"]);
    }

    #[test]
    fn pages_split_without_losing_lines_and_stop_at_the_ceiling() {
        let mut f = Flow::default();
        for i in 0..500 {
            f.para(BODY, &format!("line {i}"));
        }
        let per_page = (TEXT_H / 14.0) as usize;
        let pages = f.paginate(100, |_| Vec::new());
        assert_eq!(pages.len(), 500usize.div_ceil(per_page));
        let all: Vec<String> = pages.concat().into_iter().map(|l| l.text).collect();
        assert_eq!(all.len(), 500);
        assert_eq!(all[499], "line 499");

        let mut f = Flow::default();
        for i in 0..5000 {
            f.para(BODY, &format!("line {i}"));
        }
        let notice = |n: usize| {
            vec![Line {
                text: format!("{n} left out"),
                style: BODY,
                keep_with_next: false,
                rule_above: false,
            }]
        };
        let pages = f.paginate(3, notice);
        assert_eq!(pages.len(), 3);
        let last = pages[2].last().unwrap();
        let shown = pages.iter().map(Vec::len).sum::<usize>() - 1;
        assert_eq!(last.text, format!("{} left out", 5000 - shown));
    }

    #[test]
    fn a_heading_is_not_left_at_the_foot_of_a_page() {
        let per_page = (TEXT_H / 14.0) as usize;
        let mut f = Flow::default();
        for i in 0..per_page - 1 {
            f.para(BODY, &format!("line {i}"));
        }
        f.heading(BODY.bold(), "Heading", false);
        f.para(BODY, "after");
        let pages = f.paginate(10, |_| Vec::new());
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[1][0].text, "Heading");
        assert_eq!(pages[1][1].text, "after");
    }
}
