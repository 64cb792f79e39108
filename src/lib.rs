//! tccc-sidecar: a TLS-terminating reverse proxy that puts the Tencent Cloud Contact Center
//! workbench into existing web applications without changing them.
//!
//! The library holds the whole engine; `main.rs` only calls [`cmd::main`]. Tests start the
//! server with [`serve`] on a listener they bound themselves. `ARCHITECTURE.md` maps the
//! modules below and what each may import; the public ones are those that tests, benches,
//! fuzz targets and the binary use.

pub mod ccc;
pub mod cmd;
pub mod config;
#[cfg(feature = "emulator")]
pub mod demo;
mod diag;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod fuzzing;
mod identity;
pub mod inject;
pub mod listener;
mod login;
mod proxy;
pub mod runtime;
pub mod state;
pub mod tc3;
#[cfg(test)]
pub(crate) mod test_support;
mod wire;

pub use listener::server::serve;
pub use state::AppState;
