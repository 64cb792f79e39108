//! Tencent Cloud Contact Center API: credentials, the CreateSDKLoginToken client, and the
//! SdkURL policy.

pub mod client;
pub mod credentials;
pub mod error;
pub mod sdk_url;

pub use client::{CccClient, ClientOptions, LoginToken};
pub use credentials::{CredentialStore, Credentials, Secret};
pub use error::CccError;
