//! The gateway (SPEC §4): routes that pass requests on to services, or serve files, only for
//! tokens a route's providers signed. `config` reads the tables, `runtime` holds them ready
//! (clients, keys), `proxy` answers a request, `websocket` relays upgraded connections, `jwks`
//! fetches remote keys, `upstream` reaches the services.

pub mod config;
pub mod jwks;
pub mod proxy;
pub mod runtime;
pub mod upstream;
pub mod websocket;

pub use runtime::Runtime;
