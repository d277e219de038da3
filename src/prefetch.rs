//! Cache prefetch hints: the one instruction the store's prefetching needs
//! that safe Rust has no word for.
//!
//! The store works out *where* a key's table slot and entry are with safe
//! address arithmetic ([`crate::store::Db::prefetch_table`]); this module
//! only asks the CPU to start loading those addresses.

/// Ask the CPU to start loading the cache line holding `p` into every cache
/// level. Any address will do: nothing is read, and a prefetch never faults.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 has no architectural effect, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
