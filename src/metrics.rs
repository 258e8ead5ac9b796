//! Prometheus counters for `/metrics`: requests by route and status, token checks by outcome
//! (accepted, or the refusal's code), failed logins, password checks, and verdict-cache hits.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    /// By route, then status: looked up by `&str`, so counting allocates only a new route.
    requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    checks: Mutex<BTreeMap<&'static str, u64>>,
    /// The common outcome, counted without the lock.
    accepted: AtomicU64,
    login_failures: AtomicU64,
    password_checks: AtomicU64,
    cache_hits: AtomicU64,
    websockets_opened: AtomicU64,
    websockets_closed: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// One request answered; `route` is the route's pattern (never the raw path, whose
    /// variety would grow the table without bound).
    pub fn request(&self, route: &str, status: u16) {
        if let Ok(mut requests) = self.requests.lock() {
            let statuses = match requests.get_mut(route) {
                Some(statuses) => statuses,
                None => requests.entry(route.to_owned()).or_default(),
            };
            *statuses.entry(status).or_default() += 1;
        }
    }

    /// One token check: `accepted`, or the code of the reason it was refused.
    pub fn check(&self, outcome: &'static str) {
        if outcome == "accepted" {
            self.accepted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Ok(mut checks) = self.checks.lock() {
            *checks.entry(outcome).or_default() += 1;
        }
    }

    pub fn login_failure(&self) {
        self.login_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// One argon2 check ran (a real user's hash, or the dummy one for an unknown user).
    pub fn password_check(&self) {
        self.password_checks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// A websocket was bridged through the gateway.
    pub fn websocket_opened(&self) {
        self.websockets_opened.fetch_add(1, Ordering::Relaxed);
    }

    /// The gateway closed a websocket because its token `expired` or was `revoked`.
    pub fn websocket_closed(&self, reason: &'static str) {
        if let Ok(mut closed) = self.websockets_closed.lock() {
            *closed.entry(reason).or_default() += 1;
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP jwtgate_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE jwtgate_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for (route, statuses) in requests.iter() {
                for (status, n) in statuses {
                    let _ = writeln!(
                        out,
                        "jwtgate_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                        escape(route)
                    );
                }
            }
        }
        out.push_str("# HELP jwtgate_token_checks_total Token checks by outcome (accepted, or why refused).\n");
        out.push_str("# TYPE jwtgate_token_checks_total counter\n");
        if let Ok(checks) = self.checks.lock() {
            let accepted = self.accepted.load(Ordering::Relaxed);
            let all = checks
                .iter()
                .map(|(o, n)| (*o, *n))
                .chain((accepted > 0).then_some(("accepted", accepted)))
                .collect::<BTreeMap<_, _>>();
            for (outcome, n) in all.iter() {
                let _ = writeln!(
                    out,
                    "jwtgate_token_checks_total{{outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP jwtgate_login_failures_total Failed logins (credentials or TOTP).\n\
             # TYPE jwtgate_login_failures_total counter\n\
             jwtgate_login_failures_total {}",
            self.login_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP jwtgate_password_checks_total Password checks run (argon2id), unknown users included.\n\
             # TYPE jwtgate_password_checks_total counter\n\
             jwtgate_password_checks_total {}",
            self.password_checks.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP jwtgate_auth_cache_hits_total Token checks answered from the verdict cache.\n\
             # TYPE jwtgate_auth_cache_hits_total counter\n\
             jwtgate_auth_cache_hits_total {}",
            self.cache_hits.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP jwtgate_websockets_opened_total Websockets bridged by the gateway.\n\
             # TYPE jwtgate_websockets_opened_total counter\n\
             jwtgate_websockets_opened_total {}",
            self.websockets_opened.load(Ordering::Relaxed)
        );
        out.push_str("# HELP jwtgate_websockets_closed_total Websockets the gateway closed because their token ended.\n");
        out.push_str("# TYPE jwtgate_websockets_closed_total counter\n");
        if let Ok(closed) = self.websockets_closed.lock() {
            for (reason, n) in closed.iter() {
                let _ = writeln!(
                    out,
                    "jwtgate_websockets_closed_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        out
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
