//! Everything between the socket and the proxy: the TLS listener (accept, balance across
//! worker threads, handshake, HTTP/1.1 or HTTP/2 by ALPN, drain), certificates, and the
//! small plain listeners (admin, redirect to HTTPS).

pub mod accept;
pub mod admin;
pub mod balance;
pub mod drain;
pub mod redirect;
pub mod server;
pub mod tls;

pub use accept::accept_until;
