//! Interop with PyJWT, for every algorithm and both key exchange forms (PEM and JWK):
//! jwtgate signs and PyJWT verifies, PyJWT signs and jwtgate verifies (reading PyJWT's keys as
//! JWK, SPKI, PKCS#8, PKCS#1, SEC1 and X.509 certificate). PyJWT must be
//! installed (the README's test command installs it); a missing PyJWT fails, never skips.

use std::process::Command;

use serde_json::Value;

use crate::harness::{s, Cli, ALGS};

fn python(args: &[&str]) -> Result<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/interop.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn pyjwt_is_installed() {
    let out = Command::new("python3")
        .args(["-c", "import jwt, cryptography; print(jwt.__version__)"])
        .output()
        .expect("python3 must be installed for the interop tests");
    assert!(
        out.status.success(),
        "PyJWT and cryptography must be installed (run the README's test command): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tokens_signed_by_jwtgate_verify_with_pyjwt_using_pem_and_jwk() {
    let cli = Cli::new();
    for alg in ALGS {
        let key = cli.path(&format!("{alg}.jwk"));
        cli.run(&["key", "gen", "--alg", alg, "--out", s(&key)])
            .ok();
        let claims = r#"{"sub":"alice","aud":"interop","roles":["api","user"]}"#;
        let token = cli
            .run(&["token", "sign", "--key", s(&key), "--claims", claims])
            .ok();
        let token = token.trim();

        let mut forms = vec![];
        if alg.starts_with("HS") {
            // The shared secret travels as the JWK `k` and as raw bytes.
            let jwk: Value = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
            let k =
                jwtgate_core::jose::decode(jwk["k"].as_str().unwrap(), jwtgate_core::Part::Payload)
                    .unwrap();
            let secret = cli.path(&format!("{alg}.secret"));
            std::fs::write(&secret, k).unwrap();
            forms.push((key.clone(), "jwk"));
            forms.push((secret, "secret"));
        } else {
            let pem = cli.write(
                &format!("{alg}.pub.pem"),
                &cli.run(&["key", "export", s(&key), "--format", "pem"]).ok(),
            );
            let jwk = cli.write(
                &format!("{alg}.pub.jwk"),
                &cli.run(&["key", "export", s(&key), "--format", "jwk"]).ok(),
            );
            forms.push((pem, "pem"));
            forms.push((jwk, "jwk"));
        }
        for (file, form) in forms {
            let out = python(&["verify", alg, token, s(&file), form])
                .unwrap_or_else(|e| panic!("PyJWT refused a jwtgate {alg} token ({form}): {e}"));
            let claims: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(claims["sub"], "alice", "{alg} {form}");
            assert_eq!(claims["roles"], serde_json::json!(["api", "user"]));
        }
    }
}

#[test]
fn tokens_signed_by_pyjwt_verify_with_jwtgate_using_pem_and_jwk() {
    let cli = Cli::new();
    for alg in ALGS {
        let dir = cli.path(alg);
        std::fs::create_dir(&dir).unwrap();
        python(&["make", alg, s(&dir)])
            .unwrap_or_else(|e| panic!("PyJWT could not make {alg}: {e}"));
        let token = std::fs::read_to_string(dir.join("token")).unwrap();
        let mut forms: Vec<Vec<String>> =
            vec![vec!["--key".into(), s(&dir.join("pub.jwk")).into()]];
        if alg.starts_with("HS") {
            forms.push(vec![
                "--key".into(),
                s(&dir.join("secret.b64")).into(),
                "--secret-base64".into(),
            ]);
        } else {
            // SPKI and PKCS#8, an X.509 certificate, and PKCS#1 / SEC1 where the key type has them.
            for file in [
                "pub.pem",
                "priv.pem",
                "cert.pem",
                "trad.pem",
                "pub.pkcs1.pem",
            ] {
                if dir.join(file).exists() || matches!(file, "pub.pem" | "priv.pem" | "cert.pem") {
                    forms.push(vec!["--key".into(), s(&dir.join(file)).into()]);
                }
            }
            assert_eq!(
                forms.len(),
                match &alg[..2] {
                    "RS" | "PS" => 6,
                    "Ed" => 4,
                    _ => 5,
                },
                "{alg}"
            );
        }
        for form in forms {
            let mut args = vec![
                "token",
                "verify",
                token.trim(),
                "--alg",
                alg,
                "--aud",
                "interop",
            ];
            args.extend(form.iter().map(String::as_str));
            let out = cli.run(&args).ok();
            assert!(out.ends_with("valid\n"), "{alg} {form:?}: {out}");
            assert!(out.contains("\"sub\": \"py\""), "{out}");
        }
    }
}
