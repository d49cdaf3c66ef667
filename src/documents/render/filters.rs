//! The stream filters hayro applies, decoded here with a ceiling on their output, so that what
//! a stream will inflate to is known before hayro inflates it (hayro 0.9 has no such limit).
//!
//! Each decoder makes the same decisions as hayro-syntax 0.9's (which is why some are lenient
//! ports rather than the strictest decoder to hand): a measure that stopped earlier than hayro
//! would let a stream through that hayro then inflates without limit. Where hayro gives up on a
//! stream and shows nothing, these report what came out until then, which only errs towards
//! refusing. The output is kept only when a later filter needs it; otherwise it is counted.

use std::io::Read;

/// The output went past the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Over;

/// A filter that expands its input (image codecs are checked by their dimensions instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Filter {
    Flate,
    Lzw { early_change: bool },
    RunLength,
    AsciiHex,
    Ascii85,
}

/// What a filter produced.
#[derive(Debug, Default)]
pub(super) struct Decoded {
    /// Bytes out.
    pub len: u64,
    /// The bytes themselves, when asked to keep them.
    pub data: Vec<u8>,
    /// The input ended the way its format says a stream ends (an end marker, a final block),
    /// rather than by an error or by running out.
    pub complete: bool,
}

/// Decodes `input` with `filter`, refusing as soon as the output passes `limit` bytes.
pub(super) fn decode(
    filter: Filter,
    input: &[u8],
    limit: u64,
    keep: bool,
) -> Result<Decoded, Over> {
    match filter {
        Filter::Flate => flate(input, limit, keep),
        Filter::Lzw { early_change } => {
            let mut out = Sink::new(limit, keep);
            let complete = lzw(input, early_change, &mut out)?;
            Ok(out.finish(complete))
        }
        Filter::RunLength => {
            let mut out = Sink::new(limit, keep);
            let complete = run_length(input, &mut out)?;
            Ok(out.finish(complete))
        }
        Filter::AsciiHex => {
            let mut out = Sink::new(limit, keep);
            let complete = ascii_hex(input, &mut out)?;
            Ok(out.finish(complete))
        }
        Filter::Ascii85 => {
            let mut out = Sink::new(limit, keep);
            let complete = ascii85(input, &mut out)?;
            Ok(out.finish(complete))
        }
    }
}

/// Where a decoder's output goes: counted against the limit, and kept if asked.
struct Sink {
    keep: bool,
    data: Vec<u8>,
    len: u64,
    limit: u64,
}

impl Sink {
    fn new(limit: u64, keep: bool) -> Self {
        Self {
            keep,
            data: Vec::new(),
            len: 0,
            limit,
        }
    }

    fn grow(&mut self, n: u64) -> Result<(), Over> {
        self.len = self.len.saturating_add(n);
        if self.len > self.limit {
            return Err(Over);
        }
        Ok(())
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), Over> {
        self.grow(bytes.len() as u64)?;
        if self.keep {
            self.data.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn repeat(&mut self, byte: u8, n: usize) -> Result<(), Over> {
        self.grow(n as u64)?;
        if self.keep {
            self.data.resize(self.data.len() + n, byte);
        }
        Ok(())
    }

    fn finish(self, complete: bool) -> Decoded {
        Decoded {
            len: self.len,
            data: self.data,
            complete,
        }
    }
}

/// hayro's FlateDecode: zlib (flate2), else raw deflate (flate2), else its lenient inflater,
/// taking the first that does not fail. A failed attempt's output is dropped, as hayro drops
/// it, but it was allocated there: an attempt that passes the limit before failing refuses.
fn flate(input: &[u8], limit: u64, keep: bool) -> Result<Decoded, Over> {
    for zlib in [true, false] {
        let mut out = Sink::new(limit, keep);
        if strict(input, zlib, &mut out)? {
            return Ok(out.finish(true));
        }
    }
    let mut out = Sink::new(limit, keep);
    let complete = Lenient::new(input, &mut out).run()?;
    Ok(out.finish(complete))
}

/// One flate2 attempt, read the way hayro reads it; whether it succeeded.
fn strict(input: &[u8], zlib: bool, out: &mut Sink) -> Result<bool, Over> {
    let mut reader: Box<dyn Read + '_> = if zlib {
        Box::new(flate2::read::ZlibDecoder::new(input))
    } else {
        Box::new(flate2::read::DeflateDecoder::new(input))
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => out.extend(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(false),
        }
    }
}

/// hayro-syntax 0.9's fallback inflater (a port of pdf.js's `FlateStream`), decision for
/// decision: it strips a zlib header only when it checks out, ignores a stored block's length
/// check, accepts incomplete code tables, skips back-references that reach before the start and
/// ends quietly on anything else. Back-references need only the last 32 KiB of output, so that
/// is all it keeps when the output itself is not wanted.
struct Lenient<'a, 'o> {
    data: &'a [u8],
    pos: usize,
    code_buf: u32,
    code_size: u8,
    eof: bool,
    /// Whether the block marked final ended as its format says.
    complete: bool,
    window: Vec<u8>,
    out: &'o mut Sink,
}

const WINDOW: usize = 32 * 1024;

struct Huffman {
    codes: Vec<u32>,
    max_len: u8,
}

impl<'a, 'o> Lenient<'a, 'o> {
    fn new(data: &'a [u8], out: &'o mut Sink) -> Self {
        let zlib = data.len() >= 2 && {
            let (cmf, flg) = (data[0], data[1]);
            cmf & 0x0f == 0x08
                && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
                && flg & 0x20 == 0
        };
        Self {
            data: if zlib { &data[2..] } else { data },
            pos: 0,
            code_buf: 0,
            code_size: 0,
            eof: false,
            complete: false,
            window: Vec::new(),
            out,
        }
    }

    fn run(mut self) -> Result<bool, Over> {
        while !self.eof && self.pos < self.data.len() {
            self.block()?;
        }
        Ok(self.complete)
    }

    fn push(&mut self, byte: u8) -> Result<(), Over> {
        self.out.extend(&[byte])?;
        self.window.push(byte);
        if self.window.len() >= 2 * WINDOW + 1024 {
            self.window.drain(..self.window.len() - WINDOW - 512);
        }
        Ok(())
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn bits(&mut self, n: u8) -> Option<u32> {
        while self.code_size < n {
            let b = self.byte()?;
            self.code_buf |= u32::from(b) << self.code_size;
            self.code_size += 8;
        }
        let v = self.code_buf & ((1 << n) - 1);
        self.code_buf >>= n;
        self.code_size -= n;
        Some(v)
    }

    fn code(&mut self, table: &Huffman) -> Option<u16> {
        while self.code_size < table.max_len {
            match self.byte() {
                Some(b) => {
                    self.code_buf |= u32::from(b) << self.code_size;
                    self.code_size += 8;
                }
                None => break,
            }
        }
        let code = *table
            .codes
            .get((self.code_buf & ((1 << table.max_len) - 1)) as usize)?;
        let len = (code >> 16) as u8;
        if len < 1 || self.code_size < len {
            return None;
        }
        self.code_buf >>= len;
        self.code_size -= len;
        Some((code & 0xffff) as u16)
    }

    fn block(&mut self) -> Result<(), Over> {
        let Some(header) = self.bits(3) else {
            self.eof = true;
            return Ok(());
        };
        let last = header & 1 != 0;
        if last {
            self.eof = true;
        }
        let ended = match header >> 1 {
            0 => self.stored()?,
            1 => self.compressed(&fixed_tables())?,
            2 => match self.dynamic_tables() {
                Some(tables) => self.compressed(&tables)?,
                None => {
                    self.eof = true;
                    false
                }
            },
            _ => {
                self.eof = true;
                false
            }
        };
        if last && ended {
            self.complete = true;
        }
        Ok(())
    }

    /// A stored block; whether it was whole.
    fn stored(&mut self) -> Result<bool, Over> {
        self.code_buf = 0;
        self.code_size = 0;
        let mut four = [0u8; 4];
        for b in &mut four {
            match self.byte() {
                Some(v) => *b = v,
                None => {
                    self.eof = true;
                    return Ok(false);
                }
            }
        }
        // The one's complement check is ignored, as hayro ignores it.
        let len = usize::from(u16::from_le_bytes([four[0], four[1]]));
        if len == 0 {
            if self.pos >= self.data.len() {
                self.eof = true;
            }
            return Ok(true);
        }
        let end = (self.pos + len).min(self.data.len());
        let whole = end - self.pos == len;
        for i in self.pos..end {
            self.push(self.data[i])?;
        }
        self.pos = end;
        if !whole {
            self.eof = true;
        }
        Ok(whole)
    }

    /// A Huffman-coded block; whether it reached its end-of-block code.
    fn compressed(&mut self, (lit, dist): &(Huffman, Huffman)) -> Result<bool, Over> {
        loop {
            let Some(sym) = self.code(lit) else {
                self.eof = true;
                return Ok(false);
            };
            if sym < 256 {
                self.push(sym as u8)?;
                continue;
            }
            if sym == 256 {
                return Ok(true);
            }
            let info = LENGTH_BASE
                .get(usize::from(sym - 257))
                .copied()
                .unwrap_or(0);
            let mut length = (info & 0xffff) as usize;
            let extra = (info >> 16) as u8;
            if extra > 0 {
                match self.bits(extra) {
                    Some(e) => length += e as usize,
                    None => {
                        self.eof = true;
                        return Ok(false);
                    }
                }
            }
            let Some(dsym) = self.code(dist) else {
                self.eof = true;
                return Ok(false);
            };
            let Some(&dinfo) = DIST_BASE.get(usize::from(dsym)) else {
                self.eof = true;
                return Ok(false);
            };
            let mut distance = (dinfo & 0xffff) as usize;
            let extra = (dinfo >> 16) as u8;
            if extra > 0 {
                match self.bits(extra) {
                    Some(e) => distance += e as usize,
                    None => {
                        self.eof = true;
                        return Ok(false);
                    }
                }
            }
            // A distance that reaches before the start copies nothing (hayro's choice).
            if distance <= self.out.len as usize && distance <= self.window.len() {
                for _ in 0..length {
                    let b = self.window[self.window.len() - distance];
                    self.push(b)?;
                }
            }
        }
    }

    fn dynamic_tables(&mut self) -> Option<(Huffman, Huffman)> {
        let lit_codes = self.bits(5)? as usize + 257;
        let dist_codes = self.bits(5)? as usize + 1;
        let len_codes = self.bits(4)? as usize + 4;
        let mut len_lengths = [0u8; 19];
        for &at in &CODE_LENGTH_ORDER[..len_codes] {
            len_lengths[usize::from(at)] = self.bits(3)? as u8;
        }
        let len_table = huffman(&len_lengths);
        let total = lit_codes + dist_codes;
        let mut lengths = vec![0u8; total];
        let mut i = 0;
        while i < total {
            let (value, repeat) = match self.code(&len_table)? {
                c @ 0..=15 => (c as u8, 1),
                16 => (
                    if i > 0 { lengths[i - 1] } else { 0 },
                    self.bits(2)? as usize + 3,
                ),
                17 => (0, self.bits(3)? as usize + 3),
                18 => (0, self.bits(7)? as usize + 11),
                _ => return None,
            };
            for _ in 0..repeat {
                if i < total {
                    lengths[i] = value;
                    i += 1;
                }
            }
        }
        Some((
            huffman(&lengths[..lit_codes]),
            huffman(&lengths[lit_codes..]),
        ))
    }
}

/// pdf.js's table construction: every code of every length, bit-reversed, filling all the
/// slots it prefixes; an over- or under-full set of lengths is built as it comes.
fn huffman(lengths: &[u8]) -> Huffman {
    let max_len = lengths.iter().copied().max().unwrap_or(0);
    if max_len == 0 {
        return Huffman {
            codes: vec![0],
            max_len: 1,
        };
    }
    let size = 1usize << max_len;
    let mut codes = vec![0u32; size];
    let mut code = 0u32;
    for len in 1..=max_len {
        for (value, &l) in lengths.iter().enumerate() {
            if l != len {
                continue;
            }
            let mut reversed = 0u32;
            let mut t = code;
            for _ in 0..len {
                reversed = (reversed << 1) | (t & 1);
                t >>= 1;
            }
            let mut i = reversed as usize;
            while i < size {
                codes[i] = (u32::from(len) << 16) | value as u32;
                i += 1 << len;
            }
            code += 1;
        }
        code <<= 1;
    }
    Huffman { codes, max_len }
}

/// The fixed literal/length and distance tables (RFC 1951, 3.2.6), built like hayro's.
fn fixed_tables() -> (Huffman, Huffman) {
    let mut lit = [8u8; 288];
    lit[144..256].fill(9);
    lit[256..280].fill(7);
    (huffman(&lit), huffman(&[5u8; 30]))
}

const CODE_LENGTH_ORDER: [u8; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Length codes 257..285: extra bits << 16 | base length.
const LENGTH_BASE: [u32; 29] = [
    0x00003, 0x00004, 0x00005, 0x00006, 0x00007, 0x00008, 0x00009, 0x0000a, 0x1000b, 0x1000d,
    0x1000f, 0x10011, 0x20013, 0x20017, 0x2001b, 0x2001f, 0x30023, 0x3002b, 0x30033, 0x3003b,
    0x40043, 0x40053, 0x40063, 0x40073, 0x50083, 0x500a3, 0x500c3, 0x500e3, 0x00102,
];

/// Distance codes 0..29: extra bits << 16 | base distance.
const DIST_BASE: [u32; 30] = [
    0x00001, 0x00002, 0x00003, 0x00004, 0x10005, 0x10007, 0x20009, 0x2000d, 0x30011, 0x30019,
    0x40021, 0x40031, 0x50041, 0x50061, 0x60081, 0x600c1, 0x70101, 0x70181, 0x80201, 0x80301,
    0x90401, 0x90601, 0xa0801, 0xa0c01, 0xb1001, 0xb1801, 0xc2001, 0xc3001, 0xd4001, 0xd6001,
];

/// hayro's LZWDecode: 9- to 12-bit codes read most significant bit first, a table of at most
/// 4096 entries that stops growing when full. Entries are kept as (prefix, last byte, length),
/// so counting an entry costs nothing and writing it costs its length. Whether it reached the
/// end-of-data code.
fn lzw(input: &[u8], early_change: bool, out: &mut Sink) -> Result<bool, Over> {
    const CLEAR: usize = 256;
    const EOD: usize = 257;
    const FIRST: usize = 258;
    const MAX: usize = 4096;
    let mut prefix: Vec<u16> = (0..FIRST as u16).collect();
    let mut last: Vec<u8> = (0..FIRST).map(|b| b as u8).collect();
    let mut len: Vec<u32> = (0..FIRST).map(|b| u32::from(b < 256)).collect();
    let mut first: Vec<u8> = last.clone();
    let mut scratch = Vec::new();
    let mut bit = 0usize;
    let mut prev: Option<usize> = None;
    let width = |size: usize| {
        let adjusted = size + usize::from(early_change);
        match adjusted {
            2048.. => 12,
            1024.. => 11,
            512.. => 10,
            _ => 9,
        }
    };
    let mut emit = |code: usize, prefix: &[u16], last: &[u8], len: &[u32]| -> Result<(), Over> {
        let n = len[code] as usize;
        if !out.keep {
            return out.grow(n as u64);
        }
        scratch.clear();
        let mut c = code;
        for _ in 0..n {
            scratch.push(last[c]);
            c = usize::from(prefix[c]);
        }
        scratch.reverse();
        out.extend(&scratch)
    };
    loop {
        let n = width(len.len());
        if bit + n > input.len() * 8 {
            return Ok(false);
        }
        let mut code = 0usize;
        for i in bit..bit + n {
            code = (code << 1) | usize::from(input[i / 8] >> (7 - i % 8) & 1);
        }
        bit += n;
        match code {
            CLEAR => {
                prefix.truncate(FIRST);
                last.truncate(FIRST);
                len.truncate(FIRST);
                first.truncate(FIRST);
                prev = None;
            }
            EOD => return Ok(true),
            c if c < len.len() => {
                emit(c, &prefix, &last, &len)?;
                if let Some(p) = prev
                    && len.len() < MAX
                {
                    prefix.push(p as u16);
                    last.push(first[c]);
                    len.push(len[p] + 1);
                    first.push(first[p]);
                }
                prev = Some(c);
            }
            c if c == len.len() && prev.is_some() && len.len() < MAX => {
                let p = prev.unwrap_or_default();
                prefix.push(p as u16);
                last.push(first[p]);
                len.push(len[p] + 1);
                first.push(first[p]);
                emit(c, &prefix, &last, &len)?;
                prev = Some(c);
            }
            // A code past the table: hayro gives up on the stream.
            _ => return Ok(false),
        }
    }
}

/// hayro's RunLengthDecode. Whether it reached the end-of-data byte.
fn run_length(input: &[u8], out: &mut Sink) -> Result<bool, Over> {
    let mut i = 0;
    while let Some(&n) = input.get(i) {
        i += 1;
        match n {
            128 => return Ok(true),
            0..=127 => {
                let end = i + usize::from(n) + 1;
                let Some(run) = input.get(i..end) else {
                    return Ok(false);
                };
                out.extend(run)?;
                i = end;
            }
            _ => {
                let Some(&b) = input.get(i) else {
                    return Ok(false);
                };
                i += 1;
                out.repeat(b, 257 - usize::from(n))?;
            }
        }
    }
    Ok(false)
}

fn pdf_white_space(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

/// hayro's ASCIIHexDecode, up to `>` or the first byte that is not a hex digit.
fn ascii_hex(input: &[u8], out: &mut Sink) -> Result<bool, Over> {
    let mut high: Option<u8> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut complete = false;
    for &b in input {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'F' => b - b'A' + 10,
            b'a'..=b'f' => b - b'a' + 10,
            b'>' => {
                complete = true;
                break;
            }
            _ if pdf_white_space(b) => continue,
            _ => break,
        };
        match high.take() {
            Some(h) => buf.push(h << 4 | digit),
            None => high = Some(digit),
        }
        if buf.len() == buf.capacity() {
            out.extend(&buf)?;
            buf.clear();
        }
    }
    if let Some(h) = high {
        buf.push(h << 4);
    }
    out.extend(&buf)?;
    Ok(complete)
}

/// hayro's ASCII85Decode, up to `~` or the first byte outside the alphabet (`z` is four
/// zeros: the one expansion this filter has).
fn ascii85(input: &[u8], out: &mut Sink) -> Result<bool, Over> {
    fn flush(group: &mut Vec<u8>, out: &mut Sink) -> Result<(), Over> {
        let n = group.len();
        if n >= 2 {
            let mut value: u64 = 0;
            for i in 0..5 {
                let d = group.get(i).copied().unwrap_or(b'u') - b'!';
                value = value * 85 + u64::from(d);
            }
            let bytes = (value as u32).to_be_bytes();
            out.extend(&bytes[..n - 1])?;
        }
        group.clear();
        Ok(())
    }
    let mut group = Vec::with_capacity(5);
    for &b in input {
        match b {
            b'!'..=b'u' => {
                group.push(b);
                if group.len() == 5 {
                    flush(&mut group, out)?;
                }
            }
            b'z' => {
                flush(&mut group, out)?;
                out.repeat(0, 4)?;
            }
            b'~' => {
                flush(&mut group, out)?;
                return Ok(true);
            }
            _ if pdf_white_space(b) => {}
            _ => return Ok(false),
        }
    }
    flush(&mut group, out)?;
    Ok(false)
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

    #[test]
    fn flate_decodes_what_it_is_given_and_stops_at_the_limit() {
        let text = b"BT /F1 12 Tf (hello) Tj ET ".repeat(100);
        let packed = zlib(&text);
        let d = decode(Filter::Flate, &packed, 1 << 20, true).unwrap();
        assert_eq!((d.data.as_slice(), d.complete), (text.as_slice(), true));
        // One byte under the size passes, one over is refused, counting or keeping.
        let n = text.len() as u64;
        assert_eq!(decode(Filter::Flate, &packed, n, false).unwrap().len, n);
        assert_eq!(
            decode(Filter::Flate, &packed, n - 1, false).unwrap_err(),
            Over
        );
        // A megabyte of zeros in about a kilobyte: stopped at the limit, not at its end.
        let bomb = zlib(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 2048, "{}", bomb.len());
        assert_eq!(
            decode(Filter::Flate, &bomb, 64 * 1024, true).unwrap_err(),
            Over
        );
    }

    #[test]
    fn the_lenient_fallback_is_measured_too() {
        // A stored block whose length check is wrong: flate2 refuses it at once, hayro's
        // fallback copies it and carries on into whatever follows.
        let mut data = vec![0b000, 5, 0, 0, 0];
        data.extend_from_slice(b"hello");
        // A final fixed block of one literal 'a' (0x61 + 0x30 = 0x91, 8 bits) and 100 copies
        // of it as matches of 258 (code 285, 8 bits 11000101) at distance 1 (code 0, 5 bits).
        let mut bits: Vec<u8> = vec![1, 1, 0];
        let code = |v: u32, n: u32, bits: &mut Vec<u8>| {
            for i in (0..n).rev() {
                bits.push((v >> i & 1) as u8);
            }
        };
        code(0x91, 8, &mut bits);
        for _ in 0..100 {
            code(0b1100_0101, 8, &mut bits);
            code(0, 5, &mut bits);
        }
        code(0, 7, &mut bits);
        let mut bytes = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.iter().enumerate() {
            bytes[i / 8] |= b << (i % 8);
        }
        data.extend_from_slice(&bytes);
        let mut strict_out = Sink::new(u64::MAX, false);
        assert!(!strict(&data, false, &mut strict_out).unwrap());
        let d = decode(Filter::Flate, &data, 1 << 20, true).unwrap();
        assert_eq!(d.len, 5 + 1 + 258 * 100);
        assert!(d.data.starts_with(b"helloa") && d.data.ends_with(b"aaaa") && d.complete);
        assert_eq!(
            decode(Filter::Flate, &data, 10_000, false).unwrap_err(),
            Over
        );
    }

    #[test]
    fn the_fixed_tables_are_hayros() {
        // Entries of hayro-syntax 0.9's FIXED_LIT_CODE_TAB and FIXED_DIST_CODE_TAB.
        let (lit, dist) = fixed_tables();
        assert_eq!(lit.max_len, 9);
        assert_eq!(lit.codes.len(), 512);
        for (i, v) in [
            (0, 0x70100),
            (1, 0x80050),
            (3, 0x80118),
            (7, 0x900c0),
            (511, 0x900ff),
        ] {
            assert_eq!(lit.codes[i], v, "{i}");
        }
        assert_eq!(
            (dist.codes[0], dist.codes[15], dist.codes[31]),
            (0x50000, 0, 0)
        );
    }

    #[test]
    fn lzw_run_length_and_the_ascii_filters() {
        // LZW (early change) of "ABABABA": codes A, B, 258 (AB), 260 (ABA), then EOD, 9 bits.
        let codes = [256u16, 65, 66, 258, 260, 257];
        let mut bits = Vec::new();
        for c in codes {
            for i in (0..9).rev() {
                bits.push((c >> i & 1) as u8);
            }
        }
        let mut lzw_bytes = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.iter().enumerate() {
            lzw_bytes[i / 8] |= b << (7 - i % 8);
        }
        let d = decode(Filter::Lzw { early_change: true }, &lzw_bytes, 100, true).unwrap();
        assert_eq!(
            (d.data.as_slice(), d.complete),
            (b"ABABABA".as_slice(), true)
        );
        assert_eq!(
            decode(Filter::Lzw { early_change: true }, &lzw_bytes, 100, false)
                .unwrap()
                .len,
            7
        );

        let rl = [4, 10, 11, 12, 13, 14, 253, 3, 128];
        let d = decode(Filter::RunLength, &rl, 100, true).unwrap();
        assert_eq!(d.data, [10, 11, 12, 13, 14, 3, 3, 3, 3]);
        // 129..255 repeat the next byte up to 128 times: 2 bytes in, 128 out.
        let rl_bomb = [129u8, 0].repeat(1000);
        assert_eq!(
            decode(Filter::RunLength, &rl_bomb, 100_000, false).unwrap_err(),
            Over
        );

        let d = decode(Filter::AsciiHex, b"AF 3e2 901>junk", 100, true).unwrap();
        assert_eq!(
            (d.data.as_slice(), d.complete),
            ([0xaf, 0x3e, 0x29, 0x01].as_slice(), true)
        );
        let d = decode(Filter::Ascii85, b"87cURD]i,\"Ebo80~>", 100, true).unwrap();
        assert_eq!(d.data, b"Hello World!");
        assert_eq!(
            decode(Filter::Ascii85, &[b'z'; 100], 399, false).unwrap_err(),
            Over
        );
    }
}
