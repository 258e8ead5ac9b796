//! Storage for users, roles, the keyset, revocations and gate tokens, behind one trait so the
//! embedded file store and etcd are interchangeable. Every write is a compare-and-swap
//! on the record's revision, so two writers racing cannot both win and no update is lost.

pub mod etcd;
pub mod file;
mod location;

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

pub use etcd::{EtcdSettings, EtcdStore, EtcdTls};
pub use file::FileStore;
pub use location::Location;

/// The collections a store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    User,
    Role,
    Keyset,
    Revocation,
    GateToken,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::User,
        Kind::Role,
        Kind::Keyset,
        Kind::Revocation,
        Kind::GateToken,
    ];

    /// The collection's name: a directory in the file store, a key segment in etcd.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::User => "users",
            Kind::Role => "roles",
            Kind::Keyset => "keys",
            Kind::Revocation => "revoked",
            Kind::GateToken => "gatetokens",
        }
    }

    /// What one record is called, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Role => "role",
            Kind::Keyset => "keyset",
            Kind::Revocation => "revocation",
            Kind::GateToken => "gate token",
        }
    }
}

/// One stored value and the revision it was written at (revisions start at 1 and grow by one
/// per write of that record).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub name: String,
    pub revision: u64,
    pub value: Value,
}

/// The condition a write depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The record must not exist (create).
    Absent,
    /// The record must be at exactly this revision (update after a read).
    Revision(u64),
}

/// What `Store::watch` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// One record changed.
    Changed(Change),
    /// The watch cannot say what changed before this point: it has just started (its first
    /// event), or etcd compacted away the history it needed to resume. Read everything again;
    /// every change after this event is reported one by one.
    Reload,
}

/// A change seen by `Store::watch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    pub name: String,
    /// `None` when the record was deleted.
    pub revision: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{noun} '{name}' was changed by someone else meanwhile; try again", noun = kind.noun())]
    Conflict { kind: Kind, name: String },
    #[error("{noun} '{name}' already exists", noun = kind.noun())]
    Exists { kind: Kind, name: String },
    #[error("no {noun} '{name}'", noun = kind.noun())]
    NotFound { kind: Kind, name: String },
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    // The cause is part of the message (not a `source`), so a one-line report shows it once.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("invalid {noun} name '{name}': {reason}", noun = kind.noun())]
    InvalidName {
        kind: Kind,
        name: String,
        reason: &'static str,
    },
    #[error("the store task failed: {0}")]
    Task(String),
    /// The store cannot be reached (etcd down or partitioned). A read found nothing; a write
    /// was not applied, or (when etcd applied it and the answer was lost) its outcome is
    /// unknown: read again before retrying.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// A storage backend.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Record>, StoreError>;

    /// All records of `kind`, ordered by name.
    async fn list(&self, kind: Kind) -> Result<Vec<Record>, StoreError>;

    /// Writes `value` if `expect` holds; returns the new revision. `Exists` answers a create
    /// of an existing record, `Conflict` an update of a record that moved on, `NotFound` an
    /// update of a record that is gone.
    async fn put(
        &self,
        kind: Kind,
        name: &str,
        value: Value,
        expect: Expect,
    ) -> Result<u64, StoreError>;

    /// Deletes the record if it is at revision `revision`.
    async fn delete(&self, kind: Kind, name: &str, revision: u64) -> Result<(), StoreError>;

    /// Changes made from now on, by this process or any other sharing the store. The first
    /// event is `Reload`, once the watch is running: a view read after it misses nothing.
    fn watch(&self) -> mpsc::Receiver<Event>;

    /// Whether the record exists, answered or failed within about 2 s (for `/readyz`, which
    /// must not hang while the store is down).
    async fn probe(&self, kind: Kind, name: &str) -> Result<bool, StoreError> {
        Ok(self.get(kind, name).await?.is_some())
    }

    /// How long ago the watch last knew it had every change (etcd), for `/metrics`; `None` for
    /// a store without such a measure, or before the watch first caught up.
    fn watch_lag(&self) -> Option<std::time::Duration> {
        None
    }
}

/// Record names: 1 to 64 characters from `A-Z a-z 0-9 . _ @ -`, not starting with `.` or `-`.
/// They become file names and etcd keys, so nothing else may reach either.
pub fn check_name(kind: Kind, name: &str) -> Result<(), StoreError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 64 {
        Some("it is longer than 64 characters")
    } else if name.starts_with(['.', '-']) {
        Some("it must not start with '.' or '-'")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
    {
        Some("use only letters, digits, '.', '_', '@' and '-'")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(StoreError::InvalidName {
            kind,
            name: name.to_owned(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_against_one_alphabet() {
        for ok in ["admin", "ann@example.com", "api-user_2", "a.b", "x"] {
            assert!(check_name(Kind::User, ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-flag",
            "a/b",
            "a b",
            "ä",
            "..",
            &"x".repeat(65),
        ] {
            assert!(check_name(Kind::User, bad).is_err(), "{bad}");
        }
    }
}
