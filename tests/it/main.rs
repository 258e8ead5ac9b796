//! End-to-end tests: the real `jwtgate` binary, driven as a user would drive it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod admin;
mod appmesh;
mod caddy;
mod cli;
mod cluster;
mod etcd_cluster;
mod gatetoken;
mod gateway;
mod harness;
mod interop;
mod jwks;
mod link;
mod login;
mod nginx;
mod serve;
mod store;
mod users;
