//! Integration tests: the real server on loopback port 0 in front of upstreams the tests
//! control, asserting on both sides of the wire. One binary, so the suite links once.

mod common;

mod admin;
mod attacks;
mod bodies_and_streams;
mod browser;
mod browser_shell;
mod ccc;
mod cli;
mod errors;
mod forwarding;
mod inject;
mod interop;
mod lifecycle;
mod limits;
mod login_common;
mod login_endpoint;
mod login_introspect;
mod login_jwt;
mod login_seats;
mod page_urls;
mod real_apps;
mod secrets;
mod shell;
mod smuggling;
mod standin_sdk;
mod tc3_vectors;
mod tls;
mod upstream_pool;
mod upstream_tls;
