//! The gateway (SPEC §4): routes that pass requests on to services, or serve files, only for
//! tokens a route's providers signed. Today: its configuration (`config`); the proxy, remote
//! JWKS and websockets are being built on it.

pub mod config;
