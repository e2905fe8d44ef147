//! Raw FUSE messages (any opcode, length, name, offset) into fuse-backend-rs's `Server` over
//! the daemon's `EventFs` with the embedded catalog. See `eventfsd_fuzz` for the input format.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    eventfsd_fuzz::run_fuse_input(data);
});
