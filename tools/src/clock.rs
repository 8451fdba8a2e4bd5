//! The wall clock in Unix seconds: what quotes, authorizations and payment
//! sessions are timed in (0 if the clock is before 1970).

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
