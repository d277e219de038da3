//! A set value, in Redis 7.0's two encodings: integers only (at most 512)
//! are a sorted vector of i64 (Redis's intset: SMEMBERS answers in
//! ascending order, and so do we); any other member, or a 513th, makes it a
//! hash table, for good.

use super::table::Table;
use crate::protocol::decode::parse_i64;
use crate::store::SmallBytes;

/// Redis's `set-max-intset-entries`.
pub const MAX_INTSET_ENTRIES: usize = 512;

#[derive(Clone)]
pub enum Set {
    Ints(Vec<i64>),
    Table(Table<SmallBytes>),
}

impl Default for Set {
    fn default() -> Self {
        Set::Ints(Vec::new())
    }
}

/// A member as it is written: the integers of an intset in decimal.
pub enum Member<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Member<'_> {
    pub fn to_bytes(&self) -> SmallBytes {
        match self {
            Member::Int(i) => itoa::Buffer::new().format(*i).as_bytes().into(),
            Member::Bytes(b) => (*b).into(),
        }
    }

    /// Call `f` with the member's bytes (no allocation for an integer).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Member::Int(i) => f(itoa::Buffer::new().format(*i).as_bytes()),
            Member::Bytes(b) => f(b),
        }
    }
}

impl Set {
    /// An empty set in the encoding Redis would create for its first member.
    pub fn for_member(first: &[u8]) -> Set {
        if parse_i64(first).is_some() {
            Set::Ints(Vec::new())
        } else {
            Set::Table(Table::default())
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Ints(v) => v.len(),
            Set::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            Set::Ints(v) => parse_i64(member).is_some_and(|i| v.binary_search(&i).is_ok()),
            Set::Table(t) => t.get(member).is_some(),
        }
    }

    /// Add `member`; true if it is new.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        if let Set::Ints(v) = self {
            match parse_i64(member) {
                Some(i) => {
                    let Err(at) = v.binary_search(&i) else {
                        return false;
                    };
                    v.insert(at, i);
                    if v.len() > MAX_INTSET_ENTRIES {
                        self.convert();
                    }
                    return true;
                }
                None => self.convert(),
            }
        }
        let Set::Table(t) = self else {
            unreachable!("converted above")
        };
        t.insert(member.into()).is_none()
    }

    /// Remove `member`; whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            Set::Ints(v) => match parse_i64(member).map(|i| v.binary_search(&i)) {
                Some(Ok(at)) => {
                    v.remove(at);
                    true
                }
                _ => false,
            },
            Set::Table(t) => t.remove(member).is_some(),
        }
    }

    /// Every member, in the encoding's order.
    pub fn iter(&self) -> impl Iterator<Item = Member<'_>> {
        let (ints, table) = match self {
            Set::Ints(v) => (Some(v.iter()), None),
            Set::Table(t) => (None, Some(t.iter())),
        };
        ints.into_iter()
            .flatten()
            .map(|i| Member::Int(*i))
            .chain(table.into_iter().flatten().map(|m| Member::Bytes(m)))
    }

    /// A uniformly chosen member; `pick(n)` returns a number below `n`.
    pub fn random(&self, mut pick: impl FnMut(usize) -> usize) -> Option<Member<'_>> {
        match self {
            Set::Ints(v) if v.is_empty() => None,
            Set::Ints(v) => Some(Member::Int(v[pick(v.len())])),
            Set::Table(t) => t.random(pick).map(|m| Member::Bytes(m)),
        }
    }

    /// Members from `cursor` (see [`Table::scan`]); an intset answers whole.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(Member<'_>)) -> u64 {
        match self {
            Set::Ints(v) => {
                v.iter().for_each(|i| visit(Member::Int(*i)));
                0
            }
            Set::Table(t) => t.scan(cursor, count, |m| visit(Member::Bytes(m))),
        }
    }

    fn convert(&mut self) {
        if let Set::Ints(v) = self {
            let mut t = Table::with_capacity(v.len());
            for i in v.iter() {
                t.insert(itoa::Buffer::new().format(*i).as_bytes().into());
            }
            *self = Set::Table(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]
        /// Against a BTreeSet, through the intset and its conversion (a
        /// non-integer, or a 513th integer); an intset stays sorted.
        #[test]
        fn agrees_with_a_btreeset(ops in prop::collection::vec((0u16..800, 0u8..4, any::<bool>()), 1..1500)) {
            let mut s = Set::for_member(b"1");
            let mut model: BTreeSet<Vec<u8>> = BTreeSet::new();
            for (n, op, text) in ops {
                let m = if text && n % 50 == 0 { format!("m{n}") } else { format!("{}", n as i64 - 400) }.into_bytes();
                match op {
                    0 | 1 => prop_assert_eq!(s.insert(&m), model.insert(m.clone())),
                    2 => prop_assert_eq!(s.remove(&m), model.remove(&m)),
                    _ => prop_assert_eq!(s.contains(&m), model.contains(&m)),
                }
                prop_assert_eq!(s.len(), model.len());
            }
            let got: BTreeSet<Vec<u8>> = s.iter().map(|m| m.to_bytes().to_vec()).collect();
            prop_assert_eq!(&got, &model);
            if let Set::Ints(v) = &s {
                prop_assert!(v.windows(2).all(|w| w[0] < w[1]));
            }
            let mut scanned = BTreeSet::new();
            let mut cursor = 0;
            loop {
                cursor = s.scan(cursor, 7, |m| { scanned.insert(m.to_bytes().to_vec()); });
                if cursor == 0 { break; }
            }
            prop_assert_eq!(&scanned, &model);
            // A pick that moves on each call (a fixed one could keep landing
            // on an empty bucket): every pick is a member.
            let mut state = 12345u64;
            for _ in 0..20 {
                let m = s.random(|n| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (state >> 33) as usize % n
                });
                prop_assert_eq!(m.is_some(), !model.is_empty());
                if let Some(m) = m {
                    prop_assert!(model.contains(&m.to_bytes().to_vec()));
                }
            }
        }
    }

    #[test]
    fn intset_limits_as_redis() {
        let mut s = Set::for_member(b"0");
        for i in 0..MAX_INTSET_ENTRIES {
            s.insert(i.to_string().as_bytes());
        }
        assert_eq!(s.encoding(), "intset");
        s.insert(b"100000");
        assert_eq!(s.encoding(), "hashtable");
        let mut s = Set::for_member(b"1");
        s.insert(b"01");
        assert_eq!(s.encoding(), "hashtable", "not canonical: not an integer");
        assert_eq!(Set::for_member(b"x").encoding(), "hashtable");
    }
}
