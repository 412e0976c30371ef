//! Primitive encodings: LEB128 varints, fixed-width little-endian integers,
//! and [`Cursor`], a bounds-checked reader over untrusted bytes.
//!
//! Every multi-byte integer Strata writes is little-endian, except the MVCC
//! timestamp inside an internal key, which is big-endian so that its bytes
//! sort like its value (see [`crate::key`]).

use crate::error::{Error, Result};

/// The longest encoding of a `u64` varint.
pub const MAX_VARINT64_LEN: usize = 10;

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub fn put_varint64(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// The number of bytes [`put_varint64`] writes for `v`.
#[inline]
pub fn varint64_len(v: u64) -> usize {
    // One byte per started group of 7 bits; zero still takes a byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Decodes a varint at the start of `buf`: the value and the bytes it took.
/// `None` when `buf` ends inside the varint or the encoding is longer than
/// ten bytes or overflows 64 bits. Overlong encodings of small values (a
/// trailing `0x80 0x00`) are refused too, so every value has one encoding.
#[inline]
pub fn get_varint64(buf: &[u8]) -> Option<(u64, usize)> {
    // Most varints in blocks (lengths of keys and values) are one byte.
    match buf.first() {
        Some(&b) if b < 0x80 => return Some((u64::from(b), 1)),
        None => return None,
        _ => {}
    }
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().take(MAX_VARINT64_LEN).enumerate() {
        let low = u64::from(b & 0x7f);
        if i == MAX_VARINT64_LEN - 1 && b > 1 {
            return None;
        }
        v |= low << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return None;
            }
            return Some((v, i + 1));
        }
    }
    None
}

/// Appends a length-prefixed byte string.
#[inline]
pub fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_varint64(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// A bounds-checked reader over untrusted bytes. Every read either returns a
/// value or a [`Error::Corruption`] naming `what` and the absolute offset of
/// the field that did not fit.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    what: &'a str,
}

impl<'a> Cursor<'a> {
    /// A cursor over `buf`, whose first byte is at absolute offset `base` in
    /// the structure named `what`.
    #[inline]
    pub fn new(buf: &'a [u8], base: u64, what: &'a str) -> Self {
        Cursor {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    /// Absolute offset of the next byte to read.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes not yet read.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when every byte has been read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// A corruption error at the cursor's position.
    pub fn error(&self, detail: &str) -> Error {
        Error::corruption(format!("{}: {}", self.what, detail), self.offset())
    }

    /// Reads exactly `n` bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.error("length runs past the end"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// Reads one byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a little-endian `u32`.
    pub fn u32_le(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Reads a little-endian `u64`.
    #[inline]
    pub fn u64_le(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads a varint.
    #[inline]
    pub fn varint64(&mut self) -> Result<u64> {
        let (v, n) = get_varint64(&self.buf[self.pos..]).ok_or_else(|| self.error("bad varint"))?;
        self.pos += n;
        Ok(v)
    }

    /// Reads a varint that must fit a `usize` no larger than `max`; used for
    /// lengths, so a hostile length never drives an allocation.
    #[inline]
    pub fn len(&mut self, max: usize) -> Result<usize> {
        let at = self.offset();
        let v = self.varint64()?;
        if v > max as u64 {
            return Err(Error::corruption(
                format!("{}: length {} exceeds limit {}", self.what, v, max),
                at,
            ));
        }
        Ok(v as usize)
    }

    /// Reads a length-prefixed byte string (the length bounded by what is
    /// left in the buffer).
    #[inline]
    pub fn length_prefixed(&mut self) -> Result<&'a [u8]> {
        let n = self.len(self.remaining())?;
        self.bytes(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trips(v in any::<u64>()) {
            let mut buf = Vec::new();
            put_varint64(&mut buf, v);
            prop_assert_eq!(buf.len(), varint64_len(v));
            prop_assert_eq!(get_varint64(&buf), Some((v, buf.len())));
            // Every strict prefix is incomplete.
            for cut in 0..buf.len() {
                prop_assert_eq!(get_varint64(&buf[..cut]), None);
            }
        }

        #[test]
        fn varint_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Some((v, n)) = get_varint64(&bytes) {
                // What decodes re-encodes to exactly the bytes consumed.
                let mut buf = Vec::new();
                put_varint64(&mut buf, v);
                prop_assert_eq!(&buf[..], &bytes[..n]);
            }
        }
    }

    #[test]
    fn varint_refuses_overflow_and_overlong() {
        let mut eleven = vec![0xffu8; 10];
        eleven.push(0x01);
        assert_eq!(get_varint64(&eleven), None);
        assert_eq!(
            get_varint64(&[0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>()),
            None
        );
        assert_eq!(get_varint64(&[0x80, 0x00]), None);
        assert_eq!(get_varint64(&[0x00]), Some((0, 1)));
    }

    #[test]
    fn cursor_reports_offset_of_short_field() {
        let mut c = Cursor::new(&[1, 2, 3], 100, "thing");
        assert_eq!(c.u8().unwrap(), 1);
        let err = c.u32_le().unwrap_err();
        assert_eq!(
            err,
            Error::corruption("thing: length runs past the end", 101)
        );
    }
}
