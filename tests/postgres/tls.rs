//! TLS against a real server: a throwaway PostgreSQL cluster with `ssl=on`,
//! a server certificate from a test CA made at test time with rcgen, TCP
//! connections allowed only over TLS (`hostssl`, SCRAM passwords or client
//! certificates), on a free port on 127.0.0.1.
//!
//! Every `sslmode` is checked against what libpq does; then the server is
//! given a certificate for another host name (same CA) to show what
//! `verify-ca` and `verify-full` each check. The cluster is stopped and
//! removed when the test ends, also when it fails. Skipped with a notice
//! when the PostgreSQL server binaries are missing (a failure under `CI=true`).
use std::time::{Duration, Instant};

use crate::common::net::cluster::{pg_bin, Cluster, Setup};
use crate::common::net::{block_on_bounded, skip};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use sqlaio::Engine;

/// The SCRAM password of the test role: it must never show in messages.
const SECRET: &str = "Pw-7f3c1e9a-never-shown";

/// A CA: its certificate and key.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A certificate for `names` (host names or IP addresses) with common
    /// name `cn`, signed by this CA: (certificate PEM, key PEM).
    fn issue(&self, cn: &str, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Connects with `url`, and answers whether the session is encrypted.
async fn encrypted(url: &str) -> sqlaio::Result<bool> {
    let engine = Engine::builder()
        .url(url)
        .acquire_timeout(Duration::from_secs(10))
        .build()?;
    let answer = engine
        .scalar::<bool>(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            (),
        )
        .await;
    engine.close().await?;
    answer
}

/// Fails unless the error's text, `Debug` and every cause are free of the password.
fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the password: {text}");
}

#[test]
fn tls_modes_against_a_server_with_a_test_ca() {
    let test = "tls_modes_against_a_server_with_a_test_ca";
    let Some(bin) = pg_bin() else {
        return skip(
            test,
            "no PostgreSQL server binaries under /usr/lib/postgresql",
        );
    };
    let ca = Ca::new("sqlaio test CA");
    let other_ca = Ca::new("sqlaio unrelated CA");
    let (server_crt, server_key) = ca.issue("localhost", &["localhost", "127.0.0.1"]);
    let (wrong_crt, wrong_key) = ca.issue("wrong.invalid", &["wrong.invalid"]);
    let (client_crt, client_key) = ca.issue("certuser", &[]);
    let file = |name: &str, pem: &str| (name.to_owned(), pem.as_bytes().to_vec());
    let cluster = Cluster::start(
        &bin,
        Setup {
            hba: vec![
                "local all all trust".into(),
                "hostssl all certuser 127.0.0.1/32 cert".into(),
                "hostssl all all 127.0.0.1/32 scram-sha-256".into(),
                "host all all 127.0.0.1/32 reject".into(),
            ],
            conf: vec![
                "ssl = on".into(),
                "ssl_cert_file = '$DIR/server.crt'".into(),
                "ssl_key_file = '$DIR/server.key'".into(),
                "ssl_ca_file = '$DIR/ca.crt'".into(),
                "password_encryption = 'scram-sha-256'".into(),
            ],
            files: vec![
                file("server.crt", &server_crt),
                file("server.key", &server_key),
                file("wrong.crt", &wrong_crt),
                file("wrong.key", &wrong_key),
                file("ca.crt", &ca.cert.pem()),
            ],
            netns: None,
        },
    )
    .unwrap_or_else(|e| panic!("{test}: the cluster did not start: {e}"));
    cluster.wait_ready().unwrap();
    cluster
        .psql(&format!(
            "CREATE ROLE dana LOGIN PASSWORD '{SECRET}'; CREATE ROLE certuser LOGIN"
        ))
        .unwrap();

    // The client's files, readable by this process only.
    let client = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| {
        let path = client.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    };
    let root = write("root.crt", &ca.cert.pem());
    let wrong_root = write("other-root.crt", &other_ca.cert.pem());
    let client_crt = write("client.crt", &client_crt);
    let client_key = write("client.key", &client_key);

    let port = cluster.port;
    let url = |host: &str, options: &str| {
        format!("postgres://dana:{SECRET}@{host}:{port}/postgres?connect_timeout=5&{options}")
    };

    block_on_bounded(test, Duration::from_secs(120), async {
        // verify-full with the right CA, by name and by address.
        for host in ["localhost", "127.0.0.1"] {
            let u = url(host, &format!("sslmode=verify-full&sslrootcert={root}"));
            assert!(encrypted(&u)
                .await
                .unwrap_or_else(|e| panic!("{host}: {e}")));
        }
        // SCRAM with channel binding (SCRAM-SHA-256-PLUS) over rustls.
        let u = url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={root}&channel_binding=require"),
        );
        assert!(encrypted(&u)
            .await
            .unwrap_or_else(|e| panic!("channel binding: {e}")));
        // A key-value string says the same.
        let kv = format!(
            "host=localhost port={port} user=dana password='{SECRET}' dbname=postgres \
             sslmode=verify-full sslrootcert='{root}'"
        );
        assert!(encrypted(&kv)
            .await
            .unwrap_or_else(|e| panic!("key-value: {e}")));

        // A CA that did not sign the server's certificate is refused.
        for mode in ["verify-ca", "verify-full", "require"] {
            let u = url(
                "localhost",
                &format!("sslmode={mode}&sslrootcert={wrong_root}"),
            );
            let e = encrypted(&u).await.expect_err(mode);
            let text = e.to_string();
            assert!(
                text.contains("certificate") && text.contains("UnknownIssuer"),
                "{mode}: {text}"
            );
            assert_no_secret(mode, &text);
            assert_no_secret(mode, &format!("{e:?}"));
            eprintln!("{test}: {mode} with an unrelated CA: {text}");
        }

        // Without a root certificate, require, prefer and allow encrypt
        // without verifying (as libpq does).
        for mode in ["require", "prefer", "allow"] {
            let u = url("localhost", &format!("sslmode={mode}"));
            assert!(
                encrypted(&u)
                    .await
                    .unwrap_or_else(|e| panic!("{mode}: {e}")),
                "{mode}"
            );
        }

        // No TLS: the server takes TCP connections over TLS only.
        let e = encrypted(&url("127.0.0.1", "sslmode=disable"))
            .await
            .expect_err("disable");
        let text = e.to_string();
        assert!(text.contains("pg_hba.conf rejects"), "disable: {text}");
        assert_no_secret("disable", &text);
        eprintln!("{test}: disable against a hostssl-only server: {text}");

        // A client certificate signed by the CA logs certuser in.
        let cert_url = |files: &str| {
            format!(
                "postgres://certuser@localhost:{port}/postgres?sslmode=verify-full\
                 &sslrootcert={root}{files}"
            )
        };
        let with = cert_url(&format!("&sslcert={client_crt}&sslkey={client_key}"));
        assert!(encrypted(&with)
            .await
            .unwrap_or_else(|e| panic!("sslcert: {e}")));
        let e = encrypted(&cert_url(""))
            .await
            .expect_err("no client certificate");
        eprintln!("{test}: cert auth without a client certificate: {e}");

        // A wrong password: the error and the engine never show a password.
        let wrong = "Pw-wrong-".to_owned() + &SECRET[3..];
        let u = url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={root}"),
        )
        .replace(SECRET, &wrong);
        let engine = Engine::builder().url(&u).build().unwrap();
        assert!(!format!("{engine:?}").contains(&wrong));
        let e = engine
            .scalar::<i64>("SELECT 1", ())
            .await
            .expect_err("wrong password");
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains(&wrong), "{shown}");
        }
        let engine = Engine::builder()
            .url(url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={root}"),
            ))
            .build()
            .unwrap();
        assert_no_secret("the engine's Debug", &format!("{engine:?}"));
        engine.close().await.unwrap();
    });

    // The server now shows a certificate from the same CA for another name.
    let in_dir = |name: &str| format!("{}/{name}", cluster.dir().display());
    for (setting, name) in [
        ("ssl_cert_file", "wrong.crt"),
        ("ssl_key_file", "wrong.key"),
    ] {
        cluster
            .psql(&format!("ALTER SYSTEM SET {setting} = '{}'", in_dir(name)))
            .unwrap();
    }
    cluster.psql("SELECT pg_reload_conf()").unwrap();
    wait_for_setting(&cluster, "ssl_cert_file", &in_dir("wrong.crt"));

    block_on_bounded(test, Duration::from_secs(60), async {
        let e = encrypted(&url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={root}"),
        ))
        .await
        .expect_err("a certificate for another name");
        let text = e.to_string();
        assert!(
            text.contains("certificate") && text.contains("name"),
            "{text}"
        );
        eprintln!("{test}: verify-full with a certificate for another name: {text}");
        let u = url(
            "localhost",
            &format!("sslmode=verify-ca&sslrootcert={root}"),
        );
        assert!(encrypted(&u)
            .await
            .unwrap_or_else(|e| panic!("verify-ca: {e}")));
    });
}

/// Waits (at most 10 s) until new sessions see `name = value` after a reload.
fn wait_for_setting(cluster: &Cluster, name: &str, value: &str) {
    let started = Instant::now();
    loop {
        let now = cluster.psql(&format!("SHOW {name}")).unwrap();
        if now.trim() == value {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} is still {now:?} after the reload"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
