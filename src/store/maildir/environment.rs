//! What the Maildir driver takes from its surroundings: the clock, sleeping and the host
//! name. Tests substitute a fake to make time-dependent rules deterministic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The clock, sleeping and the host name.
pub trait Environment {
    fn now(&self) -> SystemTime;
    fn sleep(&self, duration: Duration);
    /// The machine's full host name.
    fn host_name(&self) -> String;
    /// Called after a scan pass has read `cur/` and `new/` and before it checks them for
    /// changes (a hook for tests; the real system does nothing).
    fn scan_listed(&self) {}
}

/// The real system.
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn host_name(&self) -> String {
        let mut buffer = [0u8; 256];
        // SAFETY: the buffer is writable for its full length, which is what we pass.
        let result =
            unsafe { libc::gethostname(buffer.as_mut_ptr().cast::<libc::c_char>(), buffer.len()) };
        if result != 0 {
            return "localhost".to_string();
        }
        let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    }
}

/// Whole seconds since the epoch (0 for times before it).
pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
