//! The daemon's use of the C allocator. One daemon runs per guest, so the heap pages each
//! keeps for itself are multiplied by the guests on a host.

/// One malloc arena for the whole daemon; call before any thread starts. glibc gives each
/// thread that meets contention an arena of its own, whose touched pages (and page tables)
/// stay private to the daemon; the data path allocates nothing, so one arena costs no speed.
pub fn one_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns the pages of freed memory to the kernel: after start-up, a rescan or a guest's
/// walk (once the guest is idle: vhost-user's pool), whose
/// temporary tables would otherwise stay resident (glibc trims only the top of the heap).
pub fn give_back_free_pages() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free pages of the allocator's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}
