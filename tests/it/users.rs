//! Users, roles, token issuing and revocation through the real binary, on a fresh data
//! directory per test: the ClusterCockpit flow, and every error's message and exit code.

use crate::harness::Cli;

/// Runs and returns (exit code, stdout, stderr).
fn run(cli: &Cli, args: &[&str]) -> (i32, String, String) {
    let r = cli.run(args);
    (r.code, r.stdout, r.stderr)
}

fn last_line(text: &str) -> &str {
    text.trim_end().lines().last().unwrap_or_default()
}

#[test]
fn clustercockpit_flow_add_issue_verify_then_lock_and_revoke() {
    let cli = Cli::new();
    let (code, out, err) = run(&cli, &["user", "add", "apiuser:api:S3cr:et"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "added user 'apiuser' with roles [api]");
    assert!(
        err.contains("the admin password is (shown once): "),
        "{err}"
    );

    let token = cli.run(&["token", "issue", "apiuser"]).ok();
    let token = token.trim();
    let (code, out, _) = run(&cli, &["token", "verify", token]);
    assert_eq!((code, last_line(&out)), (0, "valid"), "{out}");
    assert!(out.contains("\"sub\": \"apiuser\""), "{out}");
    assert!(out.contains("\"roles\": [\n    \"api\"\n  ]"), "{out}");

    cli.run(&["user", "lock", "apiuser"]).ok();
    let (code, out, _) = run(&cli, &["token", "verify", token]);
    assert_eq!(
        (code, last_line(&out)),
        (1, "invalid: user 'apiuser' is locked")
    );
    let (code, _, err) = run(&cli, &["token", "issue", "apiuser"]);
    assert_eq!(
        (code, err.trim()),
        (1, "error: user 'apiuser' is locked; unlock them first")
    );

    cli.run(&["user", "unlock", "apiuser"]).ok();
    let (code, out, _) = run(&cli, &["token", "verify", token]);
    assert_eq!((code, last_line(&out)), (0, "valid"));

    cli.run(&["token", "revoke", "--user", "apiuser"]).ok();
    let (code, out, _) = run(&cli, &["token", "verify", token]);
    assert_eq!(
        (code, last_line(&out)),
        (
            1,
            "invalid: token was issued before the tokens of user 'apiuser' were revoked"
        )
    );
    // A token issued after the revocation verifies, even within the same second.
    let fresh = cli.run(&["token", "issue", "apiuser"]).ok();
    let (code, out, _) = run(&cli, &["token", "verify", fresh.trim()]);
    assert_eq!((code, last_line(&out)), (0, "valid"), "{out}");
}

#[test]
fn a_revoked_jti_and_a_deleted_user_make_a_token_invalid() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let token = cli.run(&["token", "issue", "bot", "--ttl", "never"]).ok();
    let token = token.trim();
    let out = cli.run(&["token", "verify", token]).ok();
    assert!(!out.contains("\"exp\""), "{out}");
    let jti = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"jti\": \""))
        .and_then(|l| l.strip_suffix("\","))
        .unwrap()
        .to_owned();
    cli.run(&["token", "revoke", "--jti", &jti]).ok();
    let (code, out, _) = run(&cli, &["token", "verify", token]);
    assert_eq!(
        (code, last_line(&out).to_owned()),
        (1, format!("invalid: token revoked (jti '{jti}')"))
    );

    let other = cli.run(&["token", "issue", "bot"]).ok();
    cli.run(&["user", "del", "bot"]).ok();
    let (code, out, _) = run(&cli, &["token", "verify", other.trim()]);
    assert_eq!(
        (code, last_line(&out)),
        (1, "invalid: user 'bot' no longer exists")
    );
}

#[test]
fn issued_tokens_carry_the_registered_claims_and_extra_ones() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user,api:pw"]).ok();
    let token = cli
        .run(&[
            "token",
            "issue",
            "ann",
            "--ttl",
            "2h",
            "--aud",
            "api",
            "--claim",
            "team=\"ops\"",
            "--claim",
            "level=3",
        ])
        .ok();
    let out = cli
        .run(&["token", "verify", token.trim(), "--aud", "api"])
        .ok();
    for member in [
        "\"iss\": \"jwtgate\"",
        "\"sub\": \"ann\"",
        "\"aud\": \"api\"",
        "\"iat\": ",
        "\"nbf\": ",
        "\"exp\": ",
        "\"jti\": ",
        "\"team\": \"ops\"",
        "\"level\": 3",
    ] {
        assert!(out.contains(member), "{member} in {out}");
    }
    // The token names an audience, so a verifier that names none refuses it.
    let (code, out, _) = run(&cli, &["token", "verify", token.trim()]);
    assert_eq!(code, 1);
    assert!(last_line(&out).starts_with("invalid: "), "{out}");
}

#[test]
fn issuing_to_a_user_without_the_api_role_warns() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    let r = cli.run(&["token", "issue", "ann"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stderr
            .contains("warning: user 'ann' does not have the 'api' role"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_user_error_has_a_clear_message_and_exit_code() {
    let cli = Cli::new();
    cli.run(&["user", "add", "apiuser:api:pw"]).ok();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["user", "add", "apiuser:api:other"],
            1,
            "error: user 'apiuser' already exists",
        ),
        (
            &["token", "issue", "nobody"],
            1,
            "error: unknown user 'nobody'",
        ),
        (&["user", "lock", "nobody"], 1, "error: unknown user 'nobody'"),
        (&["user", "show", "nobody"], 1, "error: unknown user 'nobody'"),
        (
            &["user", "add", "bob:wizard:pw"],
            1,
            "error: unknown role 'wizard' (roles: admin, api, user)",
        ),
        (&["user", "add", "bob:api:"], 2, "error: the password is empty"),
        (
            &["user", "add", "x/y:api:pw"],
            2,
            "error: invalid user name 'x/y': use only letters, digits, '.', '_', '@' and '-'",
        ),
        (
            &["user", "add", "../x:api:pw"],
            2,
            "error: invalid user name '../x': it must not start with '.' or '-'",
        ),
        (
            &["user", "add", "--", "-x:api:pw"],
            2,
            "error: invalid user name '-x': it must not start with '.' or '-'",
        ),
        (
            &["user", "add", "bob"],
            2,
            "error: no password: use NAME:ROLES:PASSWORD, or NAME --roles a,b --password-stdin",
        ),
        (
            &["user", "roles", "apiuser", "--remove", "admin"],
            1,
            "error: user 'apiuser' does not have the role 'admin'",
        ),
        (
            &["token", "issue", "apiuser", "--claim", "sub=root"],
            2,
            "error: --claim \"sub\": cannot set a claim jwtgate sets itself",
        ),
        (
            &["token", "issue", "apiuser", "--ttl", "soon"],
            2,
            "error: --ttl 'soon': expected number at 0 (e.g. 90s, 30m, 1h, 7d, never)",
        ),
        (&["token", "revoke", "--user", "nobody"], 1, "error: unknown user 'nobody'"),
        (
            &["role", "del", "api"],
            1,
            "error: role 'api' is held by apiuser; remove it from them first (jwtgate user roles NAME --remove api)",
        ),
        (&["role", "del", "nope"], 1, "error: unknown role 'nope'"),
    ];
    for (args, code, message) in cases {
        let r = cli.run(args);
        assert_eq!(
            (r.code, r.stderr.trim()),
            (*code, *message),
            "jwtgate {}",
            args.join(" ")
        );
        assert_eq!(r.stdout, "", "jwtgate {} printed to stdout", args.join(" "));
    }
}

#[test]
fn a_corrupt_store_file_is_named_and_left_untouched() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:api:pw"]).ok();
    let path = cli.path("jwtgate-data/users/ann.json");
    std::fs::write(&path, "{ not json").unwrap();
    for args in [
        &["user", "show", "ann"][..],
        &["user", "lock", "ann"],
        &["token", "issue", "ann"],
        &["user", "list"],
    ] {
        let r = cli.run(args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(
            r.stderr
                .starts_with("error: ./jwtgate-data/users/ann.json is corrupt: "),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");

    // Unreadable: a directory where the record should be.
    let bob = cli.path("jwtgate-data/users/bob.json");
    std::fs::create_dir(&bob).unwrap();
    let r = cli.run(&["user", "show", "bob"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "error: ./jwtgate-data/users/bob.json: Is a directory (os error 21)"
        )
    );
}

#[test]
fn the_password_may_come_from_stdin_and_contain_colons() {
    let cli = Cli::new();
    let r = cli.run_with_stdin(
        &[
            "user",
            "add",
            "ann",
            "--roles",
            "user,api",
            "--password-stdin",
        ],
        "pa:ss:word\n",
    );
    assert_eq!(r.code, 0, "{r:?}");
    let out = cli.run(&["user", "show", "ann"]).ok();
    assert!(
        out.contains("\"roles\": [\n    \"user\",\n    \"api\"\n  ]"),
        "{out}"
    );
    assert!(!out.contains("argon2"), "the hash is never shown: {out}");
    let stored = std::fs::read_to_string(cli.path("jwtgate-data/users/ann.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let hash = doc["value"]["password"].as_str().unwrap();
    assert!(jwtgate_core::password::check("pa:ss:word", hash));
    assert!(!jwtgate_core::password::check("pa:ss", hash));
}

#[test]
fn first_use_initialises_once_with_the_admin_password_from_the_environment() {
    let cli = Cli::new();
    let r = cli.run_with_env(
        &["role", "set", "ops", "vm.view"],
        &[("JWTGATE_ADMIN_PASSWORD", "hunter2")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r
        .stderr
        .contains("admin password from JWTGATE_ADMIN_PASSWORD"));
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    let roles = cli.run(&["role", "list"]);
    assert_eq!(roles.stderr, "", "initialised only once");
    assert_eq!(
        roles.stdout,
        "admin                    *\napi                      \nops                      vm.view\nuser                     \n"
    );
    let users = cli.run(&["user", "list"]).ok();
    assert!(users.contains("admin                    admin"), "{users}");
    let stored = std::fs::read_to_string(cli.path("jwtgate-data/users/admin.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert!(jwtgate_core::password::check(
        "hunter2",
        doc["value"]["password"].as_str().unwrap()
    ));
}

#[test]
fn after_key_rotation_old_tokens_still_verify_and_new_ones_use_the_new_key() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let old = cli.run(&["token", "issue", "bot"]).ok();
    let out = cli.run(&["key", "rotate", "--alg", "EdDSA"]).ok();
    assert!(out.contains("1 older key still verifies"), "{out}");
    let new = cli.run(&["token", "issue", "bot"]).ok();
    let old_out = cli.run(&["token", "verify", old.trim()]).ok();
    let new_out = cli.run(&["token", "verify", new.trim()]).ok();
    assert!(old_out.contains("(ES256)\nvalid"), "{old_out}");
    assert!(new_out.contains("(EdDSA)\nvalid"), "{new_out}");
    let list = cli.run(&["key", "list"]).ok();
    assert_eq!(list.matches("retired").count(), 1, "{list}");
    assert_eq!(list.matches("active").count(), 1, "{list}");
    let jwks = cli.run(&["key", "published"]).ok();
    assert_eq!(jwks.matches("\"kid\"").count(), 2, "{jwks}");
    assert!(!jwks.contains("\"d\""), "no private members: {jwks}");
}

#[test]
fn totp_enrolment_prints_the_uri_and_a_qr_code() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    let out = cli.run(&["user", "totp", "enroll", "ann"]).ok();
    assert!(out.contains("otpauth://totp/jwtgate:ann?secret="), "{out}");
    assert!(
        out.contains('█') || out.contains('▀') || out.contains('▄'),
        "{out}"
    );
    assert!(cli
        .run(&["user", "show", "ann"])
        .ok()
        .contains("\"totp\": true"));
    cli.run(&["user", "totp", "disable", "ann"]).ok();
    let (code, _, err) = run(&cli, &["user", "totp", "disable", "ann"]);
    assert_eq!(
        (code, err.trim()),
        (1, "error: user 'ann' has no TOTP enrolled")
    );
}

#[test]
fn passwords_roles_and_listing_change_through_the_cli() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:old"]).ok();
    let hash_of = |cli: &Cli| {
        let stored = std::fs::read_to_string(cli.path("jwtgate-data/users/ann.json")).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&stored).unwrap();
        doc["value"]["password"].as_str().unwrap().to_owned()
    };
    let r = cli.run_with_stdin(&["user", "passwd", "ann"], "new:pw\n");
    assert_eq!((r.code, r.stdout.trim()), (0, "password of 'ann' changed"));
    assert!(jwtgate_core::password::check("new:pw", &hash_of(&cli)));
    assert!(!jwtgate_core::password::check("old", &hash_of(&cli)));
    let r = cli.run_with_stdin(&["user", "passwd", "ann"], "\n");
    assert_eq!(
        (r.code, r.stderr.trim()),
        (2, "error: the password is empty")
    );

    cli.run(&["role", "set", "operator", "vm.console", "vm.view"])
        .ok();
    let out = cli
        .run(&[
            "user", "roles", "ann", "--add", "operator", "--remove", "user",
        ])
        .ok();
    assert_eq!(out.trim(), "user 'ann' has roles [operator]");
    let list = cli.run(&["user", "list"]).ok();
    assert!(
        list.contains("ann                      operator                 no      no"),
        "{list}"
    );
    let roles = cli.run(&["role", "list"]).ok();
    assert!(
        roles.contains("operator                 vm.console vm.view"),
        "{roles}"
    );
    let (code, _, err) = run(&cli, &["role", "set", "bad", "has space"]);
    assert_eq!(
        (code, err.trim()),
        (
            2,
            "error: invalid permission \"has space\": no spaces or control characters"
        )
    );
}

#[test]
fn a_mistake_never_creates_or_changes_a_data_directory() {
    let cli = Cli::new();
    // Arguments are checked before the store is opened: nothing is created.
    let r = cli.run(&["user", "add", "x y:api:pw"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "error: invalid user name 'x y': use only letters, digits, '.', '_', '@' and '-'\n"
    );
    assert!(!cli.path("jwtgate-data").exists());
    // Reading commands never create one either.
    for args in [
        &["user", "list"][..],
        &["token", "verify", "a.b.c"],
        &["key", "list"],
        &["user", "lock", "ann"],
    ] {
        let r = cli.run(args);
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (
                1,
                "error: no jwtgate data directory at ./jwtgate-data; the first `jwtgate user add` or `jwtgate role set` creates one (or pass --data DIR)\n"
            ),
            "{args:?}"
        );
    }
    assert!(!cli.path("jwtgate-data").exists());
}

#[test]
fn a_lost_keyset_is_reported_not_silently_replaced() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let token = cli.run(&["token", "issue", "bot"]).ok();
    std::fs::remove_file(cli.path("jwtgate-data/keys/signing.json")).unwrap();
    let r = cli.run(&["token", "verify", token.trim()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("error: ./jwtgate-data has users or roles but no signing keyset"),
        "{}",
        r.stderr
    );
    assert!(!cli.path("jwtgate-data/keys/signing.json").exists());
    // Making a new key is an explicit act.
    let r = cli.run(&["key", "rotate"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("made a new one"), "{}", r.stderr);
    let fresh = cli.run(&["token", "issue", "bot"]).ok();
    cli.run(&["token", "verify", fresh.trim()]).ok();
}

#[test]
fn tokens_of_a_deleted_user_stay_invalid_when_the_name_is_reused() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bob:api:pw"]).ok();
    let old = cli.run(&["token", "issue", "bob", "--ttl", "never"]).ok();
    let r = cli.run(&["user", "del", "bob"]);
    assert_eq!(r.stdout, "deleted user 'bob'\n");
    let r = cli.run(&["user", "del", "bob"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "error: unknown user 'bob'\n")
    );
    cli.run(&["user", "add", "bob:admin:new"]).ok();
    let r = cli.run(&["token", "verify", old.trim()]);
    assert_eq!(
        (r.code, last_line(&r.stdout)),
        (
            1,
            "invalid: token was issued before the tokens of user 'bob' were revoked"
        )
    );
    let new = cli.run(&["token", "issue", "bob"]).ok();
    let r = cli.run(&["token", "verify", new.trim()]);
    assert_eq!((r.code, last_line(&r.stdout)), (0, "valid"), "{r:?}");
}

#[test]
fn every_issued_jti_can_be_revoked() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    for _ in 0..5 {
        let token = cli.run(&["token", "issue", "bot"]).ok();
        let out = cli.run(&["token", "verify", token.trim()]).ok();
        let jti = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("\"jti\": \""))
            .and_then(|l| l.strip_suffix("\","))
            .unwrap()
            .to_owned();
        assert!(
            jti.len() == 32 && jti.bytes().all(|b| b.is_ascii_hexdigit()),
            "{jti}"
        );
        cli.run(&["token", "revoke", "--jti", &jti]).ok();
        let r = cli.run(&["token", "verify", token.trim()]);
        assert_eq!(r.code, 1);
    }
}

#[test]
fn odd_token_and_role_arguments_are_refused_or_normalised() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let cases: &[(&[&str], &str)] = &[
        (
            &["token", "issue", "bot", "--ttl", "1000000000y"],
            "error: --ttl is longer than 10 years; use --ttl never for a token without exp",
        ),
        (
            &["token", "issue", "bot", "--aud", ""],
            "error: --aud \"\": an audience cannot be empty",
        ),
        (
            &["user", "roles", "bot", "--add", "api", "--remove", "api"],
            "error: --add and --remove both name 'api'",
        ),
        (
            &["token", "revoke", "--jti", "a", "--user", "b"],
            "error: the argument '--jti <JTI>' cannot be used with '--user <USER>' (see --help)",
        ),
        (
            &["user", "add"],
            "error: the following required arguments were not provided: <SPEC> (see --help)",
        ),
    ];
    for (args, message) in cases {
        let r = cli.run(args);
        assert_eq!((r.code, r.stderr.trim()), (2, *message), "{args:?}");
    }
    let out = cli.run(&["role", "set", "y", "a", "a", "b", "a"]).ok();
    assert_eq!(out, "role 'y': [a, b]\n");
    cli.run(&["user", "totp", "enroll", "bot"]).ok();
    let r = cli.run(&["user", "totp", "enroll", "bot"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "error: user 'bot' already has TOTP; `jwtgate user totp disable bot` first"
        )
    );
}
