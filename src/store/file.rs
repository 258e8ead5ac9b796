//! The embedded store: a data directory of human-readable JSON, one file per record
//! (`users/ann.json` holds `{"revision": 3, "value": {…}}`). A write takes an exclusive lock on
//! `DIR/.lock`, writes a temp file, fsyncs it, renames it over the record and fsyncs the
//! directory, so a crash at any instant leaves the old or the new record, never a torn one.
//! Readers take no lock: a rename is atomic. Other processes' writes are seen by polling.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{check_name, Change, Event, Expect, Kind, Record, Store, StoreError};

/// How often `watch` looks for other processes' writes.
const POLL: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub struct FileStore {
    dir: Arc<PathBuf>,
}

impl FileStore {
    /// Opens the data directory, creating it (mode 0700) and its collections when missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileStore, StoreError> {
        let dir: PathBuf = dir.into();
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for kind in Kind::ALL {
            let path = dir.join(kind.dir());
            builder
                .create(&path)
                .map_err(|source| io_error(&path, source))?;
        }
        Ok(FileStore { dir: Arc::new(dir) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        self.dir.join(kind.dir()).join(format!("{name}.json"))
    }

    /// Holds the store's write lock until the returned file is dropped.
    fn lock(&self) -> Result<File, StoreError> {
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| io_error(&path, source))?;
        file.lock().map_err(|source| io_error(&path, source))?;
        Ok(file)
    }

    fn get_blocking(&self, kind: Kind, name: &str) -> Result<Option<Record>, StoreError> {
        check_name(kind, name)?;
        read_record(&self.path(kind, name), name)
    }

    fn list_blocking(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        self.list_records(kind, true)
    }

    /// `list_blocking`, leaving out records that cannot be read or parsed.
    fn list_readable(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        self.list_records(kind, false)
    }

    /// Every record of `kind`, ordered by name. With `strict`, an unreadable record is an
    /// error; otherwise it is left out.
    fn list_records(&self, kind: Kind, strict: bool) -> Result<Vec<Record>, StoreError> {
        let dir = self.dir.join(kind.dir());
        let entries = fs::read_dir(&dir).map_err(|source| io_error(&dir, source))?;
        let mut records = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| io_error(&dir, source))?;
            let file_name = entry.file_name();
            let Some(name) = file_name
                .to_str()
                .filter(|n| !n.starts_with('.'))
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue; // temp files and anything not ours
            };
            match read_record(&entry.path(), name) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(e) if strict => return Err(e),
                Err(_) => {}
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    fn put_blocking(
        &self,
        kind: Kind,
        name: &str,
        value: Value,
        expect: Expect,
    ) -> Result<u64, StoreError> {
        check_name(kind, name)?;
        let _lock = self.lock()?;
        let path = self.path(kind, name);
        let current = read_record(&path, name)?.map(|r| r.revision);
        match (expect, current) {
            (Expect::Absent, None) => {}
            (Expect::Absent, Some(_)) => return Err(exists(kind, name)),
            (Expect::Revision(_), None) => return Err(not_found(kind, name)),
            (Expect::Revision(want), Some(have)) if want == have => {}
            (Expect::Revision(_), Some(_)) => return Err(conflict(kind, name)),
        }
        let revision = self.next_revision()?;
        let mut text = serde_json::to_string_pretty(&json!({
            "revision": revision,
            "value": value,
        }))
        .map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        write_atomic(&path, text.as_bytes())?;
        Ok(revision)
    }

    /// The store-wide revision counter, advanced once per write (the caller holds the lock).
    /// Store-wide, as in etcd, so a record deleted and created again never reuses a revision
    /// a compare-and-swap or a watcher could mistake for the old record's.
    fn next_revision(&self) -> Result<u64, StoreError> {
        let path = self.dir.join(".revision");
        let current = match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|e| StoreError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?,
            // A new store, or one whose counter was lost: start above every record.
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.highest_revision()?,
            Err(cause) => return Err(io_error(&path, cause)),
        };
        let next = current + 1;
        // Written before the record: a crash in between only skips a number.
        write_atomic(&path, format!("{next}\n").as_bytes())?;
        Ok(next)
    }

    fn highest_revision(&self) -> Result<u64, StoreError> {
        let mut highest = 0;
        for kind in Kind::ALL {
            for record in self.list_blocking(kind)? {
                highest = highest.max(record.revision);
            }
        }
        Ok(highest)
    }

    fn delete_blocking(&self, kind: Kind, name: &str, revision: u64) -> Result<(), StoreError> {
        check_name(kind, name)?;
        let _lock = self.lock()?;
        let path = self.path(kind, name);
        match read_record(&path, name)? {
            None => Err(not_found(kind, name)),
            Some(r) if r.revision != revision => Err(conflict(kind, name)),
            Some(_) => {
                fs::remove_file(&path).map_err(|source| io_error(&path, source))?;
                sync_dir(&path)
            }
        }
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(FileStore) -> Result<T, StoreError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Rescans the collections whose directory changed since `seen` (all of them when
    /// `full`), and returns what differs.
    fn poll(&self, seen: &mut Seen, full: bool) -> Vec<Change> {
        let mut changes = Vec::new();
        for kind in Kind::ALL {
            let dir = self.dir.join(kind.dir());
            let modified = fs::metadata(&dir).and_then(|m| m.modified()).ok();
            if !full && modified.is_some() && seen.times.get(&kind) == modified.as_ref() {
                continue;
            }
            // Records that cannot be read (corrupt, half-copied by hand) count as absent: a
            // server's view then refuses what they held rather than keeping stale grants.
            let Ok(records) = self.list_readable(kind) else {
                continue;
            };
            if let Some(modified) = modified {
                seen.times.insert(kind, modified);
            }
            changes.extend(seen.update(kind, records));
        }
        changes
    }
}

/// What `watch` has seen: each collection's modification time and each record's revision.
#[derive(Default)]
struct Seen {
    times: HashMap<Kind, SystemTime>,
    revisions: HashMap<(Kind, String), u64>,
}

impl Seen {
    fn update(&mut self, kind: Kind, records: Vec<Record>) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut now = HashMap::new();
        for record in records {
            let key = (kind, record.name);
            if self.revisions.get(&key) != Some(&record.revision) {
                changes.push(Change {
                    kind,
                    name: key.1.clone(),
                    revision: Some(record.revision),
                });
            }
            now.insert(key, record.revision);
        }
        for (k, name) in self.revisions.keys() {
            if *k == kind && !now.contains_key(&(*k, name.clone())) {
                changes.push(Change {
                    kind,
                    name: name.clone(),
                    revision: None,
                });
            }
        }
        self.revisions.retain(|(k, _), _| *k != kind);
        self.revisions.extend(now);
        changes
    }
}

#[async_trait]
impl Store for FileStore {
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Record>, StoreError> {
        let name = name.to_owned();
        self.blocking(move |s| s.get_blocking(kind, &name)).await
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        self.blocking(move |s| s.list_blocking(kind)).await
    }

    async fn put(
        &self,
        kind: Kind,
        name: &str,
        value: Value,
        expect: Expect,
    ) -> Result<u64, StoreError> {
        let name = name.to_owned();
        self.blocking(move |s| s.put_blocking(kind, &name, value, expect))
            .await
    }

    async fn delete(&self, kind: Kind, name: &str, revision: u64) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.blocking(move |s| s.delete_blocking(kind, &name, revision))
            .await
    }

    fn watch(&self) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(1024);
        let store = self.clone();
        tokio::spawn(async move {
            // What exists when watching starts is the baseline, not a change.
            let Ok(mut seen) = store
                .blocking(|s| {
                    let mut seen = Seen::default();
                    s.poll(&mut seen, true);
                    Ok(seen)
                })
                .await
            else {
                return;
            };
            if tx.send(Event::Reload).await.is_err() {
                return;
            }
            for tick in 1u64.. {
                tokio::time::sleep(POLL).await;
                // Every 5 s a full rescan, in case a directory's time did not move.
                let full = tick % 25 == 0;
                let Ok((next, changes)) = store
                    .blocking(move |s| {
                        let changes = s.poll(&mut seen, full);
                        Ok((seen, changes))
                    })
                    .await
                else {
                    return;
                };
                seen = next;
                for change in changes {
                    if tx.send(Event::Changed(change)).await.is_err() {
                        return; // nobody is listening any more
                    }
                }
            }
        });
        rx
    }
}

fn read_record(path: &Path, name: &str) -> Result<Option<Record>, StoreError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error(path, source)),
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let mut doc: Value = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    let revision = doc
        .get("revision")
        .and_then(Value::as_u64)
        .filter(|r| *r > 0)
        .ok_or_else(|| corrupt("no positive integer 'revision'".into()))?;
    let value = doc
        .get_mut("value")
        .map(Value::take)
        .ok_or_else(|| corrupt("no 'value'".into()))?;
    Ok(Some(Record {
        name: name.to_owned(),
        revision,
        value,
    }))
}

/// Temp file, fsync, rename over `path`, fsync the directory. The caller holds the lock, so
/// one temp name per record suffices, and a crash's leftover is simply overwritten.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("record");
    let temp = path.with_file_name(format!(".{file_name}.tmp"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|source| io_error(&temp, source))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error(&temp, source))?;
    drop(file);
    fs::rename(&temp, path).map_err(|source| io_error(path, source))?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| io_error(dir, source))
}

fn io_error(path: &Path, cause: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        cause,
    }
}

fn exists(kind: Kind, name: &str) -> StoreError {
    StoreError::Exists {
        kind,
        name: name.to_owned(),
    }
}

fn not_found(kind: Kind, name: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        name: name.to_owned(),
    }
}

fn conflict(kind: Kind, name: &str) -> StoreError {
    StoreError::Conflict {
        kind,
        name: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, FileStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("data")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn writes_are_compare_and_swap_on_the_revision() {
        let (_dir, s) = store();
        let v = |n: u64| json!({ "n": n });
        assert_eq!(
            s.put(Kind::User, "ann", v(1), Expect::Absent)
                .await
                .unwrap(),
            1
        );
        assert!(matches!(
            s.put(Kind::User, "ann", v(2), Expect::Absent).await,
            Err(StoreError::Exists { .. })
        ));
        assert_eq!(
            s.put(Kind::User, "ann", v(2), Expect::Revision(1))
                .await
                .unwrap(),
            2
        );
        // A writer that read revision 1 loses to the one that already wrote 2.
        assert!(matches!(
            s.put(Kind::User, "ann", v(3), Expect::Revision(1)).await,
            Err(StoreError::Conflict { .. })
        ));
        assert!(matches!(
            s.put(Kind::User, "bob", v(1), Expect::Revision(1)).await,
            Err(StoreError::NotFound { .. })
        ));
        let got = s.get(Kind::User, "ann").await.unwrap().unwrap();
        assert_eq!((got.revision, got.value), (2, v(2)));
        assert!(matches!(
            s.delete(Kind::User, "ann", 1).await,
            Err(StoreError::Conflict { .. })
        ));
        s.delete(Kind::User, "ann", 2).await.unwrap();
        assert_eq!(s.get(Kind::User, "ann").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_record_deleted_and_created_again_never_reuses_a_revision() {
        let (_dir, s) = store();
        let first = s
            .put(Kind::User, "ann", json!(1), Expect::Absent)
            .await
            .unwrap();
        s.delete(Kind::User, "ann", first).await.unwrap();
        let second = s
            .put(Kind::User, "ann", json!(2), Expect::Absent)
            .await
            .unwrap();
        assert!(second > first);
        // A writer still holding the old record's revision cannot overwrite the new one.
        assert!(matches!(
            s.put(Kind::User, "ann", json!(3), Expect::Revision(first))
                .await,
            Err(StoreError::Conflict { .. })
        ));
        // Losing the counter file does not lose the order: it restarts above every record.
        fs::remove_file(s.dir().join(".revision")).unwrap();
        let third = s
            .put(Kind::User, "bob", json!(1), Expect::Absent)
            .await
            .unwrap();
        assert!(third > second);
    }

    #[tokio::test]
    async fn a_corrupt_record_reads_as_absent_to_a_watcher_without_hiding_the_rest() {
        let (_dir, s) = store();
        s.put(Kind::User, "ann", json!(1), Expect::Absent)
            .await
            .unwrap();
        s.put(Kind::User, "bob", json!(1), Expect::Absent)
            .await
            .unwrap();
        let mut changes = s.watch();
        assert_eq!(
            changes.recv().await,
            Some(Event::Reload),
            "the baseline is taken"
        );
        fs::write(s.dir().join("users/ann.json"), "{ torn").unwrap();
        let other = FileStore::open(s.dir()).unwrap();
        let bob = other.get(Kind::User, "bob").await.unwrap().unwrap();
        other
            .put(Kind::User, "bob", json!(2), Expect::Revision(bob.revision))
            .await
            .unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let event = tokio::time::timeout(Duration::from_secs(10), changes.recv())
                .await
                .expect("a change within 10 s")
                .expect("the watcher is running");
            let Event::Changed(change) = event else {
                panic!("{event:?}")
            };
            seen.push((change.name, change.revision.is_some()));
        }
        seen.sort();
        assert_eq!(seen, [("ann".to_owned(), false), ("bob".to_owned(), true)]);
    }

    #[tokio::test]
    async fn records_are_readable_json_files_readable_only_by_the_owner() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, s) = store();
        s.put(
            Kind::Role,
            "ops",
            json!({"permissions": ["x"]}),
            Expect::Absent,
        )
        .await
        .unwrap();
        let path = s.dir().join("roles/ops.json");
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"revision\": 1"), "{text}");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<String> = s
            .list(Kind::Role)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["ops"]);
    }

    #[tokio::test]
    async fn a_corrupt_record_is_reported_with_its_path_and_nothing_is_written() {
        let (_dir, s) = store();
        let path = s.dir().join("users/ann.json");
        fs::write(&path, "{\"revision\": 1, \"value\": ").unwrap();
        let err = s.get(Kind::User, "ann").await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { path: p, .. } if *p == path),
            "{err}"
        );
        assert!(
            err.to_string().contains("users/ann.json is corrupt"),
            "{err}"
        );
        assert!(s
            .put(Kind::User, "ann", json!({}), Expect::Revision(1))
            .await
            .is_err());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"revision\": 1, \"value\": "
        );
    }

    #[tokio::test]
    async fn names_outside_the_alphabet_never_reach_the_file_system() {
        let (_dir, s) = store();
        for name in ["../escape", "a/b", ".lock", ""] {
            assert!(
                matches!(
                    s.put(Kind::User, name, json!({}), Expect::Absent).await,
                    Err(StoreError::InvalidName { .. })
                ),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn watch_reports_writes_made_through_another_handle() {
        let (_dir, s) = store();
        s.put(Kind::User, "old", json!({}), Expect::Absent)
            .await
            .unwrap();
        let mut changes = s.watch();
        // The watcher has taken its baseline: existing records are not changes.
        assert_eq!(changes.recv().await, Some(Event::Reload));
        let other = FileStore::open(s.dir()).unwrap();
        other
            .put(Kind::User, "new", json!({}), Expect::Absent)
            .await
            .unwrap();
        other.delete(Kind::User, "old", 1).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let event = tokio::time::timeout(Duration::from_secs(10), changes.recv())
                .await
                .expect("a change within 10 s")
                .expect("the watcher is running");
            let Event::Changed(change) = event else {
                panic!("{event:?}")
            };
            seen.push(change);
        }
        seen.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            seen,
            [
                Change {
                    kind: Kind::User,
                    name: "new".into(),
                    revision: Some(2)
                },
                Change {
                    kind: Kind::User,
                    name: "old".into(),
                    revision: None
                },
            ]
        );
    }
}
