//! The shape of a DICOM file, checked before dicom-rs reads a byte of it: where the data set
//! starts, its transfer syntax, and where the top-level pixel data lies (a native value, or the
//! fragments of an encapsulated one).
//!
//! Why this walk exists: dicom-parser (0.10) allocates and zero-fills an element's *declared*
//! length before it reads the value, and has no option to cap it, so a 200-byte file that
//! declares a 3.9 GB value costs 3.9 GB of memory before the read fails (measured: peak RSS
//! 3.93 GB for such a file). Here every declared length, at every depth, is checked against the
//! bytes actually present, along the same path dicom-parser takes (explicit or implicit VR, the
//! standard dictionary's SQ entries, undefined lengths, items and delimiters, encapsulated pixel
//! data anywhere), and the elements must tile each defined-length sequence and item exactly. A
//! file that passes can only make dicom-rs allocate what the file holds. Values are not
//! interpreted here: that is dicom-rs's job.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use super::DicomError;

/// Sequences nested deeper than this are refused (dicom-object builds them recursively).
const MAX_DEPTH: u32 = 64;
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);

/// A file's layout, borrowing its bytes.
#[derive(Debug)]
pub(super) struct Layout<'a> {
    /// The transfer syntax UID of the file meta group, without padding.
    pub transfer_syntax: String,
    /// The data set from its first element up to (not including) the top-level pixel data
    /// element: everything the header needs, and nothing dicom-rs would copy the image from.
    pub header: &'a [u8],
    /// The top-level pixel data, if there is any.
    pub pixels: Option<Pixels<'a>>,
}

/// The top-level pixel data's value.
#[derive(Debug)]
pub(super) enum Pixels<'a> {
    Native(&'a [u8]),
    Encapsulated {
        /// The basic offset table's item value (empty when the table is).
        offset_table: &'a [u8],
        /// Each fragment's value, in order.
        fragments: Vec<&'a [u8]>,
    },
}

/// The meta group's transfer syntax, without walking the data set: for transfer syntaxes whose
/// data set is not walked (deflated, big endian), so that the refusal can name them.
pub(super) fn transfer_syntax(bytes: &[u8]) -> Result<String, DicomError> {
    Ok(meta(bytes)?.0)
}

/// Checks the whole file and finds its parts. Only the little-endian transfer syntaxes are
/// walked (the caller refuses the others by name, from [`transfer_syntax`]).
pub(super) fn read(bytes: &[u8]) -> Result<Layout<'_>, DicomError> {
    let (transfer_syntax, start) = meta(bytes)?;
    let explicit = transfer_syntax != IMPLICIT_LE;
    let mut w = Walker {
        b: bytes,
        explicit,
        pixels: None,
    };
    let end = w.elements(start, Region::ToEnd, 0)?;
    debug_assert_eq!(end, bytes.len());
    let (header_end, pixels) = match w.pixels {
        Some((at, pixels)) => (at, Some(pixels)),
        None => (bytes.len(), None),
    };
    Ok(Layout {
        transfer_syntax,
        header: &bytes[start..header_end],
        pixels,
    })
}

/// The preamble, the `DICM` marker and the file meta group (always explicit VR little endian):
/// the transfer syntax and where the data set starts.
fn meta(bytes: &[u8]) -> Result<(String, usize), DicomError> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(DicomError::Format("no DICM marker"));
    }
    let mut pos = 132;
    let mut transfer_syntax = None;
    while bytes.len() >= pos + 2 && u16_at(bytes, pos)? == 0x0002 {
        let h = header(bytes, pos, true)?;
        let len = h
            .len
            .ok_or(DicomError::Format("undefined length in the meta group"))?;
        let value = take(bytes, h.value_at, len, bytes.len())?;
        if h.tag == Tag(0x0002, 0x0010) {
            let uid = String::from_utf8_lossy(value);
            transfer_syntax = Some(uid.trim_end_matches(['\0', ' ']).trim().to_owned());
        }
        pos = h.value_at + len;
    }
    let transfer_syntax = transfer_syntax.ok_or(DicomError::Format("no transfer syntax"))?;
    if transfer_syntax.len() > 64 {
        return Err(DicomError::Format("transfer syntax UID too long"));
    }
    Ok((transfer_syntax, pos))
}

/// An element's header as dicom-parser reads it.
struct Header {
    tag: Tag,
    vr: Option<VR>,
    /// `None`: undefined length.
    len: Option<usize>,
    value_at: usize,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, DicomError> {
    let s = b
        .get(at..at + 2)
        .ok_or(DicomError::Format("truncated element"))?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, DicomError> {
    let s = b
        .get(at..at + 4)
        .ok_or(DicomError::Format("truncated element"))?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// `len` bytes at `at`, which must end by `end` (a region's end, at most the file's).
fn take(b: &[u8], at: usize, len: usize, end: usize) -> Result<&[u8], DicomError> {
    at.checked_add(len)
        .filter(|e| *e <= end)
        .and_then(|e| b.get(at..e))
        .ok_or(DicomError::Format(
            "an element is longer than the bytes that hold it",
        ))
}

fn length(raw: u32) -> Option<usize> {
    (raw != u32::MAX).then_some(raw as usize)
}

/// The header at `at`, decoded as dicom-encoding does: item tags (group FFFE) have no VR; an
/// explicit VR outside the short-length list (or unknown) has a reserved field and a 4-byte
/// length; implicit VR comes from the standard dictionary, pixel data being OW.
fn header(b: &[u8], at: usize, explicit: bool) -> Result<Header, DicomError> {
    let tag = Tag(u16_at(b, at)?, u16_at(b, at + 2)?);
    if tag.0 == 0xFFFE {
        return Ok(Header {
            tag,
            vr: None,
            len: length(u32_at(b, at + 4)?),
            value_at: at + 8,
        });
    }
    if !explicit {
        let vr = if tag == PIXEL_DATA || (tag.0 >> 8 == 0x60 && tag.1 == 0x3000) {
            VR::OW
        } else {
            StandardDataDictionary
                .by_tag(tag)
                .map(|e| e.vr().relaxed())
                .unwrap_or(VR::UN)
        };
        return Ok(Header {
            tag,
            vr: Some(vr),
            len: length(u32_at(b, at + 4)?),
            value_at: at + 8,
        });
    }
    let code = b
        .get(at + 4..at + 6)
        .ok_or(DicomError::Format("truncated element"))?;
    let vr = VR::from_binary([code[0], code[1]]).unwrap_or(VR::UN);
    use VR::*;
    if matches!(
        vr,
        AE | AS
            | AT
            | CS
            | DA
            | DS
            | DT
            | FL
            | FD
            | IS
            | LO
            | LT
            | PN
            | SH
            | SL
            | SS
            | ST
            | TM
            | UI
            | UL
            | US
    ) {
        Ok(Header {
            tag,
            vr: Some(vr),
            len: Some(usize::from(u16_at(b, at + 6)?)),
            value_at: at + 8,
        })
    } else {
        Ok(Header {
            tag,
            vr: Some(vr),
            len: length(u32_at(b, at + 8)?),
            value_at: at + 12,
        })
    }
}

/// Where a run of elements ends.
#[derive(Clone, Copy)]
enum Region {
    /// At the end of the file (the top-level data set).
    ToEnd,
    /// Exactly here (a defined-length item).
    At(usize),
    /// At an item delimitation item (an undefined-length item).
    Delimited,
}

struct Walker<'a> {
    b: &'a [u8],
    explicit: bool,
    /// The top-level pixel data: where its element starts, and its value.
    pixels: Option<(usize, Pixels<'a>)>,
}

impl<'a> Walker<'a> {
    /// Walks a data set's elements from `pos`; returns where it ended (after the delimiter for
    /// a delimited item).
    fn elements(
        &mut self,
        mut pos: usize,
        region: Region,
        depth: u32,
    ) -> Result<usize, DicomError> {
        if depth > MAX_DEPTH {
            return Err(DicomError::Format("sequences nested too deeply"));
        }
        let end = match region {
            Region::At(end) => end,
            Region::ToEnd | Region::Delimited => self.b.len(),
        };
        loop {
            match region {
                Region::ToEnd if pos == end => return Ok(pos),
                Region::At(end) if pos == end => return Ok(pos),
                _ => {}
            }
            let at = pos;
            let h = header(self.b, pos, self.explicit)?;
            if h.value_at > end {
                return Err(DicomError::Format("an element is longer than its item"));
            }
            if h.tag.0 == 0xFFFE {
                // Only an undefined-length item ends with a delimiter; any other item tag among
                // elements is malformed.
                return match (region, h.tag.1) {
                    (Region::Delimited, 0xE00D) => Ok(h.value_at),
                    _ => Err(DicomError::Format("an item tag among data elements")),
                };
            }
            pos = match h.len {
                None if h.tag == PIXEL_DATA => {
                    let (next, pixels) = self.fragments(h.value_at)?;
                    if depth == 0 && matches!(region, Region::ToEnd) && self.pixels.is_none() {
                        self.pixels = Some((at, pixels));
                    }
                    next
                }
                None => self.items(h.value_at, None, depth + 1)?,
                Some(len) if h.vr == Some(VR::SQ) => {
                    let seq_end = take(self.b, h.value_at, len, end).map(|_| h.value_at + len)?;
                    self.items(h.value_at, Some(seq_end), depth + 1)?
                }
                Some(len) => {
                    let value = take(self.b, h.value_at, len, end)?;
                    if h.tag == PIXEL_DATA && depth == 0 && self.pixels.is_none() {
                        self.pixels = Some((at, Pixels::Native(value)));
                    }
                    h.value_at + len
                }
            };
        }
    }

    /// A sequence's items, up to `end` (defined length) or through its delimiter.
    fn items(
        &mut self,
        mut pos: usize,
        end: Option<usize>,
        depth: u32,
    ) -> Result<usize, DicomError> {
        loop {
            if end == Some(pos) {
                return Ok(pos);
            }
            let limit = end.unwrap_or(self.b.len());
            let h = header(self.b, pos, self.explicit)?;
            if h.value_at > limit {
                return Err(DicomError::Format("an item is longer than its sequence"));
            }
            pos = match (h.tag, h.len) {
                (Tag(0xFFFE, 0xE0DD), _) if end.is_none() => return Ok(h.value_at),
                (Tag(0xFFFE, 0xE000), None) => {
                    self.elements(h.value_at, Region::Delimited, depth)?
                }
                (Tag(0xFFFE, 0xE000), Some(len)) => {
                    take(self.b, h.value_at, len, limit)?;
                    self.elements(h.value_at, Region::At(h.value_at + len), depth)?
                }
                _ => return Err(DicomError::Format("a sequence holds something not an item")),
            };
            if pos > limit {
                return Err(DicomError::Format("an item is longer than its sequence"));
            }
        }
    }

    /// Encapsulated pixel data: the basic offset table's item, then fragment items, then the
    /// sequence delimiter.
    fn fragments(&self, mut pos: usize) -> Result<(usize, Pixels<'a>), DicomError> {
        let mut offset_table = None;
        let mut fragments = Vec::new();
        loop {
            let h = header(self.b, pos, true)?;
            match (h.tag, h.len) {
                (Tag(0xFFFE, 0xE0DD), _) => {
                    let offset_table = offset_table.unwrap_or(&[][..]);
                    return Ok((
                        h.value_at,
                        Pixels::Encapsulated {
                            offset_table,
                            fragments,
                        },
                    ));
                }
                (Tag(0xFFFE, 0xE000), Some(len)) => {
                    let value = take(self.b, h.value_at, len, self.b.len())?;
                    if offset_table.is_none() {
                        offset_table = Some(value);
                    } else {
                        fragments.push(value);
                    }
                    pos = h.value_at + len;
                }
                _ => return Err(DicomError::Format("malformed encapsulated pixel data")),
            }
        }
    }
}
