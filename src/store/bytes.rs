//! A byte string that keeps short values inline: lock keys and tokens are
//! mostly ≤ 22 bytes, so a key or value costs no separate allocation (and no
//! allocator overhead) in the common case. Always 24 bytes.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};

const INLINE: usize = 22;

#[derive(Clone)]
pub enum SmallBytes {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

const _: () = assert!(std::mem::size_of::<SmallBytes>() == 24);

impl From<&[u8]> for SmallBytes {
    fn from(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            SmallBytes::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            SmallBytes::Heap(b.into())
        }
    }
}

impl From<Vec<u8>> for SmallBytes {
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= INLINE {
            SmallBytes::from(v.as_slice())
        } else {
            SmallBytes::Heap(v.into_boxed_slice())
        }
    }
}

impl Deref for SmallBytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, buf } => &buf[..*len as usize],
            SmallBytes::Heap(b) => b,
        }
    }
}

impl DerefMut for SmallBytes {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            SmallBytes::Inline { len, buf } => &mut buf[..*len as usize],
            SmallBytes::Heap(b) => b,
        }
    }
}

impl Borrow<[u8]> for SmallBytes {
    fn borrow(&self) -> &[u8] {
        self
    }
}

/// Hashes exactly as the byte slice does, so lookups by `&[u8]` work.
impl Hash for SmallBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for SmallBytes {}

impl std::fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_behave_alike() {
        for len in [0, 1, 21, 22, 23, 100] {
            let data: Vec<u8> = (0..len as u8).collect();
            let s = SmallBytes::from(data.as_slice());
            assert_eq!(&*s, data.as_slice());
            assert_eq!(matches!(s, SmallBytes::Inline { .. }), len <= INLINE);
            let mut h1 = std::collections::hash_map::DefaultHasher::new();
            let mut h2 = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h1);
            data.as_slice().hash(&mut h2);
            assert_eq!(h1.finish(), h2.finish());
        }
    }
}
