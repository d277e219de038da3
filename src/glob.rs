//! Redis's glob-style pattern matching, `stringmatchlen` in redis/src/util.c:
//! `*`, `?`, `[abc]`, `[^a]`, `[a-z]` and `\` escapes, with Redis's answer in
//! every odd case (an unterminated `[` ends at the pattern's end, reversed
//! range ends are swapped, a trailing `\` is a literal backslash, and an empty
//! text matches only the empty pattern). Used for every pattern a client
//! sends: KEYS, SCAN MATCH, CONFIG GET and COMMAND LIST FILTERBY PATTERN.
//!
//! Matching takes O(pattern × text) steps whatever the pattern, so a client
//! cannot stall a worker with `a*a*a*…b` (CVE-2022-36021). Only the last `*`
//! ever needs retrying: if the rest of the pattern after a later `*` cannot
//! match from any position, giving an earlier `*` more text only starts that
//! same rest later, which cannot help either. Redis's recursive matcher stops
//! the same way (its `skipLongerMatches`), so the answers agree exactly.

/// Redis fails a match that has to get past more `*` runs than this
/// (CVE-2024-31228: it bounds its recursion). Not needed for time here, but
/// kept so that every answer is Redis's.
const MAX_STAR_RUNS: usize = 1000;

/// Whether `text` matches `pattern`; `nocase` folds ASCII letters (CONFIG GET).
pub fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    match_counting(pattern, text, nocase, &mut 0)
}

/// [`matches`], adding to `steps` one for each pattern byte looked at (and
/// one per retry); the tests hold it to (pattern + 1) × (text + 1).
fn match_counting(pattern: &[u8], text: &[u8], nocase: bool, steps: &mut usize) -> bool {
    // Redis's loop needs text to run at all: even "*" does not match "".
    if text.is_empty() {
        return pattern.is_empty();
    }
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen: where the pattern goes on after it, and where in the
    // text the current attempt at that rest began.
    let mut star: Option<(usize, usize)> = None;
    let mut star_runs = 0;
    loop {
        *steps += 1;
        let failed = if pi == pattern.len() {
            true // pattern used up with text left
        } else if pattern[pi] == b'*' {
            while pattern.get(pi + 1) == Some(&b'*') {
                *steps += 1;
                pi += 1;
            }
            if pi + 1 == pattern.len() {
                return true;
            }
            star_runs += 1;
            if star_runs > MAX_STAR_RUNS {
                return false;
            }
            pi += 1;
            star = Some((pi, ti));
            false
        } else {
            match one(pattern, pi, text[ti], nocase, steps) {
                None => true,
                Some(next) => {
                    pi = next;
                    ti += 1;
                    if ti == text.len() {
                        // Text used up: only `*`s may be left of the pattern.
                        while pattern.get(pi) == Some(&b'*') {
                            *steps += 1;
                            pi += 1;
                        }
                        if pi == pattern.len() {
                            return true;
                        }
                        true
                    } else {
                        false
                    }
                }
            }
        };
        if failed {
            // Let the last `*` take one more byte; it never takes the last
            // byte, since the rest of the pattern cannot match nothing.
            let Some((after, began)) = star else { return false };
            if began + 1 == text.len() {
                return false;
            }
            star = Some((after, began + 1));
            pi = after;
            ti = began + 1;
        }
    }
}

/// Whether the pattern token at `pi` (anything but `*`) matches byte `c`;
/// the index just past the token if so.
fn one(pattern: &[u8], pi: usize, c: u8, nocase: bool, steps: &mut usize) -> Option<usize> {
    match pattern[pi] {
        b'?' => Some(pi + 1),
        b'[' => {
            let mut i = pi + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut hit = false;
            // The end of the pattern closes an unterminated class.
            while i < pattern.len() {
                *steps += 1;
                if pattern[i] == b'\\' && i + 1 < pattern.len() {
                    i += 1;
                    // Redis compares an escaped class member exactly, even with nocase.
                    hit |= pattern[i] == c;
                } else if pattern[i] == b']' {
                    break;
                } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' {
                    let (mut lo, mut hi) = (as_c_char(pattern[i]), as_c_char(pattern[i + 2]));
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    let mut x = as_c_char(c);
                    if nocase {
                        (lo, hi, x) = (to_lower(lo), to_lower(hi), to_lower(x));
                    }
                    hit |= lo <= x && x <= hi;
                    i += 2;
                } else {
                    hit |= eq(pattern[i], c, nocase);
                }
                i += 1;
            }
            (hit != negate).then_some((i + 1).min(pattern.len()))
        }
        b'\\' if pi + 1 < pattern.len() => eq(pattern[pi + 1], c, nocase).then_some(pi + 2),
        b => eq(b, c, nocase).then_some(pi + 1),
    }
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    a == b || (nocase && a.eq_ignore_ascii_case(&b))
}

/// A byte as C's `char` holds it: Redis compares range ends as `char`s, so
/// where `char` is signed (x86-64) `[a-\xff]` spans `\xff..=a`.
fn as_c_char(b: u8) -> i32 {
    b as std::ffi::c_char as i32
}

/// C's `tolower` in the "C" locale (Redis never sets LC_CTYPE).
fn to_lower(x: i32) -> i32 {
    if (i32::from(b'A')..=i32::from(b'Z')).contains(&x) {
        x + 32
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::{match_counting, matches};
    use proptest::prelude::*;

    /// A line-by-line port of Redis's `stringmatchlen_impl` (util.c),
    /// recursion, `skipLongerMatches` and nesting limit included, with C's
    /// string terminator read as 0 past the pattern's end. Exponential on
    /// some inputs; only for small ones.
    fn reference(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
        let mut skip_longer = false;
        reference_impl(
            pattern,
            0,
            pattern.len() as isize,
            text,
            0,
            text.len() as isize,
            nocase,
            &mut skip_longer,
            0,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn reference_impl(
        pat: &[u8],
        mut p: usize,
        mut plen: isize,
        s: &[u8],
        mut si: usize,
        mut slen: isize,
        nocase: bool,
        skip_longer: &mut bool,
        nesting: usize,
    ) -> bool {
        let at = |i: usize| pat.get(i).copied().unwrap_or(0);
        let char_of = |b: u8| b as std::ffi::c_char as i32;
        let tolower = |x: i32| if (65..=90).contains(&x) { x + 32 } else { x };
        if nesting > 1000 {
            return false;
        }
        while plen != 0 && slen != 0 {
            match at(p) {
                b'*' => {
                    while plen != 0 && at(p + 1) == b'*' {
                        p += 1;
                        plen -= 1;
                    }
                    if plen == 1 {
                        return true;
                    }
                    while slen != 0 {
                        if reference_impl(pat, p + 1, plen - 1, s, si, slen, nocase, skip_longer, nesting + 1) {
                            return true;
                        }
                        if *skip_longer {
                            return false;
                        }
                        si += 1;
                        slen -= 1;
                    }
                    *skip_longer = true;
                    return false;
                }
                b'?' => {
                    si += 1;
                    slen -= 1;
                }
                b'[' => {
                    p += 1;
                    plen -= 1;
                    let not = at(p) == b'^';
                    if not {
                        p += 1;
                        plen -= 1;
                    }
                    let mut matched = false;
                    loop {
                        if at(p) == b'\\' && plen >= 2 {
                            p += 1;
                            plen -= 1;
                            if at(p) == s[si] {
                                matched = true;
                            }
                        } else if at(p) == b']' {
                            break;
                        } else if plen == 0 {
                            p -= 1;
                            plen += 1;
                            break;
                        } else if plen >= 3 && at(p + 1) == b'-' {
                            let (mut start, mut end, mut c) = (char_of(at(p)), char_of(at(p + 2)), char_of(s[si]));
                            if start > end {
                                std::mem::swap(&mut start, &mut end);
                            }
                            if nocase {
                                (start, end, c) = (tolower(start), tolower(end), tolower(c));
                            }
                            p += 2;
                            plen -= 2;
                            if c >= start && c <= end {
                                matched = true;
                            }
                        } else if !nocase {
                            if at(p) == s[si] {
                                matched = true;
                            }
                        } else if tolower(char_of(at(p))) == tolower(char_of(s[si])) {
                            matched = true;
                        }
                        p += 1;
                        plen -= 1;
                    }
                    if not {
                        matched = !matched;
                    }
                    if !matched {
                        return false;
                    }
                    si += 1;
                    slen -= 1;
                }
                first => {
                    if first == b'\\' && plen >= 2 {
                        p += 1;
                        plen -= 1;
                    }
                    if !nocase {
                        if at(p) != s[si] {
                            return false;
                        }
                    } else if tolower(char_of(at(p))) != tolower(char_of(s[si])) {
                        return false;
                    }
                    si += 1;
                    slen -= 1;
                }
            }
            p += 1;
            plen -= 1;
            if slen == 0 {
                while at(p) == b'*' {
                    p += 1;
                    plen -= 1;
                }
                break;
            }
        }
        plen == 0 && slen == 0
    }

    /// Match, checking the answer against the reference and the step bound.
    fn checked(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
        let mut steps = 0;
        let got = match_counting(pattern, text, nocase, &mut steps);
        assert_eq!(got, matches(pattern, text, nocase));
        assert!(
            steps <= (pattern.len() + 1) * (text.len() + 1),
            "{steps} steps for a {}-byte pattern and a {}-byte text",
            pattern.len(),
            text.len()
        );
        got
    }

    #[test]
    fn redis_glob() {
        assert!(matches(b"*", b"anything", false));
        assert!(matches(b"h?llo", b"hello", false));
        assert!(matches(b"h*llo", b"heeeello", false));
        assert!(matches(b"h[ae]llo", b"hallo", false));
        assert!(!matches(b"h[ae]llo", b"hillo", false));
        assert!(matches(b"h[^e]llo", b"hallo", false));
        assert!(!matches(b"h[^e]llo", b"hello", false));
        assert!(matches(b"h[a-b]llo", b"hbllo", false));
        assert!(matches(b"lock:\\*", b"lock:*", false));
        assert!(!matches(b"lock:\\*", b"lock:x", false));
        assert!(matches(b"SAVE", b"save", true));
        assert!(matches(b"a*", b"a", false));
        assert!(!matches(b"a?", b"a", false));
    }

    /// The odd corners, each as Redis answers it (and the reference agrees).
    #[test]
    fn redis_edge_cases() {
        let signed_char = (std::ffi::c_char::MIN as i32) < 0;
        let cases: &[(&[u8], &[u8], bool, bool)] = &[
            // Empty text matches only the empty pattern, not even "*".
            (b"", b"", false, true),
            (b"*", b"", false, false),
            (b"", b"a", false, false),
            // Reversed range ends are swapped; nocase lowers them after.
            (b"[z-a]", b"m", false, true),
            (b"[A-Z]", b"q", true, true),
            (b"[Z-a]", b"_", false, true),
            (b"[Z-a]", b"_", true, false),
            // `]` first in a class closes it (an empty class never matches).
            (b"[]a]", b"a", false, false),
            (b"[]a]", b"]a]", false, false),
            (b"[^]a]", b"xa]", false, true),
            // A range may end on `]`, and the class goes on after it.
            (b"[a-]b]", b"^", false, true),
            (b"[a-]b]", b"b", false, true),
            // Unterminated classes end at the pattern's end.
            (b"x[ab", b"xb", false, true),
            (b"x[", b"x", false, false),
            (b"x[", b"xa", false, false),
            (b"x[^", b"xa", false, true),
            (b"[a-", b"-", false, true),
            // Escapes, inside and outside classes; a trailing `\` is literal.
            (b"\\[a]", b"[a]", false, true),
            (b"[\\]]", b"]", false, true),
            (b"[\\-a]", b"-", false, true),
            (b"a\\", b"a\\", false, true),
            (b"[a\\", b"\\", false, true),
            (b"\\A", b"a", true, true),
            (b"[\\A]", b"a", true, false),
            // `*` never matches across a failed class; `?` needs a byte.
            (b"a*b*c", b"aXbYc", false, true),
            (b"*?", b"a", false, true),
            (b"*??", b"a", false, false),
            // Signed `char` ranges (x86-64): \xff sorts below 'a'.
            (b"[a-\xff]", b"\x10", false, signed_char),
            (b"[\x80-\xff]", b"\xc8", false, true),
        ];
        for &(pattern, text, nocase, want) in cases {
            let what = (String::from_utf8_lossy(pattern), String::from_utf8_lossy(text), nocase);
            assert_eq!(reference(pattern, text, nocase), want, "reference on {what:?}");
            assert_eq!(checked(pattern, text, nocase), want, "matcher on {what:?}");
        }
    }

    /// The pattern against a long text: fails after at most
    /// (p + 1) × (t + 1) steps rather than never returning.
    #[test]
    fn nested_stars_take_quadratic_steps_at_most() {
        let text = vec![b'a'; 10_000];
        let pattern = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        assert!(!checked(pattern, &text, false));
        // The costliest shape for this matcher: every retry of the star
        // walks the whole literal run before failing.
        let mut pattern = b"*".to_vec();
        pattern.extend(std::iter::repeat_n(b'a', 100));
        pattern.push(b'b');
        assert!(!checked(&pattern, &text, false));
        let mut steps = 0;
        match_counting(&pattern, &text, false, &mut steps);
        assert!(steps > 100 * 9_000, "the bound above is near the real cost: {steps}");
    }

    /// Redis's limit on `*` runs (CVE-2024-31228), including its regression
    /// test's pattern: 50,000 × "*?" does not match 50,000 × "a".
    #[test]
    fn star_runs_beyond_redis_limit_fail() {
        let a = |n| vec![b'a'; n];
        for (pattern, text, want) in [
            (b"*a".repeat(1000), a(1000), true),
            (b"*a".repeat(1001), a(1001), false),
            ([b"*a".repeat(1000), b"*".to_vec()].concat(), a(1001), true),
            ([b"*a".repeat(1000), b"**".to_vec()].concat(), a(1000), true),
            (b"*?".repeat(50_000), a(50_000), false),
        ] {
            assert_eq!(checked(&pattern, &text, false), want, "{} stars", pattern.len() / 2);
            assert_eq!(
                reference(&pattern, &text, false),
                want,
                "reference, {} stars",
                pattern.len() / 2
            );
        }
    }

    fn small(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(alphabet), 0..=max)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        /// Random small patterns and texts: the same answer as the port of
        /// Redis's matcher, within the step bound.
        #[test]
        fn agrees_with_redis(
            pattern in small(b"*?[]^-\\aAbB\xc8", 9),
            text in small(b"aAbB-]^\\*?\xc8", 7),
            nocase in any::<bool>(),
        ) {
            prop_assert_eq!(checked(&pattern, &text, nocase), reference(&pattern, &text, nocase));
        }
    }
}
