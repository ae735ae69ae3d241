//! TLS for the connection to the Consul agent (SPEC §6), the client side
//! only: what the settings are, reading the CA, certificate and key files
//! they name, the two ways of treating the agent's certificate (verified
//! against roots read from files, or encrypted but not verified as 3.x did
//! without a CA), the handshake, and putting its failures in plain words.
//!
//! rustls with the ring provider, TLS 1.2 and 1.3, and no built-in root
//! list: an agent's certificate is usually signed by an internal CA, and a
//! scratch image has no roots to trust anyway (the issue's measurements:
//! webpki-roots would add 68 KiB for nothing). Which setting comes from the
//! config and which from the environment is the caller's business
//! (`discovery::consul`); here every setting carries the name of the key or
//! variable it came from, so that errors name the field.
//!
//! Built only with the cargo feature `tls` (on by default). Without it,
//! [`Connector`] cannot be made and [`AVAILABLE`] is false, so a caller
//! refuses `https` before it gets here.

use std::fmt;

/// Whether this build can speak TLS.
pub const AVAILABLE: bool = cfg!(feature = "tls");

/// A setting's value and the config key or environment variable it came
/// from (`consul.tls.cafile`, `CONSUL_CACERT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub value: String,
    pub from: &'static str,
}

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.value, self.from)
    }
}

/// How the agent's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Not at all: the connection is encrypted, but anyone in the middle
    /// could be the agent (3.x's default without a CA).
    Off,
    /// Against the CA certificates in `ca_file` and `ca_path`.
    Ca,
    /// Against the system's roots (`SSL_CERT_FILE`, `SSL_CERT_DIR`, the
    /// usual bundles); `because` names the setting that asked for it.
    System { because: &'static str },
}

/// Where the system's roots are, as Go looks for them: `SSL_CERT_FILE`
/// replaces the list of bundle files, `SSL_CERT_DIR` (colon-separated)
/// the list of directories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemRoots {
    pub file: Option<String>,
    pub dirs: Option<String>,
}

/// Everything needed to open TLS connections to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The name the agent's certificate must be for, also sent as SNI
    /// (not for an IP address): `tls.servername`, else the address's host.
    pub server_name: Named,
    pub ca_file: Option<Named>,
    pub ca_path: Option<Named>,
    pub client_cert: Option<Named>,
    pub client_key: Option<Named>,
    pub verify: Verify,
    pub system_roots: SystemRoots,
}

#[cfg(feature = "tls")]
pub use imp::{Connector, Stream};

#[cfg(not(feature = "tls"))]
pub use stub::{Connector, Stream};

#[cfg(feature = "tls")]
mod imp {
    use std::io::{self, Read, Write};
    use std::net::TcpStream;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
    use rustls::crypto::{ring, CryptoProvider};
    use rustls::pki_types::pem::{PemObject, SectionKind};
    use rustls::pki_types::{
        CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
        ServerName, UnixTime,
    };
    use rustls::sign::CertifiedKey;
    use rustls::{
        AlertDescription, CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct,
        Error, InconsistentKeys, RootCertStore, SignatureScheme, StreamOwned,
    };

    use super::*;

    /// The bundle files Go tries, first readable one wins (crypto/x509,
    /// root_linux.go).
    const SYSTEM_FILES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/pki/tls/cacert.pem",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    /// The directories Go reads every file of.
    const SYSTEM_DIRS: &[&str] = &["/etc/ssl/certs", "/etc/pki/tls/certs"];

    /// Largest file read as a CA bundle, certificate or key: a system bundle
    /// is ~200 KiB; anything much larger is not what the setting meant.
    const MAX_FILE: u64 = 8 * 1024 * 1024;
    /// Most files read from one system roots directory.
    const MAX_DIR_FILES: usize = 10_000;
    /// Most entries looked at under one CA directory (subdirectories too).
    const MAX_DIR_ENTRIES: usize = 10_000;
    /// How deep a CA directory is walked.
    const MAX_DIR_DEPTH: usize = 8;

    /// What the agent must be told when it wants a client certificate.
    const WANTS_CLIENT_CERT: &str = "the agent requires a client certificate (set tls.clientcert \
         and tls.clientkey, or CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY)";

    /// A date for people: `2024-03-01 12:00:00 UTC`.
    pub(super) fn date(unix_secs: u64) -> String {
        let (y, m, d) = crate::log::civil_from_days(unix_secs / 86_400);
        let s = unix_secs % 86_400;
        format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    }

    /// The names a certificate was for, as rustls reports them
    /// (`DnsName("consul.example")`, `IpAddress(127.0.0.1)`), in plain text.
    pub(super) fn plain_name(presented: &str) -> &str {
        if let Some(rest) = presented.strip_prefix("DnsName(\"") {
            return rest.strip_suffix("\")").unwrap_or(rest);
        }
        if let Some(rest) = presented.strip_prefix("IpAddress(") {
            return rest.strip_suffix(')').unwrap_or(rest);
        }
        presented
    }

    /// Reads a whole file of at most `MAX_FILE` bytes. Errors name the setting.
    fn read_file(path: &std::path::Path, from: &str) -> Result<Vec<u8>, String> {
        use std::io::Read;
        let file = std::fs::File::open(path)
            .map_err(|e| format!("{from}: cannot read {}: {}", path.display(), os_words(&e)))?;
        let mut data = Vec::new();
        file.take(MAX_FILE + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("{from}: cannot read {}: {}", path.display(), os_words(&e)))?;
        if data.len() as u64 > MAX_FILE {
            return Err(format!(
                "{from}: {} is larger than {} MiB; it cannot be a PEM file",
                path.display(),
                MAX_FILE / 1024 / 1024
            ));
        }
        Ok(data)
    }

    /// An OS error without std's " (os error N)".
    fn os_words(e: &std::io::Error) -> String {
        let text = e.to_string();
        match text.rfind(" (os error ") {
            Some(i) if text.ends_with(')') => text[..i].to_owned(),
            _ => text,
        }
    }

    /// Every regular file under `dir` (symlinks followed, as Go's walk of a
    /// CA path reads them), sorted, at most `MAX_DIR_FILES`.
    fn files_under(dir: &std::path::Path, from: &str) -> Result<Vec<std::path::PathBuf>, String> {
        let mut out = Vec::new();
        let mut todo = vec![(dir.to_path_buf(), 0)];
        // Entries of any kind looked at: symlinked directories can make a
        // small tree look endless.
        let mut looked = 0;
        while let Some((d, depth)) = todo.pop() {
            let entries = std::fs::read_dir(&d)
                .map_err(|e| format!("{from}: cannot read {}: {}", d.display(), os_words(&e)))?;
            for entry in entries {
                let entry = entry.map_err(|e| {
                    format!("{from}: cannot read {}: {}", d.display(), os_words(&e))
                })?;
                looked += 1;
                if looked > MAX_DIR_ENTRIES {
                    return Err(format!(
                        "{from}: {} holds more than {MAX_DIR_ENTRIES} entries",
                        dir.display()
                    ));
                }
                let path = entry.path();
                let meta = std::fs::metadata(&path).map_err(|e| {
                    format!("{from}: cannot read {}: {}", path.display(), os_words(&e))
                })?;
                if meta.is_dir() {
                    if depth < MAX_DIR_DEPTH {
                        todo.push((path, depth + 1));
                    }
                } else if meta.is_file() {
                    out.push(path);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Opens TLS connections to the agent. Cheap to clone: clones share the
    /// rustls configuration, and so its session cache (a reconnection
    /// resumes the session instead of a full handshake).
    #[derive(Clone)]
    pub struct Connector {
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        /// The agent asked for a client certificate and we had none.
        asked: Arc<AtomicBool>,
        has_cert: bool,
    }

    impl fmt::Debug for Connector {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Connector")
                .field("name", &self.name)
                .field("has_cert", &self.has_cert)
                .finish()
        }
    }

    /// A TLS connection over TCP, past its handshake.
    pub struct Stream(StreamOwned<ClientConnection, TcpStream>);

    impl Stream {
        pub fn tcp(&self) -> &TcpStream {
            &self.0.sock
        }
    }

    impl Read for Stream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Write for Stream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.flush()
        }
    }

    /// Why a connection could not be set up.
    pub enum HandshakeError {
        /// The socket failed (timeout, reset): the usual network trouble.
        Io(io::Error),
        /// TLS itself failed, in plain words.
        Tls(String),
    }

    impl Connector {
        /// Reads every file the settings name and builds the configuration.
        /// Errors name the file and the setting.
        pub fn new(s: &Settings) -> Result<Connector, String> {
            // Deprecated only for lacking post-quantum key exchange, which
            // needs aws-lc-rs: 1.6 MiB more than ring, over SPEC §8's budget.
            #[allow(deprecated)]
            let provider = Arc::new(ring::default_provider());
            let name = ServerName::try_from(s.server_name.value.clone()).map_err(|_| {
                format!(
                    "{}: '{}' is not a valid host name or IP address",
                    s.server_name.from, s.server_name.value
                )
            })?;

            let mut roots = RootCertStore::empty();
            if let Some(f) = &s.ca_file {
                add_ca_file(&mut roots, Path::new(&f.value), f.from)?;
            }
            if let Some(d) = &s.ca_path {
                for file in files_under(Path::new(&d.value), d.from)? {
                    add_ca_file(&mut roots, &file, d.from)?;
                }
            }
            let verifier: Arc<dyn ServerCertVerifier> = match &s.verify {
                Verify::Off => Arc::new(NoVerification(provider.clone())),
                Verify::Ca => webpki(roots, &provider)?,
                Verify::System { because } => {
                    let roots = system_roots(&s.system_roots);
                    if roots.is_empty() {
                        return Err(no_system_roots(because, &s.system_roots));
                    }
                    webpki(roots, &provider)?
                }
            };

            let key = match (&s.client_cert, &s.client_key) {
                (None, None) => None,
                (Some(c), None) => {
                    return Err(format!(
                        "{}: a client certificate needs its key: set tls.clientkey \
                         (or CONSUL_CLIENT_KEY) too",
                        c.from
                    ))
                }
                (None, Some(k)) => {
                    return Err(format!(
                        "{}: a client key needs its certificate: set tls.clientcert \
                         (or CONSUL_CLIENT_CERT) too",
                        k.from
                    ))
                }
                (Some(c), Some(k)) => Some(Arc::new(certified_key(c, k, &provider)?)),
            };
            let has_cert = key.is_some();
            let asked = Arc::new(AtomicBool::new(false));
            let config = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| format!("cannot set up TLS: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_client_cert_resolver(Arc::new(ClientCert {
                    key,
                    asked: asked.clone(),
                }));
            Ok(Connector {
                config: Arc::new(config),
                name,
                asked,
                has_cert,
            })
        }

        /// Runs the handshake on a connected socket (its timeouts bound
        /// each read and write of it).
        pub fn connect(&self, mut tcp: TcpStream) -> Result<Stream, HandshakeError> {
            let mut conn = ClientConnection::new(self.config.clone(), self.name.clone())
                .map_err(|e| HandshakeError::Tls(self.words(&e)))?;
            while conn.is_handshaking() {
                if let Err(e) = conn.complete_io(&mut tcp) {
                    if let Some(words) = self.explain(&e) {
                        return Err(HandshakeError::Tls(words));
                    }
                    // A server that refuses the handshake may hang up (or
                    // reset) instead of sending an alert.
                    if matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                    ) {
                        return Err(HandshakeError::Tls(self.closed_in_handshake()));
                    }
                    return Err(HandshakeError::Io(e));
                }
            }
            Ok(Stream(StreamOwned::new(conn, tcp)))
        }

        /// A TLS failure in plain words, when `e` is one (rustls hands its
        /// errors through `io::Error`).
        pub fn explain(&self, e: &io::Error) -> Option<String> {
            let inner = e.get_ref()?.downcast_ref::<Error>()?;
            Some(self.words(inner))
        }

        fn closed_in_handshake(&self) -> String {
            if self.wanted_cert() {
                WANTS_CLIENT_CERT.to_owned()
            } else {
                "the agent closed the connection during the TLS handshake".to_owned()
            }
        }

        fn wanted_cert(&self) -> bool {
            !self.has_cert && self.asked.load(Ordering::Relaxed)
        }

        fn words(&self, e: &Error) -> String {
            use AlertDescription as A;
            use CertificateError as C;
            match e {
                Error::InvalidCertificate(c) => match c {
                    C::UnknownIssuer => {
                        "the agent's certificate is signed by an unknown authority".into()
                    }
                    C::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
                        let names: Vec<&str> = presented.iter().map(|n| plain_name(n)).collect();
                        format!(
                            "the agent's certificate is for {}, not {}",
                            names.join(", "),
                            self.name.to_str()
                        )
                    }
                    C::NotValidForName | C::NotValidForNameContext { .. } => {
                        format!("the agent's certificate is not for {}", self.name.to_str())
                    }
                    C::ExpiredContext { not_after, .. } => format!(
                        "the agent's certificate expired on {}",
                        date(not_after.as_secs())
                    ),
                    C::Expired => "the agent's certificate has expired".into(),
                    C::NotValidYetContext { not_before, .. } => format!(
                        "the agent's certificate is not valid before {}",
                        date(not_before.as_secs())
                    ),
                    C::NotValidYet => "the agent's certificate is not valid yet".into(),
                    C::BadSignature => "the agent's certificate has a bad signature".into(),
                    C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                        "the agent's certificate is not one for a TLS server".into()
                    }
                    C::Revoked => "the agent's certificate has been revoked".into(),
                    other => format!("the agent's certificate is not acceptable: {other}"),
                },
                Error::AlertReceived(A::CertificateRequired) => WANTS_CLIENT_CERT.into(),
                Error::AlertReceived(_) if self.wanted_cert() => WANTS_CLIENT_CERT.into(),
                Error::AlertReceived(
                    a @ (A::BadCertificate
                    | A::UnsupportedCertificate
                    | A::CertificateRevoked
                    | A::CertificateExpired
                    | A::CertificateUnknown
                    | A::UnknownCA
                    | A::AccessDenied),
                ) if self.has_cert => {
                    format!("the agent refused our client certificate (TLS alert {a:?})")
                }
                Error::AlertReceived(A::ProtocolVersion) | Error::PeerIncompatible(_) => {
                    "the agent and containerpilot have no TLS version (1.2 or 1.3) or \
                     cipher suite in common"
                        .into()
                }
                Error::AlertReceived(a) => {
                    format!("the agent ended the TLS handshake (TLS alert {a:?})")
                }
                Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
                    "the agent did not answer in TLS (is this its plain HTTP port?)".into()
                }
                other => format!("TLS failed: {other}"),
            }
        }
    }

    /// The client certificate, and a note of whether the agent asked for
    /// one, to say so when a handshake fails without one.
    #[derive(Debug)]
    struct ClientCert {
        key: Option<Arc<CertifiedKey>>,
        asked: Arc<AtomicBool>,
    }

    impl ResolvesClientCert for ClientCert {
        fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
            if self.key.is_none() {
                self.asked.store(true, Ordering::Relaxed);
            }
            self.key.clone()
        }

        fn has_certs(&self) -> bool {
            self.key.is_some()
        }
    }

    /// Encrypted but not verified: any certificate is taken, but the
    /// handshake's signatures are still checked (the connection is then at
    /// least bound to the key of the certificate presented).
    #[derive(Debug)]
    struct NoVerification(Arc<CryptoProvider>);

    impl ServerCertVerifier for NoVerification {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    fn webpki(
        roots: RootCertStore,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Arc<dyn ServerCertVerifier>, String> {
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("cannot set up TLS verification: {e}"))?;
        Ok(verifier)
    }

    /// Every PEM section of a file: (kind, DER), unknown kinds skipped.
    fn pem_sections(
        data: &[u8],
        path: &Path,
        from: &str,
    ) -> Result<Vec<(SectionKind, Vec<u8>)>, String> {
        <(SectionKind, Vec<u8>)>::pem_slice_iter(data)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{from}: {} is not a valid PEM file: {e}", path.display()))
    }

    fn certificates(
        data: &[u8],
        path: &Path,
        from: &str,
    ) -> Result<Vec<CertificateDer<'static>>, String> {
        let certs: Vec<CertificateDer<'static>> = pem_sections(data, path, from)?
            .into_iter()
            .filter(|(kind, _)| *kind == SectionKind::Certificate)
            .map(|(_, der)| CertificateDer::from(der))
            .collect();
        if certs.is_empty() {
            return Err(format!(
                "{from}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ));
        }
        Ok(certs)
    }

    fn add_ca_file(roots: &mut RootCertStore, path: &Path, from: &str) -> Result<(), String> {
        let data = read_file(path, from)?;
        for (i, cert) in certificates(&data, path, from)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                format!(
                    "{from}: certificate {} in {} cannot be used as a CA: {e}",
                    i + 1,
                    path.display()
                )
            })?;
        }
        Ok(())
    }

    /// The system's roots where Go finds them; certificates that do not
    /// parse are skipped, as Go does.
    fn system_roots(where_: &SystemRoots) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        let files: Vec<&str> = match &where_.file {
            Some(f) => vec![f.as_str()],
            None => SYSTEM_FILES.to_vec(),
        };
        for file in files {
            if let Ok(data) = read_file(Path::new(file), "") {
                roots.add_parsable_certificates(
                    CertificateDer::pem_slice_iter(&data).filter_map(Result::ok),
                );
                break;
            }
        }
        let dirs: Vec<&str> = match &where_.dirs {
            Some(d) => d.split(':').filter(|d| !d.is_empty()).collect(),
            None => SYSTEM_DIRS.to_vec(),
        };
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten().take(MAX_DIR_FILES) {
                if let Ok(data) = read_file(&entry.path(), "") {
                    roots.add_parsable_certificates(
                        CertificateDer::pem_slice_iter(&data).filter_map(Result::ok),
                    );
                }
            }
        }
        roots
    }

    fn no_system_roots(because: &str, where_: &SystemRoots) -> String {
        let files = match &where_.file {
            Some(f) => format!("{f} (SSL_CERT_FILE)"),
            None => SYSTEM_FILES.join(", "),
        };
        let dirs = match &where_.dirs {
            Some(d) => format!("{d} (SSL_CERT_DIR)"),
            None => SYSTEM_DIRS.join(", "),
        };
        format!(
            "{because} asks to verify the Consul agent's certificate, but no CA is given \
             and this system has no root certificates (looked in {files} and {dirs}): \
             set tls.cafile or tls.capath (CONSUL_CACERT or CONSUL_CAPATH) to the CA that \
             signed the agent's certificate, or SSL_CERT_FILE to a bundle"
        )
    }

    /// The client certificate chain and its key, checked to belong together.
    fn certified_key(
        cert: &Named,
        key: &Named,
        provider: &CryptoProvider,
    ) -> Result<CertifiedKey, String> {
        let cert_path = Path::new(&cert.value);
        let chain = certificates(&read_file(cert_path, cert.from)?, cert_path, cert.from)?;
        let key_path = Path::new(&key.value);
        let data = read_file(key_path, key.from)?;
        let der = pem_sections(&data, key_path, key.from)?
            .into_iter()
            .find_map(|(kind, der)| match kind {
                SectionKind::PrivateKey => Some(PrivateKeyDer::from(PrivatePkcs8KeyDer::from(der))),
                SectionKind::RsaPrivateKey => {
                    Some(PrivateKeyDer::from(PrivatePkcs1KeyDer::from(der)))
                }
                SectionKind::EcPrivateKey => {
                    Some(PrivateKeyDer::from(PrivateSec1KeyDer::from(der)))
                }
                _ => None,
            });
        let Some(der) = der else {
            let why = if data.windows(9).any(|w| w == b"ENCRYPTED") {
                "holds an encrypted key; give it unencrypted"
            } else {
                "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"
            };
            return Err(format!("{}: {} {why}", key.from, key_path.display()));
        };
        CertifiedKey::from_der(chain, der, provider).map_err(|e| match e {
            Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => format!(
                "{}: {} is not the key of the certificate in {} ({})",
                key.from,
                key_path.display(),
                cert_path.display(),
                cert.from
            ),
            Error::InvalidCertificate(_) | Error::InvalidMessage(_) => format!(
                "{}: the first certificate in {} cannot be read: {e}",
                cert.from,
                cert_path.display()
            ),
            e => format!(
                "{}: {} is not a key we can use (RSA, ECDSA P-256/P-384 or Ed25519): {e}",
                key.from,
                key_path.display()
            ),
        })
    }
}

#[cfg(not(feature = "tls"))]
mod stub {
    use super::Settings;
    use std::io;
    use std::net::TcpStream;

    /// Cannot exist in a build without TLS.
    #[derive(Debug, Clone)]
    pub enum Connector {}

    /// Cannot exist in a build without TLS.
    pub enum Stream {}

    pub enum HandshakeError {
        #[allow(dead_code)]
        Io(io::Error),
        #[allow(dead_code)]
        Tls(String),
    }

    impl Connector {
        pub fn new(_: &Settings) -> Result<Connector, String> {
            Err("this build has no TLS support".into())
        }

        pub fn connect(&self, _: TcpStream) -> Result<Stream, HandshakeError> {
            match *self {}
        }

        pub fn explain(&self, _: &io::Error) -> Option<String> {
            match *self {}
        }
    }

    impl Stream {
        pub fn tcp(&self) -> &TcpStream {
            match *self {}
        }
    }

    impl io::Read for Stream {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            match *self {}
        }
    }

    impl io::Write for Stream {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            match *self {}
        }
        fn flush(&mut self) -> io::Result<()> {
            match *self {}
        }
    }
}

#[cfg(feature = "tls")]
pub use imp::HandshakeError;
#[cfg(not(feature = "tls"))]
pub use stub::HandshakeError;

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;

    #[test]
    fn dates_and_names_in_plain_words() {
        use super::imp::{date, plain_name};
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(1_709_208_000 + 3_723), "2024-02-29 13:02:03 UTC");
        assert_eq!(plain_name("DnsName(\"consul.example\")"), "consul.example");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("DirectoryName"), "DirectoryName");
    }

    mod files {
        use super::*;
        use crate::http::server::tests::TempDir;
        use crate::http::tls_double::{Key, Pki, Spec};
        use std::path::Path;

        fn named(value: &Path, from: &'static str) -> Option<Named> {
            Some(Named {
                value: value.display().to_string(),
                from,
            })
        }

        fn settings(verify: Verify) -> Settings {
            Settings {
                server_name: Named {
                    value: "127.0.0.1".into(),
                    from: "consul address",
                },
                ca_file: None,
                ca_path: None,
                client_cert: None,
                client_key: None,
                verify,
                system_roots: SystemRoots::default(),
            }
        }

        fn err(s: &Settings) -> String {
            match Connector::new(s) {
                Ok(_) => panic!("expected an error for {s:?}"),
                Err(e) => e,
            }
        }

        #[test]
        fn client_keys_in_every_form_with_their_certificates() {
            let dir = TempDir::new();
            let pki = Pki::new(&dir.0, "ca");
            for (i, key) in [
                Key::EcdsaPkcs8,
                Key::EcdsaSec1,
                Key::Ed25519,
                Key::RsaPkcs8,
                Key::RsaPkcs1,
            ]
            .into_iter()
            .enumerate()
            {
                let (crt, k) = pki.issue(&format!("client{i}"), &Spec::client(key));
                let pem = std::fs::read_to_string(&k).unwrap();
                let label = match key {
                    Key::EcdsaSec1 => "EC PRIVATE KEY",
                    Key::RsaPkcs1 => "RSA PRIVATE KEY",
                    _ => "-----BEGIN PRIVATE KEY",
                };
                assert!(pem.contains(label), "{key:?}: {pem}");
                let mut s = settings(Verify::Ca);
                s.ca_file = named(&pki.ca_file(), "consul.tls.cafile");
                s.client_cert = named(&crt, "consul.tls.clientcert");
                s.client_key = named(&k, "CONSUL_CLIENT_KEY");
                if let Err(e) = Connector::new(&s) {
                    panic!("{key:?}: {e}");
                }
            }
        }

        #[test]
        fn bad_files_are_errors_naming_the_file_and_the_setting() {
            let dir = TempDir::new();
            let pki = Pki::new(&dir.0, "ca");
            let (crt, key) = pki.issue("client", &Spec::client(Key::EcdsaPkcs8));
            let (_, other_key) = pki.issue("other", &Spec::client(Key::EcdsaPkcs8));
            let missing = dir.0.join("missing.pem");
            let mut s = settings(Verify::Ca);

            s.ca_file = named(&missing, "CONSUL_CACERT");
            assert_eq!(
                err(&s),
                format!(
                    "CONSUL_CACERT: cannot read {}: No such file or directory",
                    missing.display()
                )
            );
            // A key is no CA.
            s.ca_file = named(&key, "consul.tls.cafile");
            assert_eq!(
                err(&s),
                format!(
                    "consul.tls.cafile: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    key.display()
                )
            );
            // Every file of a CA directory must hold a certificate.
            let cas = dir.0.join("cas");
            std::fs::create_dir_all(cas.join("sub")).unwrap();
            std::fs::copy(pki.ca_file(), cas.join("sub/ca.pem")).unwrap();
            std::fs::write(cas.join("README"), "not PEM").unwrap();
            s.ca_file = None;
            s.ca_path = named(&cas, "consul.tls.capath");
            assert_eq!(
                err(&s),
                format!(
                    "consul.tls.capath: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    cas.join("README").display()
                )
            );
            std::fs::remove_file(cas.join("README")).unwrap();
            assert!(Connector::new(&s).is_ok());

            s.client_cert = named(&crt, "consul.tls.clientcert");
            assert_eq!(
                err(&s),
                "consul.tls.clientcert: a client certificate needs its key: set tls.clientkey \
                 (or CONSUL_CLIENT_KEY) too"
            );
            s.client_cert = None;
            s.client_key = named(&key, "CONSUL_CLIENT_KEY");
            assert_eq!(
                err(&s),
                "CONSUL_CLIENT_KEY: a client key needs its certificate: set tls.clientcert \
                 (or CONSUL_CLIENT_CERT) too"
            );
            s.client_cert = named(&crt, "consul.tls.clientcert");
            s.client_key = named(&other_key, "consul.tls.clientkey");
            assert_eq!(
                err(&s),
                format!(
                    "consul.tls.clientkey: {} is not the key of the certificate in {} \
                     (consul.tls.clientcert)",
                    other_key.display(),
                    crt.display()
                )
            );
            s.client_key = named(&crt, "consul.tls.clientkey");
            assert_eq!(
                err(&s),
                format!(
                    "consul.tls.clientkey: {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                    crt.display()
                )
            );
            let encrypted = dir.0.join("encrypted.key");
            std::fs::write(
                &encrypted,
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
            )
            .unwrap();
            s.client_key = named(&encrypted, "consul.tls.clientkey");
            assert!(err(&s).ends_with("holds an encrypted key; give it unencrypted"));
            s.client_key = named(&missing, "CONSUL_CLIENT_KEY");
            assert!(err(&s).starts_with("CONSUL_CLIENT_KEY: cannot read "));
            s.client_key = named(&key, "consul.tls.clientkey");
            assert!(Connector::new(&s).is_ok());

            s.server_name = Named {
                value: "not a name".into(),
                from: "consul.tls.servername",
            };
            assert_eq!(
                err(&s),
                "consul.tls.servername: 'not a name' is not a valid host name or IP address"
            );
        }

        #[test]
        fn verify_without_a_ca_uses_the_system_roots_or_says_there_are_none() {
            let dir = TempDir::new();
            let pki = Pki::new(&dir.0, "ca");
            let mut s = settings(Verify::System {
                because: "consul.tls.verify",
            });
            s.system_roots = SystemRoots {
                file: Some(dir.0.join("none.pem").display().to_string()),
                dirs: Some(dir.0.join("nodir").display().to_string()),
            };
            let e = err(&s);
            assert!(
                e.starts_with(
                    "consul.tls.verify asks to verify the Consul agent's certificate, but no CA \
                     is given and this system has no root certificates (looked in "
                ),
                "{e}"
            );
            assert!(
                e.contains("(SSL_CERT_FILE)") && e.contains("(SSL_CERT_DIR)"),
                "{e}"
            );
            assert!(e.contains("CONSUL_CACERT"), "{e}");
            s.system_roots.file = Some(pki.ca_file().display().to_string());
            assert!(Connector::new(&s).is_ok());
            s.system_roots = SystemRoots {
                file: Some(dir.0.join("none.pem").display().to_string()),
                dirs: Some(format!("/nonexistent:{}", dir.0.display())),
            };
            assert!(Connector::new(&s).is_ok());
        }
    }
}
