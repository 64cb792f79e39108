//! Runtime plumbing that every layer above may use and that knows nothing of HTTP
//! semantics: metrics, logging, file watches, timers, per-address counters, thread sizing and
//! the signals that stop the process.

pub mod copy_tuning;
pub mod logging;
pub mod logwriter;
pub mod metrics;
pub mod per_address;
pub mod send_timeout;
pub mod signals;
pub mod stall;
pub mod threads;
pub mod watch;

pub use signals::{interrupted, stopped};
pub use threads::worker_threads;
