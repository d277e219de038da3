//! TTL arguments and TTL readings, for every command that takes or reports
//! one: SET/SETEX/PSETEX/GETEX, the EXPIRE and TTL families, LOCK.* and the
//! catalogued scripts.
//!
//! Redis validates an expiry with one of two rule sets, both kept here:
//! SET-like commands refuse a TTL that is not positive
//! (`getExpireMillisecondsOrReply`); the EXPIRE family takes any integer and
//! deletes the key when the time has already come (`expireGenericCommand`).
//! Both refuse, as `invalid expire time`, a value whose conversion to ms or
//! addition to the current Unix time in ms overflows an i64. Everything they
//! accept yields a [`Deadline`] through [`crate::store::clock`].

use super::CmdError;
use super::args::int;
use crate::store::clock::remaining_ms;
use crate::store::{Clock, Deadline, Entry};

/// How an expiry argument counts: seconds or ms, from now or from the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Seconds from now (EX, SETEX, EXPIRE).
    Ex,
    /// Milliseconds from now (PX, PSETEX, PEXPIRE).
    Px,
    /// A Unix time in seconds (EXAT, EXPIREAT).
    ExAt,
    /// A Unix time in ms (PXAT, PEXPIREAT).
    PxAt,
}

impl Form {
    fn unit_ms(self) -> i64 {
        match self {
            Form::Ex | Form::ExAt => 1000,
            Form::Px | Form::PxAt => 1,
        }
    }

    fn absolute(self) -> bool {
        matches!(self, Form::ExAt | Form::PxAt)
    }
}

/// A validated expiry argument, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireArg {
    /// This many ms from now (≤ 0 only in the EXPIRE family: already due).
    In(i64),
    /// At this Unix time in ms (possibly past).
    At(i64),
}

impl ExpireArg {
    /// SET's rules, shared by SETEX, PSETEX, GETEX and LOCK.*: the value must
    /// be positive, and in seconds at most `i64::MAX / 1000`.
    pub fn set_style(form: Form, arg: &[u8]) -> Result<ExpireArg, CmdError> {
        let n = int(arg)?;
        if n <= 0 || (form.unit_ms() == 1000 && n > i64::MAX / 1000) {
            return Err(CmdError::InvalidExpire);
        }
        Self::from_ms(form.absolute(), n * form.unit_ms())
    }

    /// The EXPIRE family's rules: any value whose ms fit an i64; zero,
    /// negative and past times are accepted (the key is deleted).
    pub fn expire_style(form: Form, arg: &[u8]) -> Result<ExpireArg, CmdError> {
        let n = int(arg)?;
        let ms = n.checked_mul(form.unit_ms()).ok_or(CmdError::InvalidExpire)?;
        Self::from_ms(form.absolute(), ms)
    }

    /// `ms` from now, with the EXPIRE family's rules (for the scripts, which
    /// compute a TTL before applying it as PEXPIRE would).
    pub fn expire_in_ms(ms: i64) -> Result<ExpireArg, CmdError> {
        Self::from_ms(false, ms)
    }

    fn from_ms(absolute: bool, ms: i64) -> Result<ExpireArg, CmdError> {
        if absolute {
            return Ok(ExpireArg::At(ms));
        }
        // Redis adds a relative TTL to the Unix time in ms and refuses an
        // overflow. Only a TTL within 2^45 ms (a millennium) of i64::MAX can
        // overflow, so only then is the wall clock worth reading.
        if ms > i64::MAX - (1 << 45) && ms > i64::MAX - Clock::wall_ms() {
            return Err(CmdError::InvalidExpire);
        }
        Ok(ExpireArg::In(ms))
    }

    /// The Unix time in ms it names, as Redis computes it (from the wall
    /// clock's ms for a relative one).
    pub fn unix_ms(self) -> i64 {
        match self {
            ExpireArg::In(ms) => Clock::wall_ms().saturating_add(ms),
            ExpireArg::At(unix_ms) => unix_ms,
        }
    }

    /// The store deadline; one at or before `now_us` when the time has come.
    pub fn deadline(self, now_us: u64) -> Deadline {
        match self {
            ExpireArg::In(ms) => Clock::deadline_in_ms(ms, now_us),
            ExpireArg::At(unix_ms) => Clock::deadline_from_unix_ms(unix_ms, now_us),
        }
    }
}

/// PTTL of a live key: the ms it has left, or -1 if it has no deadline.
pub fn pttl_of(entry: &Entry, now_us: u64) -> i64 {
    if entry.has_deadline() {
        remaining_ms(entry.deadline(), now_us)
    } else {
        -1
    }
}

/// A non-negative time in ms as seconds, rounded to the nearest as TTL and
/// EXPIRETIME do (in u64, where Redis's `(ms + 500) / 1000` cannot wrap).
pub fn rounded_secs(ms: i64) -> i64 {
    ((ms as u64 + 500) / 1000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(form: Form, v: &str) -> Result<ExpireArg, CmdError> {
        ExpireArg::set_style(form, v.as_bytes())
    }

    fn expire(form: Form, v: &str) -> Result<ExpireArg, CmdError> {
        ExpireArg::expire_style(form, v.as_bytes())
    }

    #[test]
    fn set_rules() {
        let bad = Err(CmdError::InvalidExpire);
        assert_eq!(set(Form::Px, "0"), bad);
        assert_eq!(set(Form::Px, "-1"), bad);
        assert_eq!(set(Form::PxAt, "0"), bad);
        assert_eq!(set(Form::Ex, "9223372036854776"), bad);
        assert_eq!(set(Form::ExAt, "9223372036854776"), bad);
        assert_eq!(set(Form::Ex, "9223372036854775"), bad, "overflows once added to now");
        assert_eq!(set(Form::Px, "9223372036854775807"), bad);
        assert_eq!(set(Form::Px, "x"), Err(CmdError::NotInteger));
        assert_eq!(set(Form::Px, "1"), Ok(ExpireArg::In(1)));
        assert_eq!(set(Form::Ex, "2"), Ok(ExpireArg::In(2000)));
        assert_eq!(
            set(Form::ExAt, "9223372036854775"),
            Ok(ExpireArg::At(9223372036854775000))
        );
        assert_eq!(set(Form::PxAt, "9223372036854775807"), Ok(ExpireArg::At(i64::MAX)));
        assert_eq!(
            set(Form::Px, "9000000000000000000"),
            Ok(ExpireArg::In(9_000_000_000_000_000_000))
        );
    }

    #[test]
    fn expire_rules() {
        let bad = Err(CmdError::InvalidExpire);
        assert_eq!(expire(Form::Ex, "9223372036854776"), bad);
        assert_eq!(expire(Form::Ex, "-9223372036854776"), bad);
        assert_eq!(
            expire(Form::Ex, "-9223372036854775"),
            Ok(ExpireArg::In(-9223372036854775000))
        );
        assert_eq!(expire(Form::Ex, "9223372036854775"), bad, "overflows once added to now");
        assert_eq!(
            expire(Form::ExAt, "9223372036854775"),
            Ok(ExpireArg::At(9223372036854775000))
        );
        assert_eq!(expire(Form::Px, "-9223372036854775808"), Ok(ExpireArg::In(i64::MIN)));
        assert_eq!(expire(Form::PxAt, "9223372036854775807"), Ok(ExpireArg::At(i64::MAX)));
        assert_eq!(expire(Form::Px, "0"), Ok(ExpireArg::In(0)));
    }

    #[test]
    fn due_times_give_passed_deadlines() {
        let now = 1_000_000;
        for arg in [
            ExpireArg::In(0),
            ExpireArg::In(i64::MIN),
            ExpireArg::At(1),
            ExpireArg::At(i64::MIN),
        ] {
            assert!(arg.deadline(now) <= now, "{arg:?}");
        }
        assert!(ExpireArg::In(1).deadline(now) > now);
        assert!(ExpireArg::At(i64::MAX).deadline(now) > now);
    }

    #[test]
    fn rounding_to_seconds_does_not_wrap() {
        assert_eq!(rounded_secs(0), 0);
        assert_eq!(rounded_secs(499), 0);
        assert_eq!(rounded_secs(1500), 2);
        assert_eq!(rounded_secs(i64::MAX), 9223372036854776);
    }
}
