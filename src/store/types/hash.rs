//! A hash value: field → value, in Redis 7's two encodings. Small hashes
//! are a vector in insertion order (Redis's listpack: HGETALL answers in the
//! order fields were added, and so do we); past 512 fields or a field or
//! value longer than 64 bytes it becomes a hash table, for good.

use super::table::Table;
use crate::store::SmallBytes;

/// Redis's `hash-max-listpack-entries` and `hash-max-listpack-value`.
pub const MAX_PACK_ENTRIES: usize = 512;
pub const MAX_PACK_VALUE: usize = 64;

#[derive(Clone)]
pub enum Hash {
    Pack(Vec<(SmallBytes, SmallBytes)>),
    Table(Table<(SmallBytes, SmallBytes)>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Pack(Vec::new())
    }
}

impl Hash {
    pub fn len(&self) -> usize {
        match self {
            Hash::Pack(v) => v.len(),
            Hash::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Pack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Pack(v) => v.iter().find(|(f, _)| **f == *field).map(|(_, v)| &**v),
            Hash::Table(t) => t.get(field).map(|(_, v)| &**v),
        }
    }

    /// Set `field` to `value`; true if the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let Hash::Pack(v) = self {
            if field.len() > MAX_PACK_VALUE || value.len() > MAX_PACK_VALUE {
                self.convert();
            } else {
                if let Some((_, old)) = v.iter_mut().find(|(f, _)| **f == *field) {
                    *old = value.into();
                    return false;
                }
                v.push((field.into(), value.into()));
                if v.len() > MAX_PACK_ENTRIES {
                    self.convert();
                }
                return true;
            }
        }
        let Hash::Table(t) = self else {
            unreachable!("converted above")
        };
        t.insert((field.into(), value.into())).is_none()
    }

    /// Remove `field`; whether it was there. The others keep their order.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Pack(v) => match v.iter().position(|(f, _)| **f == *field) {
                Some(i) => {
                    v.remove(i);
                    true
                }
                None => false,
            },
            Hash::Table(t) => t.remove(field).is_some(),
        }
    }

    /// Every (field, value), in the encoding's order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let (pack, table) = match self {
            Hash::Pack(v) => (Some(v.iter()), None),
            Hash::Table(t) => (None, Some(t.iter())),
        };
        pack.into_iter()
            .flatten()
            .chain(table.into_iter().flatten())
            .map(|(f, v)| (&**f, &**v))
    }

    fn convert(&mut self) {
        if let Hash::Pack(v) = self {
            let mut t = Table::with_capacity(v.len());
            for item in v.drain(..) {
                t.insert(item);
            }
            *self = Hash::Table(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]
        /// Against a map: every operation, across the conversion (fields
        /// past 512, or a long value); a small hash keeps insertion order.
        #[test]
        fn agrees_with_a_map(ops in prop::collection::vec((0u16..700, 0u8..3, 0usize..80), 1..1500)) {
            let mut h = Hash::default();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut order: Vec<Vec<u8>> = Vec::new();
            for (k, op, vlen) in ops {
                let f = format!("f{k}").into_bytes();
                match op {
                    0 | 1 => {
                        let v = vec![b'v'; vlen];
                        let new = h.insert(&f, &v);
                        prop_assert_eq!(new, model.insert(f.clone(), v).is_none());
                        if new { order.push(f); }
                    }
                    _ => {
                        prop_assert_eq!(h.remove(&f), model.remove(&f).is_some());
                        order.retain(|o| *o != f);
                    }
                }
                prop_assert_eq!(h.len(), model.len());
                prop_assert_eq!(h.get(b"f1"), model.get(&b"f1"[..]).map(|v| &v[..]));
            }
            let got: BTreeMap<Vec<u8>, Vec<u8>> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            prop_assert_eq!(&got, &model);
            if h.encoding() == "listpack" {
                let fields: Vec<Vec<u8>> = h.iter().map(|(f, _)| f.to_vec()).collect();
                prop_assert_eq!(fields, order);
            }
        }
    }

    #[test]
    fn converts_as_redis_does() {
        let mut h = Hash::default();
        for i in 0..MAX_PACK_ENTRIES {
            h.insert(format!("{i}").as_bytes(), b"v");
        }
        assert_eq!(h.encoding(), "listpack");
        h.insert(b"one more", b"v");
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::default();
        h.insert(b"f", &[b'x'; MAX_PACK_VALUE]);
        assert_eq!(h.encoding(), "listpack");
        h.insert(b"f", &[b'x'; MAX_PACK_VALUE + 1]);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 1);
    }
}
