//! tccc-sidecar: a TLS-terminating reverse proxy that puts the Tencent Cloud Contact Center
//! workbench into existing web applications without changing them.
//!
//! The library holds the whole engine; `main.rs` only calls [`cli::main`]. Tests start the
//! server with [`server::serve`] on a listener they bound themselves.

pub mod admin;
pub mod app;
pub mod balance;
pub mod ccc;
pub mod check;
pub mod cli;
pub mod config;
pub mod conn_limit;
pub mod copy_tuning;
#[cfg(feature = "emulator")]
pub mod demo;
pub mod dev;
pub mod devcert;
pub mod diag;
pub mod drain;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod fuzzing;
pub mod identity;
pub mod inject;
pub mod listener;
pub mod logging;
pub mod login;
pub mod logwriter;
pub mod metrics;
pub mod proxy;
pub mod redirect;
pub mod runtime;
pub mod seats;
pub mod send_timeout;
pub mod server;
pub mod stall;
pub mod state;
pub mod tc3;
#[cfg(test)]
pub(crate) mod test_support;
pub mod tls;
pub mod urlenc;
pub mod watch;

pub use server::serve;
pub use state::AppState;
