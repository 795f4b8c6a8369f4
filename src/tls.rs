//! TLS settings turned into rustls configurations, once, at startup: the client listener's
//! `ServerConfig` (`[server] tls`), the backend's and the sentinels' `ClientConfig`
//! (`[backend] tls`, `sentinel_tls`).
//!
//! Every certificate and key file is read and checked here, so a missing file, a PEM file
//! without a certificate or a key that does not match its certificate stops respgate (and
//! `respgate check-config`) with the config key that names it — never the first client or
//! the first backend connection. The crypto provider is *ring*, passed explicitly rather than
//! installed as the process default, so nothing depends on which provider another crate
//! enabled.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use webpki::EndEntityCert;

use crate::config::{BackendTlsConfig, Config, ConfigError, ServerTlsConfig};

/// Every TLS configuration respgate needs, built from a validated [`Config`].
#[derive(Debug, Clone, Default)]
pub struct TlsSetup {
    /// The client listener accepts TLS only.
    pub server: Option<Arc<ServerConfig>>,
    /// Connections to Redis (the standalone server, the Sentinel-managed master).
    pub backend: Option<BackendTls>,
    /// Connections to the sentinels.
    pub sentinel: Option<BackendTls>,
}

/// How to open TLS connections to one kind of backend server.
#[derive(Debug, Clone)]
pub struct BackendTls {
    pub config: Arc<ClientConfig>,
    /// From `server_name`; None: the host of whatever address is connected to (it changes
    /// with every Sentinel failover, so it is derived per connection).
    pub server_name: Option<ServerName<'static>>,
}

impl BackendTls {
    /// The name to verify the certificate of the server at `address` (host:port) against.
    pub fn server_name_for(&self, address: &str) -> Result<ServerName<'static>, String> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        let host = host_of(address);
        ServerName::try_from(host.to_string()).map_err(|e| {
            format!("{host:?} is not a DNS name or IP address to verify ({e}); set server_name")
        })
    }
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(address: &str) -> &str {
    let host = match address.rsplit_once(':') {
        Some((host, _port)) => host,
        None => address,
    };
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

impl TlsSetup {
    /// Reads every certificate and key the config names. `origin` (the config file) prefixes
    /// the errors, as [`Config::load`]'s do.
    pub fn load(config: &Config, origin: &str) -> Result<TlsSetup, ConfigError> {
        let server = match &config.server.tls {
            Some(t) => Some(server_config(t).map_err(|e| e.at(origin, "server.tls"))?),
            None => None,
        };
        let remote = matches!(
            config.backend.mode,
            crate::config::BackendMode::Standalone | crate::config::BackendMode::Sentinel
        );
        let backend = match &config.backend.tls {
            Some(t) if remote => Some(backend_tls(t).map_err(|e| e.at(origin, "backend.tls"))?),
            _ => None,
        };
        let sentinel = match config.backend.sentinel_tls() {
            Some((t, key)) if config.backend.mode == crate::config::BackendMode::Sentinel => {
                Some(backend_tls(t).map_err(|e| e.at(origin, key))?)
            }
            _ => None,
        };
        Ok(TlsSetup {
            server,
            backend,
            sentinel,
        })
    }
}

/// A problem with one key of a TLS table (the table's own key is added by [`Bad::at`]).
struct Bad {
    key: &'static str,
    message: String,
}

impl Bad {
    fn new(key: &'static str, message: impl Into<String>) -> Bad {
        Bad {
            key,
            message: message.into(),
        }
    }

    fn at(self, origin: &str, table: &str) -> ConfigError {
        ConfigError::Tls {
            path: origin.to_string(),
            key: format!("{table}.{}", self.key),
            message: self.message,
        }
    }
}

/// *ring* builds with nothing but a C compiler; rustls 0.23.48 deprecates its provider
/// because it lacks post-quantum key exchange (aws-lc-rs has it, at the cost of a much
/// larger C build). Switching is this one function plus the Cargo features.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(key: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, Bad> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| Bad::new(key, format!("cannot read {path}: {}", pem_error(e))))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Bad::new(key, format!("{path}: {}", pem_error(e))))?;
    if certs.is_empty() {
        return Err(Bad::new(
            key,
            format!("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(certs)
}

fn read_key(key: &'static str, path: &str) -> Result<PrivateKeyDer<'static>, Bad> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => Bad::new(
            key,
            format!("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"),
        ),
        e => Bad::new(key, format!("cannot read {path}: {}", pem_error(e))),
    })
}

fn pem_error(e: rustls_pki_types::pem::Error) -> String {
    match e {
        // The io::Error alone says "No such file or directory" without the word "io".
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        e => e.to_string(),
    }
}

fn roots(key: &'static str, certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, Bad> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| Bad::new(key, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn server_config(t: &ServerTlsConfig) -> Result<Arc<ServerConfig>, Bad> {
    let provider = provider();
    let chain = read_certs("cert", &t.cert)?;
    let key = read_key("key", &t.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Bad::new("cert", e.to_string()))?;
    let builder = match &t.client_ca {
        Some(path) => {
            let roots = roots("client_ca", read_certs("client_ca", path)?)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Bad::new("client_ca", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| Bad::new("key", format!("unusable with cert {}: {e}", t.cert)))?;
    Ok(Arc::new(config))
}

fn backend_tls(t: &BackendTlsConfig) -> Result<BackendTls, Bad> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Bad::new("ca", e.to_string()))?;
    let builder = if t.insecure_skip_verify {
        tracing::warn!(
            "insecure_skip_verify: the backend's certificate is not verified; anyone in the \
             middle can pose as Redis"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let roots = match &t.ca {
            Some(path) => roots("ca", read_certs("ca", path)?)?,
            None => system_roots()?,
        };
        builder.with_root_certificates(roots)
    };
    let config = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs("cert", cert)?, read_key("key", key)?)
            .map_err(|e| Bad::new("key", format!("unusable with cert {cert}: {e}")))?,
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(Bad::new(
                "key",
                "missing: a client certificate needs its private key",
            ));
        }
        (None, Some(_)) => {
            return Err(Bad::new(
                "cert",
                "missing: a client key needs its certificate",
            ));
        }
    };
    let server_name = match &t.server_name {
        Some(name) => Some(
            ServerName::try_from(name.clone())
                .map_err(|e| Bad::new("server_name", format!("{name:?}: {e}")))?,
        ),
        None => None,
    };
    Ok(BackendTls {
        config: Arc::new(config),
        server_name,
    })
}

/// The operating system's trust store, for `tls` without `ca` (managed Redis services with
/// publicly trusted certificates).
fn system_roots() -> Result<RootCertStore, Bad> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(Bad::new(
            "ca",
            format!(
                "not set, and no system CA certificates were found{why}; set ca to the PEM file \
                 of the CA that signed the backend's certificate"
            ),
        ));
    }
    Ok(roots)
}

/// `insecure_skip_verify`: accepts any certificate. The handshake signatures are still
/// checked (so the connection is encrypted to whoever holds the presented key), but nothing
/// ties that key to the backend.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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

/// Who a client certificate names: what a later step maps to a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's commonName (CN), if it has a textual one.
    pub common_name: Option<String>,
    /// The subjectAltName DNS names.
    pub dns_names: Vec<String>,
}

/// The identity in a verified client certificate chain (leaf first); None when the leaf
/// cannot be parsed (it was verified, so that does not happen with a `client_ca`).
pub fn peer_identity(certs: &[CertificateDer<'_>]) -> Option<PeerIdentity> {
    let leaf = EndEntityCert::try_from(certs.first()?).ok()?;
    Some(PeerIdentity {
        common_name: common_name(leaf.subject()),
        dns_names: leaf.valid_dns_names().map(str::to_string).collect(),
    })
}

/// The first commonName in a DER Name (the contents of its SEQUENCE: a sequence of SETs
/// of SEQUENCE { type OID, value }). webpki verifies but does not expose subject fields.
fn common_name(mut name: &[u8]) -> Option<String> {
    const CN_OID: &[u8] = &[0x55, 0x04, 0x03];
    while !name.is_empty() {
        let (tag, mut set, rest) = der_next(name)?;
        name = rest;
        if tag != 0x31 {
            return None;
        }
        while !set.is_empty() {
            let (tag, attr, rest) = der_next(set)?;
            set = rest;
            if tag != 0x30 {
                return None;
            }
            let (oid_tag, oid, value) = der_next(attr)?;
            if oid_tag != 0x06 || oid != CN_OID {
                continue;
            }
            let (value_tag, value, _) = der_next(value)?;
            // UTF8String, PrintableString, TeletexString, IA5String; others (BMPString,
            // UniversalString) are not single-byte text.
            if matches!(value_tag, 0x0c | 0x13 | 0x14 | 0x16) {
                return std::str::from_utf8(value).ok().map(str::to_string);
            }
            return None;
        }
    }
    None
}

/// One DER element: (tag, contents, what follows). Short and long length forms up to four
/// length bytes; None on anything truncated.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_is_found_among_other_attributes() {
        // SET { SEQ { OID 2.5.4.6 (C), PrintableString "NZ" } },
        // SET { SEQ { OID 2.5.4.3 (CN), UTF8String "app-1" } }
        let name = [
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'N', b'Z', 0x31,
            0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05, b'a', b'p', b'p', b'-',
            b'1',
        ];
        assert_eq!(common_name(&name).as_deref(), Some("app-1"));
        assert_eq!(common_name(&name[..13]), None);
        // Truncated in the middle: no panic, no name.
        for cut in 0..name.len() {
            let _ = common_name(&name[..cut]);
        }
    }

    #[test]
    fn peer_identity_reads_cn_and_dns_names_of_a_real_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["app-1.clients.example".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "respgate tests");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "app-1");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            peer_identity(&[cert.der().clone()]),
            Some(PeerIdentity {
                common_name: Some("app-1".into()),
                dns_names: vec!["app-1.clients.example".into()],
            })
        );
        assert_eq!(
            peer_identity(&[CertificateDer::from(vec![0x30, 0x00])]),
            None
        );
        assert_eq!(peer_identity(&[]), None);
    }

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("127.0.0.1:6379"), "127.0.0.1");
        assert_eq!(host_of("redis.example:6380"), "redis.example");
        assert_eq!(host_of("[::1]:6379"), "::1");
        assert_eq!(host_of("noport"), "noport");
    }

    #[test]
    fn missing_files_name_their_key() {
        let cfg = Config::parse(
            "[backend]\nmode = \"standalone\"\naddress = \"127.0.0.1:1\"\n\
             tls = { ca = \"/nonexistent/ca.pem\" }\n",
            "t.toml",
        )
        .unwrap();
        let err = TlsSetup::load(&cfg, "t.toml").unwrap_err().to_string();
        assert!(err.starts_with("t.toml: backend.tls.ca: "), "{err}");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");

        let cfg = Config::parse(
            "[server]\ntls = { cert = \"/nonexistent/s.pem\", key = \"/nonexistent/s.key\" }\n",
            "t.toml",
        )
        .unwrap();
        let err = TlsSetup::load(&cfg, "t.toml").unwrap_err().to_string();
        assert!(err.starts_with("t.toml: server.tls.cert: "), "{err}");
    }

    #[test]
    fn a_client_cert_needs_its_key_and_sentinel_tls_true_needs_tls() {
        let cfg = Config::parse(
            "[backend]\nmode = \"standalone\"\naddress = \"127.0.0.1:1\"\n\
             tls = { insecure_skip_verify = true, cert = \"c.pem\" }\n",
            "t",
        )
        .unwrap();
        let err = TlsSetup::load(&cfg, "t").unwrap_err().to_string();
        assert!(err.contains("backend.tls.key: missing"), "{err}");

        let err = Config::parse(
            "[backend]\nmode = \"sentinel\"\nsentinels = [\"127.0.0.1:1\"]\n\
             master_name = \"m\"\nsentinel_tls = true\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("backend.sentinel_tls"), "{err}");
    }

    #[test]
    fn sentinels_follow_tls_unless_told_otherwise() {
        let base = "[backend]\nmode = \"sentinel\"\nsentinels = [\"127.0.0.1:1\"]\n\
                    master_name = \"m\"\ntls = { insecure_skip_verify = true }\n";
        let cfg = Config::parse(base, "t").unwrap();
        let setup = TlsSetup::load(&cfg, "t").unwrap();
        assert!(setup.backend.is_some() && setup.sentinel.is_some());
        let cfg = Config::parse(&format!("{base}sentinel_tls = false\n"), "t").unwrap();
        let setup = TlsSetup::load(&cfg, "t").unwrap();
        assert!(setup.backend.is_some() && setup.sentinel.is_none());
        let cfg = Config::parse(
            &format!(
                "{base}sentinel_tls = {{ insecure_skip_verify = true, server_name = \"s\" }}\n"
            ),
            "t",
        )
        .unwrap();
        let setup = TlsSetup::load(&cfg, "t").unwrap();
        let sentinel = setup.sentinel.unwrap();
        assert_eq!(
            sentinel.server_name_for("127.0.0.1:5").unwrap().to_str(),
            "s"
        );
        let backend = setup.backend.unwrap();
        assert_eq!(
            backend.server_name_for("127.0.0.1:5").unwrap().to_str(),
            "127.0.0.1"
        );

        // A bad file in sentinel_tls is named as such.
        let cfg = Config::parse(
            &format!("{base}sentinel_tls = {{ ca = \"/nonexistent/sentinel-ca.pem\" }}\n"),
            "t",
        )
        .unwrap();
        let err = TlsSetup::load(&cfg, "t").unwrap_err().to_string();
        assert!(err.starts_with("t: backend.sentinel_tls.ca: "), "{err}");
    }
}
