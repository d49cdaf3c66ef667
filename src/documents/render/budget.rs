//! What a PDF may cost to open and a page to render, measured before hayro does either.
//!
//! Two passes, because hayro inflates some streams while it opens a file (the cross-reference
//! streams, and the object streams that hold the page tree), before any page can be looked at:
//!
//! - [`scan_file`] runs before hayro sees the file. It does not trust stream dictionaries (a
//!   hostile file can make what a dictionary says ambiguous to any parser but hayro's): at every
//!   `stream` keyword it runs the bytes that follow through each decoder that hayro could apply
//!   first (Flate always; LZW, RunLength, ASCIIHex and ASCII85 if the file names them anywhere),
//!   and what comes out whole through Flate (and LZW) again, three filters deep, each output
//!   stopped at the per-stream limit. A file with any stream over the limit is refused.
//! - [`check_page`] runs after hayro has opened the file and before it renders a page: it walks
//!   everything the page can reach (its content, resources, annotations' appearances, inherited
//!   resources; never other pages), decodes each stream's filter chain as hayro would, exactly
//!   and bounded, and adds up what the page will hold once decoded: every stream's output, and
//!   every image at four bytes a pixel (its dictionary's size, or the larger size inside a
//!   JPEG 2000 or JBIG2 stream, or a CCITT stream's `Columns`), inline images included. Any
//!   stream over the per-stream limit, or a page over the per-page limit, is refused.
//!
//! Not covered, and why that is acceptable: encrypted files never get here (the caller refuses
//! them, because their streams are only readable inside hayro's decoders). The first pass does
//! not follow a cross-reference or object stream whose filters are more than three, or put
//! RunLength, ASCIIHex or ASCII85 after another filter, or a predictor between two, or whose
//! filter is named only inside a compressed object stream: no writer produces these, and only
//! those two kinds of stream are decoded before the second pass. Inside hayro, JBIG2 symbol and
//! pattern bitmaps are bounded only by hayro-jbig2's own limit of 65535 pixels a side.

use std::collections::HashSet;

use hayro::hayro_syntax::content::TypedIter;
use hayro::hayro_syntax::content::ops::TypedInstruction;
use hayro::hayro_syntax::object::{Array, Dict, MaybeRef, Name, ObjRef, Object, Stream};
use hayro::hayro_syntax::page::Page;
use hayro::hayro_syntax::xref::XRef;

use super::Limits;
use super::filters::{self, Filter, Over};

/// Why a file or page is refused: a sentence for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal(pub String);

fn over_stream(limit: u64) -> Refusal {
    Refusal(format!(
        "a part of this PDF decompresses to more than {} MiB",
        limit >> 20
    ))
}

/// Filters deep that the first pass follows.
const SNIFF_DEPTH: usize = 3;

/// The first pass, over the whole file: refuses it if any stream in it, however it is
/// filtered, decodes to more than `limit` bytes.
pub(super) fn scan_file(bytes: &[u8], limit: u64) -> Result<(), Refusal> {
    // Flate is tried on every stream. The other filters, which a decoder can read almost any
    // bytes as (RunLength turns two bytes of an uncompressed image into up to 128), only where
    // the file names them: a filter hayro applies is named in a stream dictionary, and those
    // are never compressed.
    let mut named = [false; 4];
    for_each_name(bytes, |name, _| {
        if let Some(i) = [
            &[&b"LZWDecode"[..], b"LZW"][..],
            &[b"RunLengthDecode", b"RL"],
            &[b"ASCIIHexDecode", b"AHx"],
            &[b"ASCII85Decode", b"A85"],
        ]
        .iter()
        .position(|names| names.contains(&name))
        {
            named[i] = true;
        }
        false
    });
    let [lzw, rl, ahx, a85] = named;
    let mut first = vec![Filter::Flate];
    let mut inner = vec![Filter::Flate];
    if lzw {
        for early_change in [true, false] {
            first.push(Filter::Lzw { early_change });
            inner.push(Filter::Lzw { early_change });
        }
    }
    first.extend(
        [
            (rl, Filter::RunLength),
            (ahx, Filter::AsciiHex),
            (a85, Filter::Ascii85),
        ]
        .into_iter()
        .filter_map(|(named, f)| named.then_some(f)),
    );
    for at in memchr::memmem::find_iter(bytes, b"stream") {
        if at >= 3 && &bytes[at - 3..at] == b"end" {
            continue;
        }
        // hayro accepts these three line ends after the keyword.
        let rest = &bytes[at + 6..];
        let data = if let Some(d) = rest.strip_prefix(b"\r\n") {
            d
        } else if let Some(d) = rest
            .strip_prefix(b"\n")
            .or_else(|| rest.strip_prefix(b"\r"))
        {
            d
        } else {
            continue;
        };
        // The stream's end is not needed: every decoder stops at its own end marker, or at the
        // first byte it cannot use.
        sniff(data, &first, &inner, 0, limit)?;
    }
    Ok(())
}

fn sniff(
    data: &[u8],
    first: &[Filter],
    inner: &[Filter],
    depth: usize,
    limit: u64,
) -> Result<(), Refusal> {
    let keep = depth + 1 < SNIFF_DEPTH;
    for filter in if depth == 0 { first } else { inner } {
        let out = filters::decode(*filter, data, limit, keep).map_err(|Over| over_stream(limit))?;
        if keep && out.complete && out.len > 0 {
            sniff(&out.data, first, inner, depth + 1, limit)?;
        }
    }
    Ok(())
}

/// Calls `f` with every name in `bytes` (unescaped, up to 32 bytes) and the index just after
/// it, until `f` says to stop; whether it did.
fn for_each_name(bytes: &[u8], mut f: impl FnMut(&[u8], usize) -> bool) -> bool {
    let delimiter = |b: u8| b"()<>[]{}/%".contains(&b) || white_space(b);
    let mut name = Vec::with_capacity(32);
    for at in memchr::memchr_iter(b'/', bytes) {
        name.clear();
        let mut i = at + 1;
        while let Some(&b) = bytes.get(i) {
            if delimiter(b) || name.len() > 32 {
                break;
            }
            if b == b'#'
                && let Some(v) = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                name.push(v);
                i += 3;
                continue;
            }
            name.push(b);
            i += 1;
        }
        if f(&name, i) {
            return true;
        }
    }
    false
}

/// Whether the file names an encryption dictionary (in its trailer or cross-reference
/// stream): the name `Encrypt` however it is escaped, followed by a reference or a dictionary.
pub(super) fn is_encrypted(bytes: &[u8]) -> bool {
    for_each_name(bytes, |name, mut i| {
        if name != b"Encrypt" {
            return false;
        }
        // White space and comments may come between a key and its value.
        while let Some(&b) = bytes.get(i) {
            if white_space(b) {
                i += 1;
            } else if b == b'%' {
                while bytes.get(i).is_some_and(|&b| b != b'\n' && b != b'\r') {
                    i += 1;
                }
            } else {
                break;
            }
        }
        let value = &bytes[i.min(bytes.len())..];
        value.first().is_some_and(u8::is_ascii_digit) || value.starts_with(b"<<")
    })
}

fn white_space(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

/// Keys never followed from a page: links to other pages and the document's structure, and
/// what is never drawn.
const NOT_FOLLOWED: &[&[u8]] = &[
    b"Parent",
    b"P",
    b"Kids",
    b"Dest",
    b"D",
    b"A",
    b"AA",
    b"Next",
    b"Prev",
    b"First",
    b"Last",
    b"Popup",
    b"IRT",
    b"Thumb",
    b"Metadata",
    b"PieceInfo",
    b"B",
    b"StructParent",
    b"StructParents",
];

/// Objects a page may reach before it is refused as too complex to check.
const MAX_OBJECTS: usize = 200_000;
/// Values (direct or resolved) looked at before the same.
const MAX_VALUES: usize = 2_000_000;

/// What a reached value is to the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Page,
    /// A content stream, or an array of them.
    Content,
    /// A Type 3 font's glyph procedures: every value is a content stream.
    CharProcs,
    Other,
}

/// The second pass: refuses `page` if rendering it would decode a stream past
/// `limits.max_stream_bytes`, or hold more than `limits.max_page_bytes` decoded.
pub(super) fn check_page(page: &Page<'_>, limits: &Limits) -> Result<(), Refusal> {
    let mut walk = Walk {
        xref: page.xref(),
        limits,
        seen: HashSet::new(),
        stack: Vec::new(),
        total: 0,
        values: 0,
    };
    let dict = page.raw().clone();
    if let Some(id) = dict.obj_id() {
        walk.seen.insert(ObjRef::from(id));
    }
    // Resources a page does not have itself it inherits from the page tree: only those.
    let mut parent = dict.get::<Dict<'_>>("Parent");
    for _ in 0..64 {
        let Some(p) = parent else { break };
        if let Some(resources) = p.get_raw::<Object<'_>>("Resources") {
            walk.push(resources, Role::Other);
        }
        parent = p.get::<Dict<'_>>("Parent");
    }
    walk.dict(&dict, Role::Page);
    walk.run()
}

struct Walk<'a, 'l> {
    xref: &'a XRef,
    limits: &'l Limits,
    seen: HashSet<ObjRef>,
    stack: Vec<(MaybeRef<Object<'a>>, Role)>,
    /// Bytes the page holds once decoded, so far.
    total: u64,
    values: usize,
}

impl<'a> Walk<'a, '_> {
    fn push(&mut self, value: MaybeRef<Object<'a>>, role: Role) {
        self.stack.push((value, role));
    }

    fn run(&mut self) -> Result<(), Refusal> {
        while let Some((value, role)) = self.stack.pop() {
            self.values += 1;
            if self.values > MAX_VALUES || self.seen.len() > MAX_OBJECTS {
                return Err(Refusal(
                    "this page has too many parts to check before showing it".into(),
                ));
            }
            let object = match value {
                MaybeRef::NotRef(o) => o,
                MaybeRef::Ref(r) => {
                    if !self.seen.insert(r) {
                        continue;
                    }
                    match self.xref.get::<Object<'a>>(r.into()) {
                        Some(o) => o,
                        None => continue,
                    }
                }
            };
            match object {
                Object::Dict(d) => self.dict(&d, role),
                Object::Array(a) => {
                    for item in a.raw_iter() {
                        self.push(item, role);
                    }
                }
                Object::Stream(s) => {
                    self.stream(&s, role)?;
                    self.dict(s.dict(), Role::Other);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn dict(&mut self, d: &Dict<'a>, role: Role) {
        if role != Role::Page
            && d.get::<Name<'_>>("Type")
                .is_some_and(|t| &*t == b"Page" || &*t == b"Pages")
        {
            return;
        }
        for (key, value) in d.entries() {
            if NOT_FOLLOWED.contains(&&*key) {
                continue;
            }
            let child = match (role, &*key) {
                (Role::Page, b"Contents") => Role::Content,
                (Role::CharProcs, _) => Role::Content,
                (_, b"CharProcs") => Role::CharProcs,
                _ => Role::Other,
            };
            self.push(value, child);
        }
    }

    fn add(&mut self, bytes: u64) -> Result<(), Refusal> {
        self.total = self.total.saturating_add(bytes);
        if self.total > self.limits.max_page_bytes {
            return Err(Refusal(format!(
                "this page needs more than {} MiB of memory to show",
                self.limits.max_page_bytes >> 20
            )));
        }
        Ok(())
    }

    fn stream(&mut self, s: &Stream<'a>, role: Role) -> Result<(), Refusal> {
        let dict = s.dict();
        let subtype = dict.get::<Name<'_>>("Subtype");
        let image = subtype.as_deref() == Some(b"Image");
        let content = role == Role::Content
            || subtype.as_deref() == Some(b"Form")
            || dict.get::<u8>("PatternType") == Some(1);
        let decoded = measure(s, self.limits.max_stream_bytes, content)?;
        self.add(decoded.len)?;
        if image {
            self.add(image_pixels(s, &decoded.image_input).saturating_mul(4))?;
        }
        if content {
            self.inline_images(&decoded.data)?;
        }
        Ok(())
    }

    /// Inline images (`BI … ID … EI`) in a content stream: measured like image streams.
    fn inline_images(&mut self, content: &[u8]) -> Result<(), Refusal> {
        let mut ops = TypedIter::new(content);
        while let Some(op) = ops.next() {
            if let TypedInstruction::InlineImage(image) = op {
                let decoded = measure(image.0, self.limits.max_stream_bytes, false)?;
                self.add(decoded.len)?;
                self.add(image_pixels(image.0, &decoded.image_input).saturating_mul(4))?;
            }
        }
        Ok(())
    }
}

/// One stream's filter chain, decoded as hayro decodes it.
struct Measured {
    /// Bytes the chain puts out (for an image codec: what it is given).
    len: u64,
    /// The output, when asked for.
    data: Vec<u8>,
    /// What an image codec at the end of the chain is given, to read its own size from.
    image_input: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Filter(Filter),
    /// A codec that decodes to pixels: its cost is its image's size.
    Image(Codec),
    Crypt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Dct,
    Jpx,
    Jbig2,
    Ccitt,
}

fn stage(name: &[u8], params: &Dict<'_>) -> Option<Stage> {
    Some(match name {
        b"FlateDecode" | b"Fl" => Stage::Filter(Filter::Flate),
        b"LZWDecode" | b"LZW" => Stage::Filter(Filter::Lzw {
            early_change: params.get::<u8>("EarlyChange").is_none_or(|e| e != 0),
        }),
        b"RunLengthDecode" | b"RL" => Stage::Filter(Filter::RunLength),
        b"ASCIIHexDecode" | b"AHx" => Stage::Filter(Filter::AsciiHex),
        b"ASCII85Decode" | b"A85" => Stage::Filter(Filter::Ascii85),
        b"DCTDecode" | b"DCT" => Stage::Image(Codec::Dct),
        b"JPXDecode" => Stage::Image(Codec::Jpx),
        b"JBIG2Decode" => Stage::Image(Codec::Jbig2),
        b"CCITTFaxDecode" | b"CCF" => Stage::Image(Codec::Ccitt),
        b"Crypt" => Stage::Crypt,
        _ => return None,
    })
}

/// The filters and their parameters, read as hayro-syntax 0.9 reads them (`F`/`Filter` a name
/// or an array, `DP`/`DecodeParms` a dictionary or an array of them; unknown names dropped).
fn chain<'a>(dict: &Dict<'a>) -> Vec<(Stage, Dict<'a>)> {
    let mut out = Vec::new();
    if let Some(name) = dict
        .get::<Name<'_>>("F")
        .or_else(|| dict.get::<Name<'_>>("Filter"))
    {
        let params = dict
            .get::<Dict<'_>>("DP")
            .or_else(|| dict.get::<Dict<'_>>("DecodeParms"))
            .unwrap_or_default();
        if let Some(s) = stage(&name, &params) {
            out.push((s, params));
        }
    } else if let Some(names) = dict
        .get::<Array<'_>>("F")
        .or_else(|| dict.get::<Array<'_>>("Filter"))
    {
        let mut params = dict
            .get::<Array<'_>>("DP")
            .or_else(|| dict.get::<Array<'_>>("DecodeParms"))
            .map(|a| a.iter::<Object<'_>>());
        for name in names.iter::<Name<'_>>() {
            let p = params
                .as_mut()
                .and_then(|p| p.next())
                .and_then(|p| p.into_dict())
                .unwrap_or_default();
            if let Some(s) = stage(&name, &p) {
                out.push((s, p));
            }
        }
    }
    out
}

fn measure(s: &Stream<'_>, limit: u64, keep: bool) -> Result<Measured, Refusal> {
    let dict = s.dict();
    // A stream kept in another file: hayro does not decode it.
    if matches!(
        dict.get::<Object<'_>>("F"),
        Some(Object::String(_) | Object::Dict(_))
    ) {
        return Ok(Measured {
            len: 0,
            data: Vec::new(),
            image_input: Vec::new(),
        });
    }
    let raw = s.raw_data();
    let stages = chain(dict);
    let mut current: Vec<u8> = Vec::new();
    let mut len = raw.len() as u64;
    let mut fed_raw = true;
    for (i, (stage, params)) in stages.iter().enumerate() {
        let input: &[u8] = if fed_raw { &raw } else { &current };
        let last = i + 1 == stages.len();
        match stage {
            Stage::Crypt if i == 0 => continue,
            Stage::Crypt => return Err(unsupported_chain()),
            Stage::Image(_) if !last => return Err(unsupported_chain()),
            Stage::Image(codec) => {
                if len > limit {
                    return Err(over_stream(limit));
                }
                // JPEG 2000 and JBIG2 say their own size, which can exceed the dictionary's.
                let image_input = match codec {
                    Codec::Jpx | Codec::Jbig2 => input.to_vec(),
                    Codec::Dct | Codec::Ccitt => Vec::new(),
                };
                return Ok(Measured {
                    len,
                    data: Vec::new(),
                    image_input,
                });
            }
            Stage::Filter(f) => {
                // A predictor changes the bytes the next filter reads; no writer puts one
                // before another filter, so neither is that measured.
                if !last && params.get::<u8>("Predictor").is_some_and(|p| p > 1) {
                    return Err(unsupported_chain());
                }
                let out = filters::decode(*f, input, limit, keep || !last)
                    .map_err(|Over| over_stream(limit))?;
                len = out.len;
                current = out.data;
                fed_raw = false;
            }
        }
    }
    if len > limit {
        return Err(over_stream(limit));
    }
    let data = if !keep {
        Vec::new()
    } else if fed_raw {
        raw.into_owned()
    } else {
        current
    };
    Ok(Measured {
        len,
        data,
        image_input: Vec::new(),
    })
}

fn unsupported_chain() -> Refusal {
    Refusal("this PDF uses a combination of compression filters that is not shown".into())
}

/// The pixels an image decodes to: its dictionary's size, or a larger one its codec reads
/// from the data.
fn image_pixels(s: &Stream<'_>, codec_input: &[u8]) -> u64 {
    let dict = s.dict();
    let side = |short: &str, long: &str| {
        u64::from(
            dict.get::<u32>(short)
                .or_else(|| dict.get::<u32>(long))
                .unwrap_or(0),
        )
    };
    let (mut w, mut h) = (side("W", "Width"), side("H", "Height"));
    if let Some((stage, params)) = chain(dict).last() {
        match stage {
            Stage::Image(Codec::Jpx) => {
                let (jw, jh) = jpx_size(codec_input);
                (w, h) = (w.max(jw), h.max(jh));
            }
            Stage::Image(Codec::Jbig2) => {
                let (jw, jh) = jbig2_size(codec_input);
                (w, h) = (w.max(jw), h.max(jh));
            }
            Stage::Image(Codec::Ccitt) => {
                w = w.max(u64::from(params.get::<u32>("Columns").unwrap_or(1728)));
            }
            // hayro shrinks a JPEG whose header claims more than its dictionary does.
            _ => {}
        }
    }
    w.saturating_mul(h)
}

fn be32(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 4)?;
    Some(u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]])))
}

/// The largest image a JPEG 2000 codestream declares (every SOC followed by SIZ, wherever it
/// sits in the file's boxes).
fn jpx_size(data: &[u8]) -> (u64, u64) {
    let mut size = (0, 0);
    for at in memchr::memmem::find_iter(data, &[0xFF, 0x4F, 0xFF, 0x51]) {
        let field = |n: usize| be32(data, at + 8 + 4 * n).unwrap_or(0);
        let (w, h) = (
            field(0).saturating_sub(field(2)),
            field(1).saturating_sub(field(3)),
        );
        size = (size.0.max(w), size.1.max(h));
    }
    size
}

/// The largest page or region an embedded JBIG2 stream declares, reading its segment headers
/// (ITU T.88, 7.2).
fn jbig2_size(data: &[u8]) -> (u64, u64) {
    let mut size = (0u64, 0u64);
    let mut i = 0usize;
    for _ in 0..100_000 {
        let Some(number) = be32(data, i) else { break };
        let Some(&flags) = data.get(i + 4) else { break };
        let Some(&referred) = data.get(i + 5) else {
            break;
        };
        i += 5;
        let count = if referred >> 5 == 7 {
            let Some(long) = be32(data, i) else { break };
            let count = (long & 0x1FFF_FFFF) as usize;
            i += 4 + (count + 1).div_ceil(8);
            count
        } else {
            i += 1;
            usize::from(referred >> 5)
        };
        let width = match number {
            0..=256 => 1,
            257..=65536 => 2,
            _ => 4,
        };
        i = i.saturating_add(count.saturating_mul(width));
        i += if flags & 0x40 != 0 { 4 } else { 1 };
        let Some(length) = be32(data, i) else { break };
        i += 4;
        // Page information, and the region segments (each opens with its own size).
        if matches!(
            flags & 0x3F,
            48 | 4 | 6 | 7 | 20 | 22 | 23 | 36 | 38 | 39 | 40 | 42 | 43
        ) {
            let w = be32(data, i).unwrap_or(0);
            let h = be32(data, i + 4).filter(|&h| h != 0xFFFF_FFFF).unwrap_or(0);
            size = (size.0.max(w), size.1.max(h));
        }
        if length == 0xFFFF_FFFF {
            break;
        }
        i = i.saturating_add(length as usize);
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn hex(data: &[u8]) -> Vec<u8> {
        let mut s: Vec<u8> = data
            .iter()
            .flat_map(|b| format!("{b:02x}").into_bytes())
            .collect();
        s.push(b'>');
        s
    }

    /// A file with one stream of `data`, its dictionary naming `filters` (or none).
    fn file_with(filters: &str, data: &[u8]) -> Vec<u8> {
        let mut f =
            format!("%PDF-1.7\n1 0 obj\n<< /Length 5 0 R {filters} >>\nstream\n").into_bytes();
        f.extend_from_slice(data);
        f.extend_from_slice(b"\nendstream\nendobj\n");
        f
    }

    #[test]
    fn the_first_pass_finds_a_bomb_whatever_the_dictionary_says() {
        let limit = 1 << 20;
        let zeros = vec![0u8; 4 << 20];
        let bomb = zlib(&zeros);
        // Described as anything or nothing: found.
        assert!(scan_file(&file_with("", &bomb), limit).is_err());
        assert!(scan_file(&file_with("/Filter /DCTDecode", &bomb), limit).is_err());
        // Compressed twice, and behind a text encoding the file names somewhere.
        assert!(scan_file(&file_with("", &zlib(&bomb)), limit).is_err());
        let hexed = file_with("/Filter [/AHx /Fl]", &hex(&bomb));
        assert!(scan_file(&hexed, limit).is_err());
        // The same content, small enough: fine; so is anything that is not compressed.
        assert!(scan_file(&file_with("", &zlib(&zeros[..limit as usize])), limit).is_ok());
        // Uncompressed bytes under the limit, read by every filter: fine.
        let every = "/Filter [/LZW /RL /AHx /A85]";
        let noise: Vec<u8> = (0..1u32 << 19)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for data in [&zeros[..1 << 19], &noise] {
            assert!(scan_file(&file_with("", data), limit).is_ok());
            assert!(scan_file(&file_with(every, data), limit).is_ok());
        }
        // Why RunLength is tried only where the file names it: a dark uncompressed image,
        // read as RunLength, is a bomb (two bytes of 200 are 57 bytes).
        let dark = vec![200u8; 1 << 19];
        assert!(scan_file(&file_with("", &dark), limit).is_ok());
        assert!(scan_file(&file_with("/Filter /RL", &dark), limit).is_err());
        // `endstream` is not a stream.
        assert!(scan_file(b"endstream\n\x78\x9c", limit).is_ok());
    }

    #[test]
    fn encryption_is_found_however_the_name_is_written() {
        for yes in [
            &b"trailer << /Root 1 0 R /Encrypt 5 0 R >>"[..],
            b"<< /Type /XRef /Encrypt<< /Filter /Standard >> >>",
            b"<< /Encr#79pt % a comment\n 5 0 R >>",
        ] {
            assert!(is_encrypted(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"<< /Root 1 0 R >>"[..],
            b"(about /Encrypt) Tj",
            b"<< /Encrypted 1 0 R >>",
        ] {
            assert!(!is_encrypted(no), "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn embedded_image_sizes_are_read() {
        let mut jpx = b"jP  \r\n....".to_vec();
        jpx.extend_from_slice(&[0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0]);
        for v in [70_000u32, 60_000, 0, 0] {
            jpx.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(jpx_size(&jpx), (70_000, 60_000));
        // A page information segment: number 0, type 48, no referred segments, page 1.
        let mut jb2 = vec![0, 0, 0, 0, 48, 0, 1, 0, 0, 0, 19];
        for v in [30_000u32, 40_000, 0, 0] {
            jb2.extend_from_slice(&v.to_be_bytes());
        }
        jb2.extend_from_slice(&[0, 0, 0]);
        assert_eq!(jbig2_size(&jb2), (30_000, 40_000));
        assert_eq!(jbig2_size(b"garbage"), (0, 0));
    }
}
