//! TLS with libpq's `sslmode` values, through rustls.
//!
//! | sslmode | encrypts | checks the certificate's chain | checks the host name |
//! |---|---|---|---|
//! | `disable` | no | - | - |
//! | `allow` | only if the server insists | with `sslrootcert` | no |
//! | `prefer` (default) | if the server offers it | with `sslrootcert` | no |
//! | `require` | yes | with `sslrootcert` | no |
//! | `verify-ca` | yes | yes (`sslrootcert` required) | no |
//! | `verify-full` | yes | yes (`sslrootcert`, or the system's roots) | yes |
//!
//! The only connectors that accept any certificate are those of
//! `allow`, `prefer` and `require` without `sslrootcert`, as in libpq.

use std::fmt;

use crate::error::{Error, Result};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Never TLS.
    Disable,
    /// Plain first; TLS if the server refuses a plain connection.
    Allow,
    /// TLS if the server offers it.
    Prefer,
    /// TLS, or no connection.
    Require,
    /// TLS with a certificate signed by a trusted CA.
    VerifyCa,
    /// TLS with a certificate signed by a trusted CA, for the host connected to.
    VerifyFull,
}

impl SslMode {
    /// Reads an `sslmode` value.
    ///
    /// # Errors
    /// A message naming the values there are.
    pub(super) fn parse(s: &str) -> std::result::Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            }
        })
    }

    /// What tokio-postgres is told for the first attempt (`allow` tries
    /// without TLS first).
    pub(super) fn wire(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Wire;
        match self {
            SslMode::Disable | SslMode::Allow => Wire::Disable,
            SslMode::Prefer => Wire::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Wire::Require,
        }
    }
}

/// The certificate files a URL names (`sslrootcert`, `sslcert`, `sslkey`).
#[derive(Debug, Clone, Default)]
pub(super) struct TlsFiles {
    /// Trusted CA certificates (PEM), or `system` for the system's roots.
    pub(super) rootcert: Option<String>,
    /// The client's certificate chain (PEM).
    pub(super) cert: Option<String>,
    /// The client's private key (PEM).
    pub(super) key: Option<String>,
}

/// An `sslmode` and the connector that carries it out.
#[derive(Clone)]
pub(super) struct Tls {
    pub(super) mode: SslMode,
    files: TlsFiles,
    /// `None` for `disable`.
    #[cfg(feature = "tls")]
    pub(super) connector: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("sslmode", &self.mode)
            .field("sslrootcert", &self.files.rootcert)
            .field("sslcert", &self.files.cert)
            .field("sslkey", &self.files.key)
            .finish()
    }
}

impl Tls {
    /// The TLS settings of `mode` with `files`; reads the files now, so a
    /// missing or unreadable one fails when the engine is built.
    ///
    /// # Errors
    /// [`Error::Config`] for a file that cannot be read or holds no
    /// certificate or key, `sslcert` without `sslkey` (or the reverse),
    /// `verify-ca` without `sslrootcert`, `sslrootcert=system` with a mode
    /// weaker than `verify-full`, and, without the `tls` feature, any mode
    /// that needs TLS.
    pub(super) fn new(mode: SslMode, files: TlsFiles) -> Result<Tls> {
        if files.cert.is_some() != files.key.is_some() {
            return Err(Error::Config(
                "sslcert and sslkey go together: name both files or neither".into(),
            ));
        }
        if mode == SslMode::VerifyCa && files.rootcert.is_none() {
            return Err(Error::Config(
                "sslmode=verify-ca needs sslrootcert=<file> with the CA certificates to trust".into(),
            ));
        }
        if files.rootcert.as_deref() == Some("system") && mode != SslMode::VerifyFull {
            return Err(Error::Config(
                "sslrootcert=system needs sslmode=verify-full: public CAs sign certificates for \
                 anyone, so only the host name check makes them mean something"
                    .into(),
            ));
        }
        #[cfg(not(feature = "tls"))]
        {
            let needs_tls = matches!(
                mode,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
            );
            if needs_tls || files.rootcert.is_some() || files.cert.is_some() {
                return Err(Error::Config(format!(
                    "sslmode={} and TLS certificates need the \"tls\" feature of sqlaio",
                    mode.name()
                )));
            }
            Ok(Tls { mode, files })
        }
        #[cfg(feature = "tls")]
        {
            let connector = match mode {
                SslMode::Disable => None,
                _ => Some(rustls_tls::connector(mode, &files)?),
            };
            Ok(Tls {
                mode,
                files,
                connector,
            })
        }
    }
}

#[cfg(not(feature = "tls"))]
impl SslMode {
    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Building rustls connectors, and the two verifiers rustls does not have.
#[cfg(feature = "tls")]
mod rustls_tls {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
    use tokio_postgres_rustls::MakeRustlsConnect;

    use super::{SslMode, TlsFiles};
    use crate::error::{Error, Result};

    /// The connector for `mode` (never `disable`).
    pub(super) fn connector(mode: SslMode, files: &TlsFiles) -> Result<MakeRustlsConnect> {
        // ring rather than aws-lc-rs (rustls' default): no CMake or long C
        // build on a fresh machine. rustls 0.23.48 deprecates ring's provider
        // for lacking post-quantum key exchange; classical X25519 and P-256,
        // which PostgreSQL servers offer, are what it negotiates.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match (mode, &files.rootcert) {
            (SslMode::VerifyFull, rootcert) => {
                let roots = match rootcert.as_deref() {
                    None | Some("system") => system_roots()?,
                    Some(file) => roots_from(file)?,
                };
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| Error::Config(format!("TLS certificate verifier: {e}")))?
            }
            // libpq: with a root certificate, `require` (and `prefer`,
            // `allow`) verify the chain as `verify-ca` does.
            (_, Some(file)) => Arc::new(NameUnchecked {
                roots: Some(Arc::new(roots_from(file)?)),
                provider: provider.clone(),
            }),
            (_, None) => Arc::new(NameUnchecked {
                roots: None,
                provider: provider.clone(),
            }),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| Error::Config(format!("sslkey={key:?}: no private key read: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::Config(format!("sslcert and sslkey: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }

    /// The certificates in a PEM file; at least one.
    fn certificates(file: &str, option: &str) -> Result<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| Error::Config(format!("{option}={file:?}: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Config(format!(
                "{option}={file:?} holds no PEM certificate"
            )));
        }
        Ok(certs)
    }

    /// The CA certificates of `sslrootcert`.
    fn roots_from(file: &str) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        for cert in certificates(file, "sslrootcert")? {
            roots
                .add(cert)
                .map_err(|e| Error::Config(format!("sslrootcert={file:?}: {e}")))?;
        }
        Ok(roots)
    }

    /// The system's trusted roots.
    fn system_roots() -> Result<RootCertStore> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map_or_else(|| "none found".to_owned(), ToString::to_string);
            return Err(Error::Config(format!(
                "sslmode=verify-full without sslrootcert uses the system's root certificates, \
                 and none could be loaded ({why}): name a file with sslrootcert=<file>"
            )));
        }
        Ok(roots)
    }

    /// Every mode but `verify-full`: the server's name is not checked.
    ///
    /// - With `roots` (`verify-ca`, and `allow`, `prefer` or `require` with
    ///   `sslrootcert`, as libpq does), the chain must lead to one of them.
    /// - Without (`allow`, `prefer` and `require` without `sslrootcert`), it
    ///   encrypts without checking whose certificate it is, as libpq does.
    ///
    /// The handshake's signatures are always checked, so the peer holds the
    /// key of the certificate it shows (which SCRAM channel binding relies on).
    #[derive(Debug)]
    struct NameUnchecked {
        roots: Option<Arc<RootCertStore>>,
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for NameUnchecked {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            if let Some(roots) = &self.roots {
                let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &cert,
                    roots,
                    intermediates,
                    now,
                    self.provider.signature_verification_algorithms.all,
                )?;
            }
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_that_cannot_work_are_refused_when_parsed() {
        let files = |root: Option<&str>, cert: Option<&str>, key: Option<&str>| TlsFiles {
            rootcert: root.map(Into::into),
            cert: cert.map(Into::into),
            key: key.map(Into::into),
        };
        let error = |mode, files| Tls::new(mode, files).unwrap_err().to_string();
        let e = error(SslMode::VerifyCa, files(None, None, None));
        assert!(e.contains("sslrootcert"), "{e}");
        let e = error(SslMode::Require, files(Some("system"), None, None));
        assert!(e.contains("verify-full"), "{e}");
        let e = error(SslMode::Prefer, files(None, Some("c.pem"), None));
        assert!(e.contains("sslkey"), "{e}");
        assert!(Tls::new(SslMode::Disable, TlsFiles::default()).is_ok());
        assert!(Tls::new(SslMode::Prefer, TlsFiles::default()).is_ok());
        #[cfg(feature = "tls")]
        {
            let e = error(SslMode::VerifyFull, files(Some("/nonexistent/ca.pem"), None, None));
            assert!(e.contains("/nonexistent/ca.pem"), "{e}");
            assert!(Tls::new(SslMode::Require, TlsFiles::default()).is_ok());
        }
        #[cfg(not(feature = "tls"))]
        {
            let e = error(SslMode::Require, TlsFiles::default());
            assert!(e.contains("\"tls\" feature"), "{e}");
        }
    }
}
