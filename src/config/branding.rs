//! The institution's look in the web client (`[branding]`): its name in Chinese and English,
//! its logo and its accent colour. Without the section the pages keep the product's own look.
//!
//! Everything is checked before the server starts, and a bad value stops it with a
//! [`BrandingError`] that says which key and why: a colour not written `#rrggbb`, or one too
//! faint on the light or the dark page (the same colour is used in both); a name in one
//! language only, too long, or with control characters; a logo that is missing, larger than
//! [`MAX_LOGO_BYTES`], or not a PNG or JPEG image.
//!
//! Only PNG and JPEG: an SVG is a document that can carry script and fetch other resources, and
//! a raster image cannot, whatever page or tab it is opened in. The type is read from the file's
//! first bytes, not its name.
//!
//! [`BrandingConfig::check`] is pure (it runs in `Config::validate`); [`BrandingConfig::load`]
//! also reads the logo, once at start: the one file this module reads besides the configuration
//! itself. The HTTP edge serves the [`Brand`] it is given and never reads the file again, so
//! a logo replaced on disk shows after a restart, and a broken one cannot appear later.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The largest logo file, in bytes. A header logo is small; this keeps the binary's memory and
/// every page's first load bounded whatever file is named.
pub const MAX_LOGO_BYTES: u64 = 256 * 1024;

/// The longest name, in characters, in either language (it must fit a phone's header).
pub const MAX_NAME_CHARS: usize = 60;

/// The least contrast of the accent against the pages' backgrounds: WCAG 2.2's 3:1 for the
/// parts of controls people must see (1.4.11): filled buttons, the selected tab, outlines.
pub const MIN_ACCENT_CONTRAST: f64 = 3.0;

/// The least contrast of text: WCAG 2.2's 4.5:1 (1.4.3), for words on the accent and for the
/// accent's darker or lighter shade used as the colour of words (links, statuses).
pub const MIN_TEXT_CONTRAST: f64 = 4.5;

/// The light scheme's page background and card surface (`--bg`, `--surface` in
/// web-client/css/app.css; keep them in step).
pub const LIGHT_BACKGROUNDS: [Rgb; 2] = [Rgb(0xf4, 0xf6, 0xf8), Rgb(0xff, 0xff, 0xff)];
/// The dark scheme's page background and card surface (the same, under
/// `prefers-color-scheme: dark`).
pub const DARK_BACKGROUNDS: [Rgb; 2] = [Rgb(0x0f, 0x14, 0x1a), Rgb(0x1a, 0x21, 0x2b)];

/// `[branding]`: every key empty by default, which is the product's own look.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BrandingConfig {
    /// The institution's name as Chinese readers see it, such as "某某县人民医院".
    pub name_zh: String,
    /// The same name for English readers. Both or neither.
    pub name_en: String,
    /// A PNG or JPEG file, at most [`MAX_LOGO_BYTES`]; empty: no logo. Needs the names (the
    /// logo stands beside them and says nothing they do not).
    pub logo_file: String,
    /// `#rrggbb`: filled buttons, the selected tab, links, in the light and the dark scheme;
    /// empty: the product's blue.
    pub accent: String,
}

/// Why the branding cannot be used. Each names the key, so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrandingError {
    #[error("branding.accent must be a colour written #rrggbb, such as \"#1a7f37\"")]
    AccentFormat,
    #[error(
        "branding.accent {accent} is too faint on the {scheme} page: {ratio:.2}:1 against {background}, at least 3:1 is needed in both the light and the dark scheme (choose a mid tone, neither very dark nor very light)"
    )]
    AccentContrast {
        accent: String,
        scheme: &'static str,
        background: String,
        ratio: f64,
    },
    #[error(
        "branding.name_zh and branding.name_en go together: the pages speak both languages, so give the name in both or in neither"
    )]
    NameInOneLanguage,
    #[error("branding.{key} is longer than {MAX_NAME_CHARS} characters")]
    NameTooLong { key: &'static str },
    #[error("branding.{key} must not contain control characters or line breaks")]
    NameControl { key: &'static str },
    #[error(
        "branding.logo_file needs branding.name_zh and branding.name_en: the name is what the logo says to people who cannot see it"
    )]
    LogoWithoutName,
    #[error("cannot read branding.logo_file {path}: {source}")]
    LogoRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("branding.logo_file {path} is not a file")]
    LogoNotFile { path: PathBuf },
    #[error("branding.logo_file {path} has {size} bytes; at most {MAX_LOGO_BYTES} are allowed")]
    LogoTooLarge { path: PathBuf, size: u64 },
    #[error(
        "branding.logo_file {path} is not a PNG or JPEG image (other types, SVG included, are refused: an SVG can carry script)"
    )]
    LogoType { path: PathBuf },
}

/// A colour as sRGB bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub const WHITE: Rgb = Rgb(0xff, 0xff, 0xff);
    pub const BLACK: Rgb = Rgb(0, 0, 0);

    /// `#rrggbb`, either case; nothing else (no names, no short form, no alpha), so what the
    /// operator wrote is exactly what every page shows.
    pub fn parse(text: &str) -> Result<Self, BrandingError> {
        let hex = text.strip_prefix('#').ok_or(BrandingError::AccentFormat)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BrandingError::AccentFormat);
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16);
        match (byte(0), byte(2), byte(4)) {
            (Ok(r), Ok(g), Ok(b)) => Ok(Rgb(r, g, b)),
            _ => Err(BrandingError::AccentFormat),
        }
    }

    /// `#rrggbb`, lower case.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// WCAG 2.2's relative luminance.
    fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(self.0) + 0.7152 * channel(self.1) + 0.0722 * channel(self.2)
    }

    /// WCAG 2.2's contrast ratio, 1 to 21, the same either way round.
    pub fn contrast(self, other: Rgb) -> f64 {
        let (a, b) = (self.luminance(), other.luminance());
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    /// `self` moved `part` (0 to 1) of the way towards `to`, per sRGB channel.
    fn towards(self, to: Rgb, part: f64) -> Rgb {
        let mix = |a: u8, b: u8| {
            let v = f64::from(a) + (f64::from(b) - f64::from(a)) * part;
            // In 0..=255 by construction; the clamp keeps the cast exact.
            v.round().clamp(0.0, 255.0) as u8
        };
        Rgb(mix(self.0, to.0), mix(self.1, to.1), mix(self.2, to.2))
    }

    /// The first shade of `self` towards `to`, in 5 % steps, with at least `ratio` against every
    /// background. `to` is black or white, which always gets there on the pages' backgrounds.
    fn shade_for(self, to: Rgb, backgrounds: &[Rgb], ratio: f64) -> Rgb {
        (0..=20)
            .map(|step| self.towards(to, f64::from(step) / 20.0))
            .find(|c| backgrounds.iter().all(|bg| c.contrast(*bg) >= ratio))
            .unwrap_or(to)
    }
}

/// The accent and what goes with it, worked out once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accent {
    /// The configured colour: fills and outlines, in both schemes.
    pub color: Rgb,
    /// Words on the accent: white or black, whichever reads better (always at least 4.5:1 for
    /// a colour that passed the check; the unit tests walk the colour cube to be sure).
    pub on_color: Rgb,
    /// The accent as the colour of words on the light page: the colour itself, or the first
    /// darker shade with 4.5:1 against the light backgrounds.
    pub ink_light: Rgb,
    /// The same on the dark page: the colour, or the first lighter shade.
    pub ink_dark: Rgb,
}

impl Accent {
    /// Checks `text` and works out the shades; see [`BrandingError::AccentContrast`].
    pub fn parse(text: &str) -> Result<Self, BrandingError> {
        let color = Rgb::parse(text.trim())?;
        for (scheme, backgrounds) in [("light", LIGHT_BACKGROUNDS), ("dark", DARK_BACKGROUNDS)] {
            for background in backgrounds {
                let ratio = color.contrast(background);
                if ratio < MIN_ACCENT_CONTRAST {
                    return Err(BrandingError::AccentContrast {
                        accent: color.hex(),
                        scheme,
                        background: background.hex(),
                        ratio,
                    });
                }
            }
        }
        let on_color = if color.contrast(Rgb::WHITE) >= color.contrast(Rgb::BLACK) {
            Rgb::WHITE
        } else {
            Rgb::BLACK
        };
        Ok(Self {
            color,
            on_color,
            ink_light: color.shade_for(Rgb::BLACK, &LIGHT_BACKGROUNDS, MIN_TEXT_CONTRAST),
            ink_dark: color.shade_for(Rgb::WHITE, &DARK_BACKGROUNDS, MIN_TEXT_CONTRAST),
        })
    }
}

/// The institution's name in the two languages of the web client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandName {
    pub zh: String,
    pub en: String,
}

/// What a logo file holds, read from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoType {
    Png,
    Jpeg,
}

impl LogoType {
    /// The type of `bytes`, if it is one of the two accepted.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        // PNG: the signature, then the IHDR chunk that must come first.
        if bytes.len() > 16 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR"
        {
            return Some(Self::Png);
        }
        // JPEG: start of image, then any marker.
        if bytes.len() > 3 && bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            return Some(Self::Jpeg);
        }
        None
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }
}

/// A checked logo, held in memory for as long as the server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logo {
    pub bytes: Arc<[u8]>,
    pub kind: LogoType,
    /// A strong validator made from the bytes (16 hex digits of their SHA-256): the logo's URL
    /// carries it, so a changed logo is a new URL and a cached one can be kept for long.
    pub version: String,
}

/// The branding as the pages get it: each part present only when configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Brand {
    pub name: Option<BrandName>,
    pub logo: Option<Logo>,
    pub accent: Option<Accent>,
}

impl BrandingConfig {
    /// Every check that reads no file: the accent, the names, a logo's need for a name.
    pub fn check(&self) -> Result<(), BrandingError> {
        self.name()?;
        self.accent()?;
        Ok(())
    }

    /// Checks everything and reads the logo: what the server serves until it stops.
    pub fn load(&self) -> Result<Brand, BrandingError> {
        let name = self.name()?;
        let accent = self.accent()?;
        let logo = match self.logo_file.trim() {
            "" => None,
            path => Some(read_logo(Path::new(path))?),
        };
        Ok(Brand { name, logo, accent })
    }

    fn accent(&self) -> Result<Option<Accent>, BrandingError> {
        match self.accent.trim() {
            "" => Ok(None),
            text => Accent::parse(text).map(Some),
        }
    }

    fn name(&self) -> Result<Option<BrandName>, BrandingError> {
        let zh = self.name_zh.trim();
        let en = self.name_en.trim();
        for (key, name) in [("name_zh", zh), ("name_en", en)] {
            if name.chars().count() > MAX_NAME_CHARS {
                return Err(BrandingError::NameTooLong { key });
            }
            if name.chars().any(char::is_control) {
                return Err(BrandingError::NameControl { key });
            }
        }
        match (zh.is_empty(), en.is_empty()) {
            (true, true) if self.logo_file.trim().is_empty() => Ok(None),
            (true, true) => Err(BrandingError::LogoWithoutName),
            (false, false) => Ok(Some(BrandName {
                zh: zh.to_owned(),
                en: en.to_owned(),
            })),
            _ => Err(BrandingError::NameInOneLanguage),
        }
    }
}

/// Reads a logo of at most [`MAX_LOGO_BYTES`] (never more, even if the file grows meanwhile)
/// and checks its type.
fn read_logo(path: &Path) -> Result<Logo, BrandingError> {
    let read_error = |source| BrandingError::LogoRead {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(BrandingError::LogoNotFile {
            path: path.to_owned(),
        });
    }
    let too_large = |size| BrandingError::LogoTooLarge {
        path: path.to_owned(),
        size,
    };
    if meta.len() > MAX_LOGO_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_LOGO_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > MAX_LOGO_BYTES {
        return Err(too_large(size));
    }
    let kind = LogoType::sniff(&bytes).ok_or_else(|| BrandingError::LogoType {
        path: path.to_owned(),
    })?;
    let digest = Sha256::digest(&bytes);
    let version = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Logo {
        bytes: bytes.into(),
        kind,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real 1×1 PNG's first bytes are enough: the type is read from the signature and IHDR.
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

    fn with_accent(accent: &str) -> BrandingConfig {
        BrandingConfig {
            accent: accent.into(),
            ..BrandingConfig::default()
        }
    }

    fn named(logo_file: &Path) -> BrandingConfig {
        BrandingConfig {
            name_zh: "某某县人民医院".into(),
            name_en: "County People's Hospital".into(),
            logo_file: logo_file.display().to_string(),
            accent: String::new(),
        }
    }

    #[test]
    fn nothing_configured_is_the_products_own_look() {
        let brand = BrandingConfig::default().load().unwrap();
        assert_eq!(brand, Brand::default());
    }

    #[test]
    fn colours_must_be_written_rrggbb() {
        for bad in [
            "1a7f37",
            "#1a7f3",
            "#1a7f377",
            "#1a7f3g",
            "green",
            "#1A7F37FF",
            "#17f",
            "#１a7f37",
            "rgb(26,127,55)",
            "#",
        ] {
            assert!(
                matches!(with_accent(bad).check(), Err(BrandingError::AccentFormat)),
                "{bad}"
            );
        }
        let accent = Accent::parse("#1A7F37").unwrap();
        assert_eq!(accent.color, Rgb(0x1a, 0x7f, 0x37));
        assert_eq!(accent.color.hex(), "#1a7f37");
    }

    #[test]
    fn a_faint_accent_is_refused_on_the_scheme_where_it_is_faint() {
        // Pale yellow vanishes on the light page, navy on the dark one.
        for (colour, scheme) in [
            ("#ffe066", "light"),
            ("#ffffff", "light"),
            ("#0b1f4d", "dark"),
            ("#000000", "dark"),
        ] {
            match with_accent(colour).check() {
                Err(BrandingError::AccentContrast {
                    scheme: s, ratio, ..
                }) => {
                    assert_eq!(s, scheme, "{colour}");
                    assert!(ratio < MIN_ACCENT_CONTRAST);
                }
                other => panic!("{colour}: {other:?}"),
            }
        }
        let message = with_accent("#ffe066").check().unwrap_err().to_string();
        assert!(
            message.contains("branding.accent") && message.contains("3:1"),
            "{message}"
        );
    }

    #[test]
    fn a_mid_tone_is_taken_with_readable_words_on_it_and_readable_shades() {
        let accent = Accent::parse("#1a7f37").unwrap();
        assert_eq!(accent.on_color, Rgb::WHITE);
        for bg in LIGHT_BACKGROUNDS {
            assert!(accent.color.contrast(bg) >= MIN_ACCENT_CONTRAST);
            assert!(accent.ink_light.contrast(bg) >= MIN_TEXT_CONTRAST);
        }
        for bg in DARK_BACKGROUNDS {
            assert!(accent.color.contrast(bg) >= MIN_ACCENT_CONTRAST);
            assert!(accent.ink_dark.contrast(bg) >= MIN_TEXT_CONTRAST);
        }
        // Black reads better on a light orange.
        assert_eq!(Accent::parse("#e8590c").unwrap().on_color, Rgb::BLACK);
    }

    #[test]
    fn every_accepted_colour_has_readable_words_on_it() {
        // Walks the colour cube in steps of 15: whatever passes the check, the words on it and
        // both shades reach 4.5:1 (what the pages rely on without checking again).
        let mut accepted = 0;
        for r in (0..=255).step_by(15) {
            for g in (0..=255).step_by(15) {
                for b in (0..=255).step_by(15) {
                    let Ok(accent) = Accent::parse(&Rgb(r, g, b).hex()) else {
                        continue;
                    };
                    accepted += 1;
                    assert!(accent.color.contrast(accent.on_color) >= MIN_TEXT_CONTRAST);
                    for bg in LIGHT_BACKGROUNDS {
                        assert!(accent.ink_light.contrast(bg) >= MIN_TEXT_CONTRAST);
                    }
                    for bg in DARK_BACKGROUNDS {
                        assert!(accent.ink_dark.contrast(bg) >= MIN_TEXT_CONTRAST);
                    }
                }
            }
        }
        assert!(
            accepted > 100,
            "the band of accepted colours is not empty ({accepted})"
        );
    }

    #[test]
    fn names_go_in_both_languages_short_and_on_one_line() {
        let mut c = BrandingConfig {
            name_zh: "某某医院".into(),
            ..BrandingConfig::default()
        };
        assert!(matches!(c.check(), Err(BrandingError::NameInOneLanguage)));
        c.name_en = "A Hospital".into();
        assert!(c.check().is_ok());
        c.name_en = "x".repeat(MAX_NAME_CHARS + 1);
        assert!(matches!(
            c.check(),
            Err(BrandingError::NameTooLong { key: "name_en" })
        ));
        c.name_en = "A\nHospital".into();
        assert!(matches!(
            c.check(),
            Err(BrandingError::NameControl { key: "name_en" })
        ));
        // Counted in characters, not bytes: 60 Chinese characters fit.
        c.name_en = "A Hospital".into();
        c.name_zh = "医".repeat(MAX_NAME_CHARS);
        assert!(c.check().is_ok());
    }

    #[test]
    fn a_logo_needs_the_name() {
        let c = BrandingConfig {
            logo_file: "/logo.png".into(),
            ..BrandingConfig::default()
        };
        assert!(matches!(c.check(), Err(BrandingError::LogoWithoutName)));
    }

    #[test]
    fn a_png_or_jpeg_logo_is_read_once_with_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("logo.png");
        std::fs::write(&png, PNG).unwrap();
        let brand = named(&png).load().unwrap();
        let logo = brand.logo.unwrap();
        assert_eq!(logo.kind, LogoType::Png);
        assert_eq!(&*logo.bytes, PNG);
        assert_eq!(logo.version.len(), 16);
        assert_eq!(brand.name.unwrap().en, "County People's Hospital");
        // The type comes from the bytes: a JPEG named .png is a JPEG.
        std::fs::write(&png, b"\xff\xd8\xff\xe0\0\x10JFIF\0").unwrap();
        let logo = named(&png).load().unwrap().logo.unwrap();
        assert_eq!(logo.kind.content_type(), "image/jpeg");
    }

    #[test]
    fn a_logo_of_another_type_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logo.png");
        for bytes in [
            &b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"[..],
            b"GIF89a\x01\0\x01\0",
            b"\x89PNG\r\n\x1a\n",
            b"",
        ] {
            std::fs::write(&path, bytes).unwrap();
            assert!(
                matches!(named(&path).load(), Err(BrandingError::LogoType { .. })),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn a_logo_too_big_is_refused_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logo.png");
        let mut bytes = PNG.to_vec();
        bytes.resize(usize::try_from(MAX_LOGO_BYTES).unwrap(), 0);
        std::fs::write(&path, &bytes).unwrap();
        assert!(named(&path).load().is_ok(), "exactly the limit is allowed");
        bytes.push(0);
        std::fs::write(&path, &bytes).unwrap();
        match named(&path).load() {
            Err(BrandingError::LogoTooLarge { size, .. }) => assert_eq!(size, MAX_LOGO_BYTES + 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_logo_or_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-logo.png");
        let err = named(&missing).load().unwrap_err();
        assert!(matches!(err, BrandingError::LogoRead { .. }), "{err:?}");
        assert!(err.to_string().contains("no-such-logo.png"));
        assert!(matches!(
            named(dir.path()).load(),
            Err(BrandingError::LogoNotFile { .. }) | Err(BrandingError::LogoRead { .. })
        ));
    }
}
