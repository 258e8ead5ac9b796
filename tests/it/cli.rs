//! The `key` and `token` commands: outputs, exit codes 0/1/2 and one-line errors.

use serde_json::Value;

use crate::harness::{s, Cli, ALGS};

#[test]
fn every_algorithm_generates_signs_and_verifies_through_the_cli() {
    let cli = Cli::new();
    for alg in ALGS {
        let key = cli.path(&format!("{alg}.jwk"));
        cli.run(&["key", "gen", "--alg", alg, "--out", s(&key)])
            .ok();
        let token = cli
            .run(&[
                "token",
                "sign",
                "--key",
                s(&key),
                "--claims",
                r#"{"sub":"alice"}"#,
            ])
            .ok();
        let out = cli
            .run(&["token", "verify", token.trim(), "--key", s(&key)])
            .ok();
        assert!(out.ends_with("valid\n"), "{alg}: {out}");
        assert!(out.contains(&format!("\"alg\": \"{alg}\"")), "{out}");
        assert!(out.contains("\"sub\": \"alice\""), "{out}");
        if !alg.starts_with("HS") {
            // Verifying needs only the public JWKS.
            let jwks = cli.write(
                &format!("{alg}.jwks"),
                &cli.run(&["key", "jwks", s(&key)]).ok(),
            );
            let out = cli
                .run(&["token", "verify", token.trim(), "--jwks", s(&jwks)])
                .ok();
            assert!(out.ends_with("valid\n"), "{alg}: {out}");
        }
    }
}

#[test]
fn jwks_generator_form_prints_oct_key_with_base64url_k() {
    let cli = Cli::new();
    let out = cli
        .run(&[
            "key", "gen", "--kty", "oct", "--size", "256", "--use", "sig", "--alg", "HS256",
            "--kid", "K", "--format", "jwks",
        ])
        .ok();
    let jwks: Value = serde_json::from_str(&out).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "oct");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "HS256");
    assert_eq!(key["kid"], "K");
    let k = key["k"].as_str().unwrap();
    assert_eq!(k.len(), 43, "256 bits in unpadded base64url");
    assert!(k
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
}

#[test]
fn env_format_prints_clustercockpit_lines_that_load_back() {
    let cli = Cli::new();
    let out = cli
        .run(&["key", "gen", "--alg", "EdDSA", "--format", "env"])
        .ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("ED25519 PUBLIC_KEY=\"") && lines[0].ends_with('"'));
    assert!(lines[1].starts_with("ED25519 PRIVATE_KEY=\"") && lines[1].ends_with('"'));
    // The .env form ClusterCockpit reads: JWT_PUBLIC_KEY / JWT_PRIVATE_KEY.
    let env = out
        .replace("ED25519 PUBLIC_KEY", "JWT_PUBLIC_KEY")
        .replace("ED25519 PRIVATE_KEY", "JWT_PRIVATE_KEY");
    let key = cli.write(".env", &env);
    let token = cli
        .run(&[
            "token",
            "sign",
            "--key",
            s(&key),
            "--claims",
            r#"{"sub":"api","roles":["api"]}"#,
        ])
        .ok();
    let public_only = cli.write("pub.env", lines[0]);
    let out = cli
        .run(&["token", "verify", token.trim(), "--key", s(&public_only)])
        .ok();
    assert!(out.ends_with("valid\n"), "{out}");
}

#[test]
fn verify_prints_the_precise_reason_and_exits_1() {
    let cli = Cli::new();
    let key = cli.path("k.jwk");
    cli.run(&[
        "key",
        "gen",
        "--alg",
        "ES256",
        "--kid",
        "k1",
        "--out",
        s(&key),
    ])
    .ok();
    let claims = r#"{"sub":"a","iss":"https://idp","aud":["web"],"exp":1000}"#;
    let token = cli
        .run(&["token", "sign", "--key", s(&key), "--claims", claims])
        .ok();
    let run = cli.run(&["token", "verify", token.trim(), "--key", s(&key)]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("\"sub\": \"a\""),
        "claims are shown even when invalid"
    );
    let last = run.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("invalid: token expired ") && last.ends_with("s ago"),
        "{last}"
    );

    let token = cli
        .run(&[
            "token",
            "sign",
            "--key",
            s(&key),
            "--claims",
            r#"{"aud":"web"}"#,
        ])
        .ok();
    let run = cli.run(&[
        "token",
        "verify",
        token.trim(),
        "--key",
        s(&key),
        "--aud",
        "api",
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .ends_with("invalid: audience mismatch: expected one of [api], got [web]\n"),
        "{}",
        run.stdout
    );

    let other = cli.path("other.jwk");
    cli.run(&[
        "key",
        "gen",
        "--alg",
        "RS256",
        "--kid",
        "k1",
        "--out",
        s(&other),
    ])
    .ok();
    let token = cli.run(&["token", "sign", "--key", s(&other)]).ok();
    let run = cli.run(&["token", "verify", token.trim(), "--key", s(&key)]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .ends_with("invalid: algorithm RS256 not allowed for key 'k1' (bound to ES256)\n"),
        "{}",
        run.stdout
    );

    let run = cli.run(&["token", "verify", "not-a-token", "--key", s(&key)]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        "invalid: token must have 3 dot-separated segments, found 1\n"
    );
}

#[test]
fn ttl_never_issues_a_token_without_exp_that_needs_allow_no_exp() {
    let cli = Cli::new();
    let key = cli.path("k.jwk");
    cli.run(&["key", "gen", "--out", s(&key)]).ok();
    let token = cli
        .run(&["token", "sign", "--key", s(&key), "--ttl", "never"])
        .ok();
    let run = cli.run(&["token", "verify", token.trim(), "--key", s(&key)]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .ends_with("invalid: required claim 'exp' is missing\n"),
        "{}",
        run.stdout
    );
    let out = cli
        .run(&[
            "token",
            "verify",
            token.trim(),
            "--key",
            s(&key),
            "--allow-no-exp",
        ])
        .ok();
    assert!(out.ends_with("valid\n"));
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let cli = Cli::new();
    let key = cli.path("k.jwk");
    cli.run(&["key", "gen", "--out", s(&key)]).ok();
    let cases: &[(&[&str], &str)] = &[
        (&["key", "gen", "--alg", "none"], "unknown algorithm 'none'"),
        (
            &["key", "gen", "--alg", "RS256", "--format", "env"],
            "--format env is for EdDSA",
        ),
        (
            &["key", "gen", "--alg", "HS256", "--size", "128"],
            "--size 128 is too small for HS256",
        ),
        (
            &["key", "gen", "--kty", "RSA", "--alg", "ES256"],
            "does not use --kty",
        ),
        (
            &["key", "gen", "--crv", "P-384", "--alg", "ES256"],
            "does not use curve P-384",
        ),
        (
            &["key", "gen", "--alg", "HS256", "--format", "pem"],
            "HMAC secrets have no PEM form",
        ),
        (&["key", "gen", "--use", "enc"], "invalid value 'enc'"),
        (
            &["token", "sign", "--key", "k.jwk", "--claims", "[1]"],
            "--claims must be a JSON object",
        ),
        (
            &["token", "sign", "--key", "k.jwk", "--claims", "{"],
            "--claims is not valid JSON",
        ),
        (
            &["token", "sign", "--key", "k.jwk", "--ttl", "soon"],
            "--ttl 'soon'",
        ),
        (
            &[
                "token",
                "sign",
                "--key",
                "k.jwk",
                "--claims",
                r#"{"exp":1}"#,
                "--ttl",
                "1h",
            ],
            "already have \"exp\"",
        ),
        (
            &["token", "verify", "x.y.z", "--alg", "HS256"],
            "--alg and --secret-base64 apply to --key files",
        ),
        (
            &["token", "verify", "x.y.z", "--jwks", "https://[idp/jwks"],
            "--jwks https://[idp/jwks: not a URL",
        ),
    ];
    for (args, want) in cases {
        let run = cli.run(args);
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn runtime_errors_exit_1_with_one_line_and_write_nothing() {
    let cli = Cli::new();
    let key = cli.path("k.jwk");
    cli.run(&["key", "gen", "--out", s(&key)]).ok();
    let before = std::fs::read_to_string(&key).unwrap();
    let run = cli.run(&["key", "gen", "--out", s(&key)]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("already exists; pass --force"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        before,
        "existing key untouched"
    );

    let garbage = cli.write("garbage.txt", "hello");
    let rsa_pem = cli.path("rsa.pem");
    cli.run(&[
        "key",
        "gen",
        "--alg",
        "RS256",
        "--format",
        "pem",
        "--out",
        s(&rsa_pem),
    ])
    .ok();
    let short = cli.write("short.txt", "too-short-secret");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["token", "sign", "--key", "missing.jwk"],
            "cannot read key file missing.jwk",
        ),
        (
            vec!["token", "sign", "--key", s(&garbage)],
            "not a recognised key",
        ),
        (
            vec!["token", "sign", "--key", s(&rsa_pem)],
            "give one (e.g. --alg RS256)",
        ),
        (
            vec!["token", "sign", "--key", s(&short), "--alg", "HS256"],
            "HMAC key for HS256 is 16 bytes; at least 32 bytes are required",
        ),
        (vec!["key", "jwks", s(&garbage)], "not a recognised key"),
    ];
    for (args, want) in cases {
        let run = cli.run(&args);
        assert_eq!(run.code, 1, "{args:?}: {run:#?}");
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
    }
}

#[cfg(unix)]
#[test]
fn private_key_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let cli = Cli::new();
    let key = cli.path("k.pem");
    cli.run(&["key", "gen", "--format", "pem", "--out", s(&key)])
        .ok();
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn public_jwks_never_contains_private_members_or_hmac_secrets() {
    let cli = Cli::new();
    let mut files = Vec::new();
    for alg in ["RS256", "ES384", "EdDSA", "HS256"] {
        let key = cli.path(&format!("{alg}.jwk"));
        cli.run(&["key", "gen", "--alg", alg, "--out", s(&key)])
            .ok();
        files.push(key);
    }
    let mut args = vec!["key", "jwks"];
    args.extend(files.iter().map(|p| s(p)));
    let run = cli.run(&args);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("HMAC secret and is left out"));
    let jwks: Value = serde_json::from_str(&run.stdout).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    for key in keys {
        for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(member).is_none(), "{key}");
        }
    }
}

#[test]
fn rsa_pem_from_elsewhere_signs_with_alg_and_exports_to_jwk() {
    let cli = Cli::new();
    let pem = cli.path("rsa.pem");
    cli.run(&[
        "key",
        "gen",
        "--alg",
        "PS384",
        "--format",
        "pem",
        "--out",
        s(&pem),
    ])
    .ok();
    let token = cli
        .run(&["token", "sign", "--key", s(&pem), "--alg", "PS384"])
        .ok();
    let jwk = cli.run(&["key", "export", s(&pem), "--alg", "PS384"]).ok();
    let jwk_path = cli.write("pub.jwk", &jwk);
    assert!(!jwk.contains("\"d\""));
    let out = cli
        .run(&["token", "verify", token.trim(), "--key", s(&jwk_path)])
        .ok();
    assert!(out.ends_with("valid\n"));
}

#[test]
fn every_command_has_help() {
    let cli = Cli::new();
    for args in [
        vec!["--help"],
        vec!["key", "--help"],
        vec!["key", "gen", "--help"],
        vec!["key", "jwks", "--help"],
        vec!["key", "export", "--help"],
        vec!["token", "--help"],
        vec!["token", "sign", "--help"],
        vec!["token", "verify", "--help"],
    ] {
        let out = cli.run(&args).ok();
        assert!(out.contains("Usage: jwtgate"), "{args:?}");
    }
}

#[test]
fn hmac_secret_as_text_or_base64_signs_and_verifies() {
    use base64::Engine;
    let cli = Cli::new();
    let secret = "correct horse battery staple 0123456789";
    let text = cli.write("secret.txt", &format!("{secret}\n"));
    let b64 = cli.write(
        "secret.b64",
        &base64::engine::general_purpose::STANDARD.encode(secret),
    );
    let token = cli
        .run(&["token", "sign", "--key", s(&text), "--alg", "HS256"])
        .ok();
    let out = cli
        .run(&[
            "token",
            "verify",
            token.trim(),
            "--key",
            s(&b64),
            "--alg",
            "HS256",
            "--secret-base64",
        ])
        .ok();
    assert!(out.ends_with("valid\n"), "{out}");
    let run = cli.run(&[
        "token",
        "verify",
        token.trim(),
        "--key",
        s(&b64),
        "--alg",
        "HS256",
    ]);
    // Read as text, the base64 is a different secret, so it has a different thumbprint kid.
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("invalid: unknown key id '"),
        "{}",
        run.stdout
    );
}

#[test]
fn token_with_an_audience_needs_aud_to_verify() {
    let cli = Cli::new();
    let key = cli.path("k.jwk");
    cli.run(&["key", "gen", "--out", s(&key)]).ok();
    let token = cli
        .run(&[
            "token",
            "sign",
            "--key",
            s(&key),
            "--claims",
            r#"{"aud":["api"]}"#,
        ])
        .ok();
    let run = cli.run(&["token", "verify", token.trim(), "--key", s(&key)]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.ends_with("invalid: token is for audience [api], and no audience is configured here to accept it\n"),
        "{}",
        run.stdout
    );
    let out = cli
        .run(&[
            "token",
            "verify",
            token.trim(),
            "--key",
            s(&key),
            "--aud",
            "api",
        ])
        .ok();
    assert!(out.ends_with("valid\n"));
}
