//! An array map mapped into the controller's memory (`BPF_F_MMAPABLE`): a generation's region
//! rewritten in memory, where one syscall per entry would take a second for a million
//! entries.

use std::{
    io,
    ops::Range,
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{Ordering, fence},
};

use aya::maps::{Map, MapData};

/// A mapped array of `u32` values. The kernel lays an array's values out 8 octets apart
/// (`round_up(value_size, 8)`): each value is the first half of an 8-octet slot.
pub struct MappedArray {
    base: NonNull<u64>,
    entries: usize,
    mapped_len: usize,
    /// Keeps the map alive while it is mapped.
    _map: MapData,
}

// SAFETY: the mapping belongs to this value alone, writes take `&mut self`, and nothing
// reads it through `&self`.
unsafe impl Send for MappedArray {}
// SAFETY: as above: a shared reference gives no access to the memory.
unsafe impl Sync for MappedArray {}

impl MappedArray {
    /// Maps `map`, an array of `entries` `u32` values made with `BPF_F_MMAPABLE`.
    pub fn new(map: Map, entries: u32) -> io::Result<Self> {
        let Map::Array(map) = map else {
            return Err(io::Error::other("not an array map"));
        };
        let entries = entries as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let mapped_len = (entries * size_of::<u64>()).next_multiple_of(page);
        // SAFETY: a new shared mapping of the map's fd, which `_map` keeps open; the kernel
        // checks the length against the map's size.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self {
            base,
            entries,
            mapped_len,
            _map: map,
        })
    }

    /// Rewrites the entries `region`: 0 in each, but `value` at each `(index, value)` of
    /// `values`; then a fence, so that whatever the caller does next to publish them (the
    /// epoch's flip) comes after.
    ///
    /// # Panics
    ///
    /// If the region runs past the array, or an index lies outside the region: the caller's
    /// slots come from the map's layout.
    pub fn rewrite(
        &mut self,
        region: Range<usize>,
        values: impl IntoIterator<Item = (usize, u32)>,
    ) {
        assert!(
            region.start <= region.end && region.end <= self.entries,
            "entries {region:?} past the array's {}",
            self.entries
        );
        // SAFETY: within the mapping (checked above), which lives as long as `self`; the
        // programs read only the generation packets use, which the caller does not write.
        unsafe { std::ptr::write_bytes(self.base.as_ptr().add(region.start), 0, region.len()) };
        for (index, value) in values {
            assert!(region.contains(&index), "entry {index} outside {region:?}");
            // SAFETY: as above, `index` within the region.
            unsafe { self.base.as_ptr().add(index).cast::<u32>().write(value) };
        }
        fence(Ordering::SeqCst);
    }
}

impl Drop for MappedArray {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.mapped_len) };
    }
}
