//! A local emulator of the Tencent Cloud Contact Center API, as strict as the real service,
//! so that the whole flow can be tried and tested without a Tencent account. This part serves
//! `CreateSDKLoginToken` and the statistics; see `api` for the order of checks.

pub mod api;
pub mod inprocess;
pub mod sdk;
pub mod server;
pub mod state;

pub use state::{Emulator, EmulatorConfig, TokenUse};
