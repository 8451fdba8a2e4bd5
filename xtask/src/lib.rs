//! The project's task runner, as a library so every subcommand (and later
//! ones: `demo`, `bench`) can bring the local stack up in-process and tear it
//! down again:
//!
//! ```ignore
//! let paths = xtask::Paths::discover();
//! xtask::setup::run(&paths).await?;
//! let stack = xtask::stack::RunningStack::up(&paths, &xtask::stack::StackOptions::from_env()).await?;
//! // ... stack.env_file() is `.local/stack.env`, stack.get("GATEWAY_URL") ...
//! stack.down().await;
//! ```
//!
//! Modules: [`setup`] installs what a fresh machine lacks, [`accounts`] names
//! the Anvil dev keys, [`chain`] prepares the chain over JSON-RPC, [`proc`]
//! supervises child processes (process groups, logs, pidfile, readiness),
//! [`stack`] composes them, [`steps`] runs and times command steps, [`test`]
//! is what CI runs.

pub mod accounts;
pub mod bench;
pub mod chain;
pub mod demo;
pub mod paths;
pub mod proc;
pub mod setup;
pub mod stack;
pub mod steps;
pub mod test;

pub use paths::Paths;
