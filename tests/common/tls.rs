//! Certificates made at test time with rcgen (nothing committed, no openssl): a CA, a server
//! certificate for 127.0.0.1 and localhost, a client certificate, and a second CA that
//! signed none of them. Written as PEM files to a directory of the test's own (redis-server
//! and respgate read files), removed on drop.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Paths of the PEM files.
pub struct Pki {
    dir: PathBuf,
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
    /// A CA that signed nothing here: trusting only it must fail verification.
    pub other_ca: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("signing a leaf");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn generate() -> Pki {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "respgate-pki-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("creating the PKI directory");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("writing a PEM file");
            path.to_string_lossy().into_owned()
        };
        let root = ca("respgate test CA");
        let other = ca("some other CA");
        let (server_cert, server_key) = leaf(
            &root,
            "redis test server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            &root,
            "app-1",
            &["app-1.clients.example"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Pki {
            ca: write("ca.pem", &root.pem()),
            other_ca: write("other-ca.pem", &other.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            dir,
        }
    }

    /// A rustls client config trusting our CA, with the client certificate if asked.
    #[allow(deprecated)] // ring's provider, as respgate uses (see src/tls.rs)
    pub fn client_config(&self, with_client_cert: bool) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).expect("reading the CA") {
            roots.add(cert.expect("CA PEM")).expect("adding the CA");
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
        let config = if with_client_cert {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(&self.client_cert)
                    .expect("reading the client cert")
                    .map(|c| c.expect("client cert PEM"))
                    .collect();
            let key = PrivateKeyDer::from_pem_file(&self.client_key).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert and key")
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(config)
    }
}

impl Pki {
    /// A redis-server with TLS only, with these certificates; `mutual`: it requires client
    /// certificates.
    pub fn redis_server(&self, mutual: bool) -> super::redis_server::RedisServer {
        let auth = if mutual { "yes" } else { "no" };
        super::redis_server::RedisServer::start_tls(
            &self.server_cert,
            &self.server_key,
            &self.ca,
            self.client_config(mutual),
            &["--tls-auth-clients", auth],
        )
    }

    /// respgate's `[backend]` line for mutual TLS: trust our CA, present the client
    /// certificate.
    pub fn backend_tls_mutual(&self) -> String {
        format!(
            "tls = {{ ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
            self.ca, self.client_cert, self.client_key
        )
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
