//! A sorted set: members ordered by (score, member bytes), as Redis orders
//! them. The order is one sorted vector (ranks and ranges are slices of
//! it); past 128 members or a member longer than 64 bytes (Redis's
//! `zset-max-listpack-*`, where Redis moves to a skiplist) a member → score
//! table joins it, so that lookups stop scanning. Inserting into the middle
//! moves the entries behind: fine for the small sets locks and semaphores
//! use, linear in the set's size for large ones.

use std::cmp::Ordering;

use super::table::Table;
use crate::store::SmallBytes;

/// Redis's `zset-max-listpack-entries` and `zset-max-listpack-value`.
pub const MAX_PACK_ENTRIES: usize = 128;
pub const MAX_PACK_VALUE: usize = 64;

#[derive(Clone, Default)]
pub struct ZSet {
    sorted: Vec<(f64, SmallBytes)>,
    dict: Option<Table<(SmallBytes, f64)>>,
}

/// Redis's order: by score, then by member bytes. Scores are never NaN.
pub fn order(a: (f64, &[u8]), b: (f64, &[u8])) -> Ordering {
    a.0.partial_cmp(&b.0)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.1.cmp(b.1))
}

impl ZSet {
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    pub fn encoding(&self) -> &'static str {
        if self.dict.is_some() { "skiplist" } else { "listpack" }
    }

    /// Every (score, member), in order.
    pub fn entries(&self) -> &[(f64, SmallBytes)] {
        &self.sorted
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.dict {
            Some(d) => d.get(member).map(|(_, s)| *s),
            None => self.sorted.iter().find(|(_, m)| **m == *member).map(|(s, _)| *s),
        }
    }

    fn position(&self, score: f64, member: &[u8]) -> Result<usize, usize> {
        self.sorted.binary_search_by(|(s, m)| order((*s, m), (score, member)))
    }

    /// The 0-based rank of `member`, lowest score first.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        self.position(score, member).ok()
    }

    /// Give `member` `score`; returns its previous score, if it had one.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let old = self.score(member);
        if let Some(old) = old {
            if old == score {
                return Some(old);
            }
            let Ok(at) = self.position(old, member) else {
                unreachable!("a member with a score is in the order")
            };
            let (_, m) = self.sorted.remove(at);
            let at = self.position(score, member).unwrap_or_else(|at| at);
            self.sorted.insert(at, (score, m));
            if let Some(d) = &mut self.dict {
                d.insert((member.into(), score));
            }
            return Some(old);
        }
        let at = self.position(score, member).unwrap_or_else(|at| at);
        self.sorted.insert(at, (score, member.into()));
        match &mut self.dict {
            Some(d) => {
                d.insert((member.into(), score));
            }
            None if self.sorted.len() > MAX_PACK_ENTRIES || member.len() > MAX_PACK_VALUE => self.convert(),
            None => {}
        }
        None
    }

    /// Remove `member`; its score, if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.score(member)?;
        if let Ok(at) = self.position(score, member) {
            self.sorted.remove(at);
        }
        if let Some(d) = &mut self.dict {
            d.remove(member);
        }
        Some(score)
    }

    /// Remove the entries at ranks `range`; how many there were.
    pub fn remove_ranks(&mut self, range: std::ops::Range<usize>) -> usize {
        let n = range.len();
        for (_, m) in self.sorted.drain(range) {
            if let Some(d) = &mut self.dict {
                d.remove(&m);
            }
        }
        n
    }

    /// How many entries come before any with a score above (`inclusive`:
    /// at or above) `score`: the rank where a score range starts or ends.
    pub fn rank_of_score(&self, score: f64, inclusive: bool) -> usize {
        self.sorted
            .partition_point(|(s, _)| if inclusive { *s < score } else { *s <= score })
    }

    /// As [`ZSet::rank_of_score`] for members, assuming equal scores (the
    /// BYLEX commands' precondition, which Redis does not check either).
    pub fn rank_of_member(&self, member: &[u8], inclusive: bool) -> usize {
        self.sorted
            .partition_point(|(_, m)| if inclusive { **m < *member } else { **m <= *member })
    }

    /// Entries from `cursor` (see [`Table::scan`]); a small set answers whole.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&[u8], f64)) -> u64 {
        match &self.dict {
            None => {
                self.sorted.iter().for_each(|(s, m)| visit(m, *s));
                0
            }
            Some(d) => d.scan(cursor, count, |(m, s)| visit(m, *s)),
        }
    }

    /// Go back to the small encoding if the set fits it: Redis does so for
    /// a set built by ZUNIONSTORE/ZINTERSTORE, never after a removal.
    pub fn compact_if_small(&mut self) {
        if self.sorted.len() <= MAX_PACK_ENTRIES && self.sorted.iter().all(|(_, m)| m.len() <= MAX_PACK_VALUE) {
            self.dict = None;
        }
    }

    fn convert(&mut self) {
        let mut d = Table::with_capacity(self.sorted.len());
        for (s, m) in &self.sorted {
            d.insert((m.clone(), *s));
        }
        self.dict = Some(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]
        /// Against a plain list of (score, member) sorted after each step:
        /// scores, ranks, score and lex ranges, rank removals, through the
        /// conversion to the large encoding.
        #[test]
        fn agrees_with_a_sorted_vec(ops in prop::collection::vec((0u16..300, 0u8..5, -20i32..20), 1..1000)) {
            let mut z = ZSet::default();
            let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
            for (n, op, s) in ops {
                let m = format!("m{n}").into_bytes();
                let score = f64::from(s) / 2.0;
                match op {
                    0 | 1 => {
                        let old = model.iter().position(|(_, x)| *x == m).map(|i| model.remove(i).0);
                        model.push((score, m.clone()));
                        prop_assert_eq!(z.insert(&m, score), old);
                    }
                    2 => {
                        let old = model.iter().position(|(_, x)| *x == m).map(|i| model.remove(i).0);
                        prop_assert_eq!(z.remove(&m), old);
                    }
                    3 => {
                        model.sort_by(|a, b| order((a.0, &a.1), (b.0, &b.1)));
                        let (a, b) = ((n as usize) % (model.len() + 1), (s.unsigned_abs() as usize) % (model.len() + 1));
                        let r = a.min(b)..a.max(b);
                        model.drain(r.clone());
                        z.remove_ranks(r);
                    }
                    _ => {
                        model.sort_by(|a, b| order((a.0, &a.1), (b.0, &b.1)));
                        let below = model.iter().filter(|(x, _)| *x < score).count();
                        let at_or_below = model.iter().filter(|(x, _)| *x <= score).count();
                        prop_assert_eq!(z.rank_of_score(score, true), below);
                        prop_assert_eq!(z.rank_of_score(score, false), at_or_below);
                        let rank = model.iter().position(|(_, x)| *x == m);
                        prop_assert_eq!(z.rank(&m), rank);
                    }
                }
                model.sort_by(|a, b| order((a.0, &a.1), (b.0, &b.1)));
                prop_assert_eq!(z.len(), model.len());
                prop_assert_eq!(z.encoding() == "skiplist", z.dict.is_some());
            }
            let got: Vec<(f64, Vec<u8>)> = z.entries().iter().map(|(s, m)| (*s, m.to_vec())).collect();
            prop_assert_eq!(&got, &model);
            let mut scanned: Vec<(f64, Vec<u8>)> = Vec::new();
            let mut cursor = 0;
            loop {
                cursor = z.scan(cursor, 5, |m, s| scanned.push((s, m.to_vec())));
                if cursor == 0 { break; }
            }
            scanned.sort_by(|a, b| order((a.0, &a.1), (b.0, &b.1)));
            prop_assert_eq!(&scanned, &model);
            for (s, m) in &model {
                prop_assert_eq!(z.score(m), Some(*s));
            }
        }
    }

    #[test]
    fn lex_ranks_with_equal_scores() {
        let mut z = ZSet::default();
        for m in ["a", "b", "c", "d"] {
            z.insert(m.as_bytes(), 0.0);
        }
        assert_eq!(z.rank_of_member(b"b", true), 1);
        assert_eq!(z.rank_of_member(b"b", false), 2);
        assert_eq!(z.rank_of_member(b"bb", true), 2);
        assert_eq!(z.encoding(), "listpack");
        z.insert(&[b'x'; 65], 1.0);
        assert_eq!(z.encoding(), "skiplist");
        z.remove(&[b'x'; 65]);
        assert_eq!(z.encoding(), "skiplist", "Redis does not convert back on removal");
        z.compact_if_small();
        assert_eq!(z.encoding(), "listpack");
    }
}
