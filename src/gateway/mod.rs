//! The gateway (SPEC §4): routes that pass requests on to services, or serve files, only for
//! tokens a route's providers signed. Today: its configuration (`config`) and the remote JWKS
//! client (`jwks`); the proxy and websockets are being built on them.

pub mod config;
pub mod jwks;
