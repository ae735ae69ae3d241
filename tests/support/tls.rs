//! TLS for the tests (SPEC §6): a throw-away PKI made by the test itself
//! ([`Pki`]: a CA, and certificates for names or IP addresses, expired or
//! not, with RSA, ECDSA or Ed25519 keys in PKCS#8, PKCS#1 or SEC1 form)
//! and [`TlsFront`], a TLS server (rustls) that stands in front of a plain
//! TCP server (the Consul agent double) and passes the bytes through,
//! counting handshakes and recording why failed ones failed. Shares no code
//! with `src/` (the crate's unit tests include this file by path; the
//! integration tests use it as `support::tls`).
//!
//! RSA keys and the PKCS#1/SEC1 forms come from the `openssl` command
//! (rcgen with ring cannot make RSA keys); everything else from rcgen.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

/// The kind and PEM form of a certificate's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// ECDSA P-256, PKCS#8 (`PRIVATE KEY`).
    EcdsaPkcs8,
    /// ECDSA P-256, SEC1 (`EC PRIVATE KEY`).
    EcdsaSec1,
    /// Ed25519, PKCS#8.
    Ed25519,
    /// RSA 2048, PKCS#8.
    RsaPkcs8,
    /// RSA 2048, PKCS#1 (`RSA PRIVATE KEY`).
    RsaPkcs1,
}

/// What to put in a certificate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Subject alternative names: DNS names or IP addresses.
    pub names: Vec<String>,
    /// Valid from 2000 to 2001 instead of from now on.
    pub expired: bool,
    /// For a TLS client (else a server).
    pub client: bool,
    pub key: Key,
}

impl Spec {
    /// A server certificate for `names`, ECDSA key in PKCS#8.
    pub fn server(names: &[&str]) -> Spec {
        Spec {
            names: names.iter().map(|n| n.to_string()).collect(),
            expired: false,
            client: false,
            key: Key::EcdsaPkcs8,
        }
    }

    /// A client certificate with this kind of key.
    pub fn client(key: Key) -> Spec {
        Spec {
            names: vec!["containerpilot".into()],
            expired: false,
            client: true,
            key,
        }
    }

    pub fn expired(mut self) -> Spec {
        self.expired = true;
        self
    }
}

/// A CA of our own, writing its files into a directory.
pub struct Pki {
    dir: PathBuf,
    name: String,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA called `name`; its certificate is written to `DIR/NAME.pem`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("self-signed CA");
        let pki = Pki {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            ca,
        };
        std::fs::write(pki.ca_file(), pki.ca.pem()).expect("write the CA certificate");
        pki
    }

    /// The CA certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// Issues a certificate; writes `DIR/STEM.crt` and `DIR/STEM.key` and
    /// returns their paths.
    pub fn issue(&self, stem: &str, spec: &Spec) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(spec.names.clone()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, spec.names[0].as_str());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if spec.client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if spec.expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let (key_pair, key_pem) = self.key(stem, spec.key);
        let cert = params.signed_by(&key_pair, &self.ca).expect("sign");
        let crt = self.dir.join(format!("{stem}.crt"));
        let key = self.dir.join(format!("{stem}.key"));
        std::fs::write(&crt, cert.pem()).expect("write certificate");
        std::fs::write(&key, key_pem).expect("write key");
        (crt, key)
    }

    /// A new key of `kind`, and its PEM in the form `kind` names.
    fn key(&self, stem: &str, kind: Key) -> (KeyPair, String) {
        match kind {
            Key::EcdsaPkcs8 => {
                let k = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
                let pem = k.serialize_pem();
                (k, pem)
            }
            Key::Ed25519 => {
                let k = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
                let pem = k.serialize_pem();
                (k, pem)
            }
            Key::EcdsaSec1 => {
                let k = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
                let pkcs8 = self.dir.join(format!("{stem}.pkcs8"));
                std::fs::write(&pkcs8, k.serialize_pem()).expect("write key");
                let pem = openssl(&["ec", "-in", path_str(&pkcs8)]);
                (k, pem)
            }
            Key::RsaPkcs8 | Key::RsaPkcs1 => {
                let pkcs8 = openssl(&[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ]);
                let k = KeyPair::from_pem(&pkcs8).expect("an RSA key rcgen can sign with");
                if kind == Key::RsaPkcs8 {
                    return (k, pkcs8);
                }
                let file = self.dir.join(format!("{stem}.pkcs8"));
                std::fs::write(&file, &pkcs8).expect("write key");
                let pem = openssl(&["rsa", "-traditional", "-in", path_str(&file)]);
                (k, pem)
            }
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Runs `openssl ARGS` and returns its standard output (a PEM key).
fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl {args:?} (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = String::from_utf8(out.stdout).expect("PEM is text");
    assert!(
        pem.contains("-----BEGIN"),
        "openssl {args:?} printed {pem:?}"
    );
    pem
}

/// How a [`TlsFront`] is set up.
#[derive(Debug, Clone)]
pub struct FrontOptions {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require a client certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
    /// Speak TLS 1.2 only (else 1.3 and 1.2).
    pub tls12_only: bool,
}

impl FrontOptions {
    pub fn new(cert: &Path, key: &Path) -> FrontOptions {
        FrontOptions {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            client_ca: None,
            tls12_only: false,
        }
    }
}

/// What the front has seen.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Connections accepted.
    pub connections: usize,
    /// Handshakes completed, with the protocol version each agreed on
    /// (`TLSv1_3`, `TLSv1_2`).
    pub handshakes: Vec<String>,
    /// Why connections failed on our side (rustls's words).
    pub failures: Vec<String>,
}

struct Shared {
    seen: Mutex<Seen>,
    stop: AtomicBool,
    /// Open client connections by number, to close them when the front goes.
    conns: Mutex<BTreeMap<u64, TcpStream>>,
}

impl Shared {
    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A TLS server on 127.0.0.1 (an ephemeral port) in front of a plain TCP
/// server: each TLS connection gets a TCP connection to the backend, and
/// the decrypted bytes go through both ways, so keep-alive is end to end.
pub struct TlsFront {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl TlsFront {
    /// Starts a front for `backend` (`host:port`).
    pub fn start(backend: &str, opts: &FrontOptions) -> TlsFront {
        let config = Arc::new(server_config(opts));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TLS front");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            seen: Mutex::new(Seen::default()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(BTreeMap::new()),
        });
        let s = shared.clone();
        let backend = backend.to_string();
        let accept = thread::spawn(move || {
            for (n, stream) in (0u64..).zip(listener.incoming()) {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                s.seen().connections += 1;
                if let Ok(c) = stream.try_clone() {
                    s.conns
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(n, c);
                }
                let (s, config, backend) = (s.clone(), config.clone(), backend.clone());
                thread::spawn(move || {
                    relay(&s, config, stream, &backend);
                    s.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
                });
            }
        });
        TlsFront {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn seen(&self) -> Seen {
        self.shared.seen().clone()
    }

    pub fn handshakes(&self) -> usize {
        self.shared.seen().handshakes.len()
    }

    pub fn failures(&self) -> Vec<String> {
        self.shared.seen().failures.clone()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        let conns =
            std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for c in conns.into_values() {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn server_config(opts: &FrontOptions) -> ServerConfig {
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if opts.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("protocol versions");
    let builder = match &opts.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).expect("client CA file") {
                roots.add(cert.expect("client CA PEM")).expect("client CA");
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let chain = CertificateDer::pem_file_iter(&opts.cert)
        .expect("server certificate file")
        .collect::<Result<Vec<_>, _>>()
        .expect("server certificate PEM");
    let key = PrivateKeyDer::from_pem_file(&opts.key).expect("server key");
    builder
        .with_single_cert(chain, key)
        .expect("server certificate and key")
}

/// One TLS connection: decrypted bytes from `client` go to a new
/// connection to `backend`, and the backend's bytes go back encrypted.
/// The rustls connection is shared by the two directions under a lock,
/// held only while it is fed or drained, never across a blocking read.
fn relay(shared: &Arc<Shared>, config: Arc<ServerConfig>, client: TcpStream, backend: &str) {
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let Ok(back) = TcpStream::connect(backend) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let conn = Arc::new(Mutex::new(conn));
    let (Ok(client_w), Ok(back_r)) = (client.try_clone(), back.try_clone()) else {
        return;
    };
    let up = {
        let (shared, conn, client) = (shared.clone(), conn.clone(), client.try_clone());
        let mut back_w = back;
        thread::spawn(move || {
            if let Ok(client) = client {
                client_to_backend(&shared, &conn, client, &mut back_w);
            }
            let _ = back_w.shutdown(Shutdown::Write);
        })
    };
    backend_to_client(&conn, back_r, client_w);
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.join();
}

fn lock(conn: &Mutex<ServerConnection>) -> MutexGuard<'_, ServerConnection> {
    conn.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends whatever TLS records rustls has queued.
fn flush_tls(conn: &mut ServerConnection, out: &mut TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    Ok(())
}

fn client_to_backend(
    shared: &Shared,
    conn: &Mutex<ServerConnection>,
    mut client: TcpStream,
    back: &mut TcpStream,
) {
    let Ok(mut client_w) = client.try_clone() else {
        return;
    };
    let mut counted = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut plain = Vec::new();
        {
            let mut c = lock(conn);
            let mut input = &buf[..n];
            while !input.is_empty() {
                if c.read_tls(&mut input).is_err() {
                    return;
                }
                if let Err(e) = c.process_new_packets() {
                    shared.seen().failures.push(e.to_string());
                    // The alert that says why, then close.
                    let _ = flush_tls(&mut c, &mut client_w);
                    let _ = client_w.shutdown(Shutdown::Both);
                    return;
                }
            }
            if !counted && !c.is_handshaking() {
                counted = true;
                let version = c
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                shared.seen().handshakes.push(version);
            }
            loop {
                let mut chunk = [0u8; 4096];
                match c.reader().read(&mut chunk) {
                    Ok(0) => break,
                    Ok(k) => plain.extend_from_slice(&chunk[..k]),
                    Err(_) => break,
                }
            }
            if flush_tls(&mut c, &mut client_w).is_err() {
                return;
            }
        }
        if !plain.is_empty() && back.write_all(&plain).is_err() {
            return;
        }
    }
}

fn backend_to_client(conn: &Mutex<ServerConnection>, mut back: TcpStream, mut client: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match back.read(&mut buf) {
            Ok(0) | Err(_) => {
                let mut c = lock(conn);
                c.send_close_notify();
                let _ = flush_tls(&mut c, &mut client);
                return;
            }
            Ok(n) => n,
        };
        let mut c = lock(conn);
        if c.writer().write_all(&buf[..n]).is_err() || flush_tls(&mut c, &mut client).is_err() {
            return;
        }
    }
}

/// Waits until `cond` holds, polling every 10 ms, at most `timeout`.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}
