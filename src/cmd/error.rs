//! What can stop `run` before or while it serves, as one type the command line reports.

use crate::config::ConfigError;
use crate::state::StartError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
    /// The serving certificate or key; the message names the file.
    #[error("{0}")]
    Certificates(String),
    #[error("{key}: cannot listen on {addr}: {source}")]
    Listen {
        key: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The bound listener could not be handed to the workers.
    #[error("server.listen: {0}")]
    Listener(#[source] std::io::Error),
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("server: {0}")]
    Serve(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn a_start_error_is_one_line_naming_the_key_and_keeps_its_cause() {
        let e = RunError::Listen {
            key: "server.admin_listen",
            addr: "127.0.0.1:9".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        let shown = e.to_string();
        assert!(shown.starts_with("server.admin_listen: cannot listen on 127.0.0.1:9: "));
        assert!(!shown.contains('\n'));
        let cause = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(cause.map(|c| c.kind()), Some(std::io::ErrorKind::AddrInUse));

        let bad = "a\u{7f}b";
        let hsts = http::HeaderValue::from_str(bad).unwrap_err();
        let e = RunError::from(StartError::Hsts(hsts));
        assert_eq!(e.to_string(), "server.hsts: not a valid header value");
        assert!(e.source().is_some(), "the header error stays reachable");
    }
}
