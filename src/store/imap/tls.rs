//! TLS for IMAP connections with rustls (ring provider) and mbsync's certificate rules
//! (spec config-cli-stores §5.2): pinned non-CA certificates from CertificateFile are accepted
//! as they are; otherwise the chain must verify against the CA certificates of CertificateFile
//! (and the system store with SystemCertificates), then the host name must match.

use super::cert;
use crate::config::ImapAccountConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};
use std::sync::{Arc, Mutex};

/// A certificate check failure, kept so the connection error can say exactly why.
#[derive(Debug, Default)]
pub struct FailureSlot(Mutex<Option<String>>);

impl FailureSlot {
    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut f| f.take())
    }
    fn set(&self, text: String) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(text);
        }
    }
}

/// The verifier implementing mbsync's rules.
#[derive(Debug)]
struct MbsyncVerifier {
    pinned: Vec<Vec<u8>>,
    roots: Arc<RootCertStore>,
    host: Option<String>,
    provider: Arc<CryptoProvider>,
    failure: Arc<FailureSlot>,
}

#[derive(Debug)]
struct CheckFailed(String);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailed {}

impl MbsyncVerifier {
    fn fail(&self, text: String) -> TlsError {
        self.failure.set(text.clone());
        TlsError::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(CheckFailed(text)),
        )))
    }
}

impl ServerCertVerifier for MbsyncVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if self.pinned.iter().any(|p| p[..] == end_entity[..]) {
            return Ok(ServerCertVerified::assertion());
        }
        let info = cert::parse(end_entity);
        let subject = info
            .as_ref()
            .map(|i| i.subject.clone())
            .unwrap_or_else(|| "(unreadable certificate)".into());
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)
            .map_err(|e| self.fail(format!("certificate '{subject}' cannot be read: {e}")))?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )
        .map_err(|e| self.fail(format!("certificate '{subject}' is not trusted: {e}")))?;
        let Some(host) = &self.host else {
            return Err(self.fail("Neither host nor matching certificate specified".into()));
        };
        let Some(info) = info else {
            return Err(self.fail(format!("certificate '{subject}' cannot be read")));
        };
        if !cert::host_matches(&info, host) {
            return Err(self.fail(format!(
                "certificate owner does not match hostname {host} (certificate '{subject}')"
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
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
    ) -> Result<HandshakeSignatureValid, TlsError> {
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

/// Accepts any certificate and remembers the chain (for `get-cert`).
#[derive(Debug)]
struct RecordingVerifier {
    provider: Arc<CryptoProvider>,
    chain: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if let Ok(mut chain) = self.chain.lock() {
            chain.clear();
            chain.push(end_entity.to_vec());
            chain.extend(intermediates.iter().map(|c| c.to_vec()));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
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
    ) -> Result<HandshakeSignatureValid, TlsError> {
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

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration for an account, the failure slot of its verifier, and warnings.
pub struct TlsSetup {
    pub config: Arc<ClientConfig>,
    pub failure: Arc<FailureSlot>,
    pub warnings: Vec<String>,
}

/// Builds the TLS client configuration of an account. Errors are complete messages.
pub fn client_config(account: &ImapAccountConfig) -> Result<TlsSetup, String> {
    let provider = provider();
    let mut warnings = Vec::new();
    let mut roots = RootCertStore::empty();
    let mut pinned = Vec::new();
    if let Some(file) = &account.certificate_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                format!(
                    "Error while loading certificate file '{}': {e}",
                    file.display()
                )
            })?;
        for der in certs {
            let is_ca = cert::parse(&der).is_some_and(|i| i.is_ca);
            if is_ca {
                roots.add(der).map_err(|e| {
                    format!(
                        "Error while loading certificate file '{}': {e}",
                        file.display()
                    )
                })?;
            } else {
                pinned.push(der.to_vec());
            }
        }
    }
    if account.system_certificates {
        let result = rustls_native_certs::load_native_certs();
        if let Some(error) = result.errors.first() {
            warnings.push(format!(
                "Warning: Unable to load default certificate files: {error}"
            ));
        }
        let (_added, _ignored) = roots.add_parsable_certificates(result.certs);
    }
    if account.cipher_string.is_some() {
        warnings.push(
            "Warning: CipherString has no effect: rustls chooses its cipher suites itself."
                .to_string(),
        );
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if account.tls_versions.v1_2 {
        versions.push(&rustls::version::TLS12);
    }
    if account.tls_versions.v1_3 {
        versions.push(&rustls::version::TLS13);
    }
    if account.tls_versions.v1_0 || account.tls_versions.v1_1 {
        warnings.push("Warning: TLS 1.0 and 1.1 are not supported and stay disabled.".to_string());
    }
    if versions.is_empty() {
        return Err(
            "Error while setting up TLS: no usable TLS version enabled (TLS 1.2 and 1.3 are supported)"
                .to_string(),
        );
    }
    let failure = Arc::new(FailureSlot::default());
    let verifier = Arc::new(MbsyncVerifier {
        pinned,
        roots: Arc::new(roots),
        host: account.host.clone(),
        provider: provider.clone(),
        failure: failure.clone(),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("Error while setting up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&account.client_certificate, &account.client_key) {
        (Some(cert_file), Some(key_file)) => {
            let chain = CertificateDer::pem_file_iter(cert_file)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!(
                        "Error while loading client certificate '{}': {e}",
                        cert_file.display()
                    )
                })?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                format!(
                    "Error while loading client key '{}': {e}",
                    key_file.display()
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("Error while setting up the client certificate: {e}"))?
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(
                "Error while setting up TLS: ClientCertificate and ClientKey must be given together"
                    .to_string(),
            );
        }
        (None, None) => builder.with_no_client_auth(),
    };
    Ok(TlsSetup {
        config: Arc::new(config),
        failure,
        warnings,
    })
}

/// The certificate chain a recording verifier saw (DER, server certificate first).
pub type RecordedChain = Arc<Mutex<Vec<Vec<u8>>>>;

/// A configuration that accepts any server certificate and records the chain.
pub fn recording_config() -> Result<(Arc<ClientConfig>, RecordedChain), String> {
    let provider = provider();
    let chain = Arc::new(Mutex::new(Vec::new()));
    let verifier = Arc::new(RecordingVerifier {
        provider: provider.clone(),
        chain: chain.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("Error while setting up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((Arc::new(config), chain))
}

/// PEM text of DER certificates.
pub fn to_pem(chain: &[Vec<u8>]) -> String {
    use base64::Engine;
    let mut out = String::new();
    for der in chain {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        for line in text.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}
