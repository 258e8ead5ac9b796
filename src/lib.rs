//! jwtgate: issue, verify and gate with JSON Web Tokens. This package is the part that touches
//! the world (files, clock, terminal, later the network); every token decision is made by
//! `jwtgate-core`. The binary (`main.rs`) only parses arguments and maps errors to exit codes.

pub mod access;
pub mod api;
pub mod check;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod init;
pub mod issuer;
pub mod manage;
pub mod metrics;
pub mod model;
pub mod qr;
pub mod server;
pub mod state;
pub mod store;
pub mod throttle;
pub mod tls;
