//! Where a table's bytes come from.
//!
//! A [`Table`](super::Table) reads its footer, its index, filter and
//! properties blocks and its data blocks through a [`TableSource`]: bytes in
//! memory ([`Bytes`], which may wrap a memory mapping), or anything that can
//! read a range of a file on demand (the engine's positioned reads). The
//! format crate does no I/O itself; the source does, and the reader treats
//! what it returns as untrusted like every other input.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;

/// The bytes of one table, read by range.
///
/// The reader asks only for ranges inside `[0, len())`, and only after it has
/// checked them against `len()`, so a source never allocates for a length a
/// damaged file merely claims. A source that returns fewer bytes than asked
/// (a file cut short after it was opened) makes the read fail as corruption
/// at that offset.
pub trait TableSource: Send + Sync {
    /// The table's length in bytes, as it was when the source was opened.
    fn len(&self) -> u64;

    /// True for a source of no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `len` bytes at `offset`, or fewer when the source ends sooner.
    /// A failure of the medium is an [`Error::Io`](crate::Error::Io) whose
    /// message names the file and the offset.
    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes>;
}

/// Bytes in memory (a `Vec`, or a memory mapping the engine wrapped):
/// reads are slices of the same buffer, without a copy.
impl TableSource for Bytes {
    fn len(&self) -> u64 {
        Bytes::len(self) as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let size = Bytes::len(self);
        let start = usize::try_from(offset).map_or(size, |o| o.min(size));
        let end = start.saturating_add(len).min(size);
        Ok(self.slice(start..end))
    }
}

/// A boxed source, such as a `Box<dyn TableSource>` chosen at run time.
impl<T: TableSource + ?Sized> TableSource for Box<T> {
    fn len(&self) -> u64 {
        (**self).len()
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        (**self).read_at(offset, len)
    }
}

/// A shared source.
impl<T: TableSource + ?Sized> TableSource for Arc<T> {
    fn len(&self) -> u64 {
        (**self).len()
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        (**self).read_at(offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_inside_and_past_their_end() {
        let b = Bytes::from_static(b"0123456789");
        assert_eq!(TableSource::len(&b), 10);
        assert_eq!(&b.read_at(2, 3).unwrap()[..], b"234");
        assert_eq!(&b.read_at(8, 5).unwrap()[..], b"89");
        assert!(b.read_at(10, 1).unwrap().is_empty());
        assert!(b.read_at(u64::MAX, usize::MAX).unwrap().is_empty());
        // A slice, not a copy.
        let s = b.read_at(1, 4).unwrap();
        assert_eq!(s.as_ptr(), b[1..].as_ptr());
    }

    #[test]
    fn boxed_and_shared_sources_read_through() {
        let b = Bytes::from_static(b"0123456789");
        let boxed: Box<dyn TableSource> = Box::new(b.clone());
        let shared: Arc<dyn TableSource> = Arc::new(b);
        assert_eq!(boxed.len(), 10);
        assert_eq!(&boxed.read_at(3, 2).unwrap()[..], b"34");
        assert_eq!(&shared.read_at(9, 9).unwrap()[..], b"9");
    }
}
