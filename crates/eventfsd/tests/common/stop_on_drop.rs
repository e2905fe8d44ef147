//! A daemon a test started, stopped with SIGTERM if the test ends before it stops it itself:
//! a failed assertion must not leave a daemon (or its mount) behind.

use std::ops::{Deref, DerefMut};
use std::process::Child;

/// The child; derefs to it, so the test drives it as a `Child`.
pub struct StopOnDrop(pub Child);

impl Deref for StopOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for StopOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: signalling the process this test started; the daemon's sandbox parent
            // forwards it and unmounts.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let _ = self.0.wait();
        }
    }
}
