//! The file store under crashes and concurrent writers, with real processes: this test binary
//! re-runs itself as the child (`store_child`), which writes through `FileStore` and reports
//! each acknowledged write on stdout, and the parent kills it with SIGKILL at random moments.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jwtgate::model::Model;
use jwtgate::store::{Expect, FileStore, Kind, Store, StoreError};
use serde_json::{json, Value};

const WRITES: u64 = 1000;

/// Starts this test binary as a `store_child` running `job` on the store in `dir`.
fn spawn_child(dir: &Path, job: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "store::store_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("JWTGATE_TEST_STORE", dir)
        .env("JWTGATE_TEST_JOB", job)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The value written as record `i`: big enough that a torn write would show.
fn value(i: u64) -> Value {
    json!({ "i": i, "pad": "x".repeat(2000 + (i as usize % 97)) })
}

/// A small xorshift generator: random kill times without a dependency.
struct Random(u64);

impl Random {
    fn new() -> Random {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        eprintln!("crash test seed: {seed}");
        Random(u64::from(seed) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn every_acknowledged_write_survives_sigkill_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    FileStore::open(&data).unwrap();
    let mut random = Random::new();
    let mut acked = vec![false; WRITES as usize];
    let mut next = 0;
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while next < WRITES {
        assert!(Instant::now() < deadline, "only {next} writes in 300 s");
        let mut child = spawn_child(&data, &format!("write {next}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            // The first ack shares its line with the harness's "test store::store_child ... ".
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, i)) = line.split_once("ack ") {
                    if let Ok(i) = i.trim().parse::<u64>() {
                        // The receiver is gone only once the parent has given up.
                        let _ = tx.send(i);
                    }
                }
            }
        });
        // Once it is writing (its first acknowledgement), let it run 0 to 40 ms more, then
        // kill it mid-write (unless it already finished).
        if let Ok(i) = rx.recv_timeout(Duration::from_secs(60)) {
            acked[i as usize] = true;
        }
        std::thread::sleep(Duration::from_millis(random.below(40)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        reader.join().unwrap();
        for i in rx.try_iter() {
            acked[i as usize] = true;
        }
        while next < WRITES && acked[next as usize] {
            next += 1;
        }
    }
    eprintln!("{kills} kills");
    assert!(kills >= 5, "the child was killed only {kills} times");
    // Every record parses, and every acknowledged write is there with its full value.
    let store = FileStore::open(&data).unwrap();
    let records = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.list(Kind::Revocation))
        .unwrap();
    assert_eq!(records.len(), WRITES as usize);
    let mut revisions = std::collections::HashSet::new();
    for record in records {
        let i: u64 = record.name.strip_prefix('w').unwrap().parse().unwrap();
        assert_eq!(record.value, value(i), "record {i}");
        assert!(
            revisions.insert(record.revision),
            "revision {} reused",
            record.revision
        );
    }
    // The record rewritten after every create (an overwrite, not a create) is whole too, and
    // at least as far as the last acknowledged write.
    let progress = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.get(Kind::Keyset, "progress"))
        .unwrap()
        .unwrap();
    assert_eq!(progress.value["last"], json!(WRITES - 1));
    assert_eq!(progress.value["pad"], json!("y".repeat(3000)));
}

#[test]
fn two_processes_incrementing_one_record_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = FileStore::open(&data).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(store.put(Kind::Keyset, "counter", json!({"n": 0}), Expect::Absent))
        .unwrap();
    let children: Vec<Child> = (0..2)
        .map(|_| spawn_child(&data, "increment 150"))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let record = runtime
        .block_on(store.get(Kind::Keyset, "counter"))
        .unwrap()
        .unwrap();
    assert_eq!(record.value, json!({"n": 300}));
    assert_eq!(record.revision, 301);
}

/// The child process of the tests above; does nothing useful on its own.
#[test]
#[ignore = "run by the crash and concurrency tests as their child process"]
fn store_child() {
    let dir = std::env::var("JWTGATE_TEST_STORE").unwrap();
    let job = std::env::var("JWTGATE_TEST_JOB").unwrap();
    let store = FileStore::open(dir).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (what, arg) = job.split_once(' ').unwrap();
    let arg: u64 = arg.parse().unwrap();
    runtime.block_on(async {
        match what {
            "write" => {
                let model = Model::new(std::sync::Arc::new(store.clone()));
                let progress = json!({"last": 0, "pad": "y".repeat(3000)});
                match model.create(Kind::Keyset, "progress", &progress).await {
                    Ok(()) | Err(StoreError::Exists { .. }) => {}
                    Err(e) => panic!("cannot create the progress record: {e}"),
                }
                for i in arg..WRITES {
                    let name = format!("w{i}");
                    match store
                        .put(Kind::Revocation, &name, value(i), Expect::Absent)
                        .await
                    {
                        Ok(_) | Err(StoreError::Exists { .. }) => {}
                        Err(e) => panic!("write {i}: {e}"),
                    }
                    // An overwrite after each create: rewrites must not tear either.
                    model
                        .update::<Value, StoreError, _>(Kind::Keyset, "progress", |v| {
                            v["last"] = json!(v["last"].as_u64().unwrap().max(i));
                            Ok(())
                        })
                        .await
                        .unwrap();
                    println!("ack {i}");
                }
            }
            "increment" => {
                let model = Model::new(std::sync::Arc::new(store));
                for _ in 0..arg {
                    model
                        .update::<Value, StoreError, _>(Kind::Keyset, "counter", |v| {
                            v["n"] = json!(v["n"].as_u64().unwrap() + 1);
                            Ok(())
                        })
                        .await
                        .unwrap();
                }
            }
            other => panic!("unknown job {other}"),
        }
    });
}
