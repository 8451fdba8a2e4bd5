//! End-to-end support: the pieces the full-path tests, the chaos suite and
//! the benchmarks share.

pub mod adversary;
pub mod chaos_plan;
pub mod fault_proxy;
pub mod harness;
