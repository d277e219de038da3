//! The process's open-files limit, raised to fit `maxclients` at start and
//! on CONFIG SET maxclients, as redis-server's adjustOpenFilesLimit does.

use tracing::{info, warn};

/// File descriptors kept for the server's own use besides one per client
/// (redis-server's CONFIG_MIN_RESERVED_FDS).
pub const RESERVED_FDS: u64 = 32;

/// Make room for `maxclients` clients as redis-server's adjustOpenFilesLimit
/// does: raise the open-files limit to `maxclients + 32`, or failing that to
/// the highest of `maxclients + 32 - 16k` the system allows, and return how
/// many clients fit (`maxclients`, or that limit minus 32, with warnings
/// saying so). A client past the fd limit would otherwise be neither served
/// nor refused: its accept fails, and it waits for a reply that never comes.
/// Err when the limit leaves no room for a single client.
pub fn adjust_open_files_limit(maxclients: u64) -> Result<u64, String> {
    let wanted = maxclients.saturating_add(RESERVED_FDS);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        let e = std::io::Error::last_os_error();
        warn!(
            "Unable to obtain the current NOFILE limit ({e}), assuming 1024 and setting the max clients configuration accordingly."
        );
        return Ok(maxclients.min(1024 - RESERVED_FDS));
    }
    // rlim_t is u64 on the platforms redlockd runs on.
    let old: u64 = lim.rlim_cur;
    if old >= wanted {
        return Ok(maxclients);
    }
    let hard = lim.rlim_max;
    // Only the soft limit is set; the hard one is raised only when it must
    // (which needs privilege) and never lowered.
    let set = |n: u64| {
        let new = libc::rlimit {
            rlim_cur: n,
            rlim_max: n.max(hard),
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    let error = match set(wanted) {
        Ok(()) => {
            info!("Increased maximum number of open files to {wanted} (it was originally set to {old}).");
            return Ok(maxclients);
        }
        Err(e) => e,
    };
    // Redis steps down 16 at a time from `wanted` until the system accepts;
    // a binary search over the same steps finds the same limit in a few
    // dozen calls rather than up to 2^28 (maxclients can be 2^32 - 1).
    let steps = (wanted - old - 1) / 16;
    let (mut lo, mut hi) = (1, steps + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if set(wanted - 16 * mid).is_ok() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let best = if lo <= steps && set(wanted - 16 * lo).is_ok() {
        wanted - 16 * lo
    } else {
        old
    };
    if best <= RESERVED_FDS {
        return Err(format!(
            "Your current 'ulimit -n' of {old} is not enough for the server to start. Please increase your open file limit to at least {wanted}. Exiting."
        ));
    }
    let fits = best - RESERVED_FDS;
    warn!("You requested maxclients of {maxclients} requiring at least {wanted} max file descriptors.");
    warn!("Server can't set maximum open files to {wanted} because of OS error: {error}.");
    warn!(
        "Current maximum open files is {best}. maxclients has been reduced to {fits} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'."
    );
    Ok(fits)
}
