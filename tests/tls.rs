//! TLS with throwaway certificates (rcgen): redis-cli --tls against
//! --tls-port, with and without mutual TLS. No key is ever committed.

mod common;
use std::process::Command;

use common::{Server, free_port};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1/localhost and a client certificate.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "redlockd test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        for (name, sans) in [
            ("server", vec!["127.0.0.1".to_string(), "localhost".to_string()]),
            ("client", vec!["client".to_string()]),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.signed_by(&key, &ca).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }
}

fn redis_cli(port: u16, pki: &Pki, client_cert: bool, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-p", &port.to_string(), "--tls", "--cacert", &pki.path("ca.pem")]);
    if client_cert {
        cmd.args(["--cert", &pki.path("client.pem"), "--key", &pki.path("client.key")]);
    }
    let out = cmd.args(args).output().expect("redis-cli");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

fn tls_server(pki: &Pki, extra: &[&str]) -> (Server, u16) {
    let tls_port = free_port();
    let port = tls_port.to_string();
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let mut args = vec!["--tls-port", &port, "--tls-cert-file", &cert, "--tls-key-file", &key];
    args.extend(extra);
    (Server::start_with(&args), tls_port)
}

#[test]
fn redis_cli_over_tls() {
    let pki = Pki::new();
    let (server, tls_port) = tls_server(&pki, &[]);
    assert_eq!(redis_cli(tls_port, &pki, false, &["PING"]), (true, "PONG".into()));
    assert_eq!(
        redis_cli(tls_port, &pki, false, &["SET", "k", "over-tls"]),
        (true, "OK".into())
    );
    // The plain port serves the same data.
    assert_eq!(server.raw().cmd_str(&["GET", "k"]), "$8\r\nover-tls\r\n");
    // Pipelined and large replies over TLS.
    let big = "x".repeat(100_000);
    assert_eq!(
        redis_cli(tls_port, &pki, false, &["SET", "big", &big]),
        (true, "OK".into())
    );
    assert_eq!(
        redis_cli(tls_port, &pki, false, &["STRLEN", "big"]),
        (true, "100000".into())
    );
    // A client that does not trust the server's CA fails the handshake.
    let other = Pki::new();
    let (ok, text) = redis_cli(tls_port, &other, false, &["PING"]);
    assert!(!ok || !text.contains("PONG"), "{text}");
    assert_eq!(server.raw().cmd(&["PING"]), b"+PONG\r\n");
}

#[test]
fn mutual_tls_requires_a_client_certificate() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    let (server, tls_port) = tls_server(&pki, &["--tls-ca-cert-file", &ca, "--tls-auth-clients", "yes"]);
    assert_eq!(redis_cli(tls_port, &pki, true, &["PING"]), (true, "PONG".into()));
    let (_, text) = redis_cli(tls_port, &pki, false, &["PING"]);
    assert!(
        !text.contains("PONG"),
        "a client without a certificate was served: {text}"
    );
    assert_eq!(server.raw().cmd(&["PING"]), b"+PONG\r\n");
}

#[test]
fn missing_certificates_are_a_startup_error() {
    let (status, stderr) = Server::start_expecting_failure(&["--tls-port", &free_port().to_string()]);
    assert!(!status.success());
    assert!(stderr.contains("--tls-cert-file"), "{stderr}");
}
