//! The shared HTTP vocabulary, below every feature that speaks HTTP: the body type, the error
//! chain for logs, the sidecar's own answers, hop-by-hop and forwarding rules, the upstream
//! client, and the header names used in more than one place. It imports no feature module,
//! so login, identity, inject, diag and ccc can all use it without depending on the proxy.

pub mod client_body;
pub mod forwarded;
pub mod hop;
pub mod html;
pub mod names;
pub mod pool;
pub mod rebase;
pub mod responses;
pub mod upstream;
/// Used by the emulator and the demo CRM only.
#[cfg(feature = "emulator")]
pub mod urlenc;

use bytes::Bytes;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the sidecar sends.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// Formats an error with its sources, for logs (upstream errors never reach a client).
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut src = self.0.source();
        while let Some(s) = src {
            write!(f, ": {s}")?;
            src = s.source();
        }
        Ok(())
    }
}
