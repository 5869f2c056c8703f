//! TLS pieces shared by `wss://` and `grpcs://` (rustls with the `ring`
//! provider): client configurations (system roots, a CA file, or no
//! verification), and PEM certificate and key loading and writing.

use crate::error::{Error, Result};
use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The crypto provider every TLS connection of the library uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration: system roots, or the PEM bundle `ca`, or no
/// verification at all (`insecure`). `name` prefixes error messages;
/// `option` is how the URL spells the CA option (`#ca` or `?ca`).
pub(crate) fn client_config(
    ca: Option<&Path>,
    insecure: bool,
    name: &str,
    option: &str,
) -> Result<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?;
    if insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth());
    }
    let roots = match ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(path, &format!("{name}: ca"))? {
                roots
                    .add(c)
                    .map_err(|e| Error::invalid(format!("{name}: ca {}: {e}", path.display())))?;
            }
            Arc::new(roots)
        }
        None => system_roots(name, option)?,
    };
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The client configuration of a Jumpstarter client configuration's `tls`
/// (js/common/grpc.py `ssl_channel_credentials`): no verification when
/// `insecure`, else the PEM certificates `ca_pem` when given, else the
/// system roots. `name` prefixes error messages.
pub(crate) fn client_config_pem(
    ca_pem: Option<&[u8]>,
    insecure: bool,
    name: &str,
) -> Result<ClientConfig> {
    let (Some(pem), false) = (ca_pem, insecure) else {
        return client_config(None, insecure, name, "tls.ca");
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid(format!("{name}: tls.ca: {e}")))?;
    if certs.is_empty() {
        return Err(Error::invalid(format!(
            "{name}: tls.ca holds no PEM certificate"
        )));
    }
    let mut roots = RootCertStore::empty();
    for c in &certs {
        roots
            .add(c.clone())
            .map_err(|e| Error::invalid(format!("{name}: tls.ca: {e}")))?;
    }
    let provider = provider();
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| Error::invalid(format!("{name}: tls.ca: {e}")))?;
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            webpki,
            pins: certs,
            provider,
        }))
        .with_no_client_auth())
}

/// A lab's `tls.ca`: chains to its certificates as usual, and also a server
/// that presents one of them itself (a self-signed certificate, often a CA
/// one, which webpki refuses as an end entity while upstream's OpenSSL
/// trusts it as found in its store), for the name the client dialled.
#[derive(Debug)]
struct Pinned {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pins: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let r = self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        if r.is_err() && self.pins.iter().any(|p| p.as_ref() == end_entity.as_ref()) {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        r
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

/// The system's root certificates, read once: reading and parsing the
/// system store is not work for every connect. A store with no usable
/// certificate is an error (and not remembered, so a store installed later
/// is found).
fn system_roots(name: &str, option: &str) -> Result<Arc<RootCertStore>> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    if let Some(roots) = ROOTS.get() {
        return Ok(roots.clone());
    }
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        log::debug!("{name}: loading system roots: {e}");
    }
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(Error::Io(format!(
            "{name}: no system root certificates found (give {option}=FILE)"
        )));
    }
    Ok(ROOTS.get_or_init(|| Arc::new(roots)).clone())
}

/// The certificates of the PEM file `path` (at least one), or
/// [`Error::InvalidArgument`] saying `what` could not be read.
pub(crate) fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::invalid(format!("{what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::invalid(format!(
            "{what} {}: no certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// The first private key of the PEM file `path` (PKCS#8, PKCS#1 or SEC1), or
/// [`Error::InvalidArgument`] saying `what` could not be read.
pub(crate) fn load_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| Error::invalid(format!("{what} {}: {e}", path.display())))
}

/// The certificates as PEM text (`-----BEGIN CERTIFICATE-----` blocks).
pub(crate) fn certs_pem(certs: &[CertificateDer<'_>]) -> String {
    let mut out = String::new();
    for c in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// `insecure=1`: accepts any certificate for any name (the handshake
/// signatures are still checked, so the peer holds the key of what it shows).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_pem_round_trips() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = cert.cert.der().clone();
        let pem = certs_pem(&[der.clone(), der.clone()]);
        let back: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(back, vec![der.clone(), der]);
        assert_eq!(
            pem.lines().filter(|l| l.starts_with("-----BEGIN")).count(),
            2
        );
        assert!(pem.lines().all(|l| l.len() <= 64));
    }

    #[test]
    fn unreadable_files_are_invalid_arguments() {
        let e = load_certs(Path::new("/nonexistent/ca.pem"), "x: ca").unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument(m) if m.starts_with("x: ca /nonexistent/ca.pem: ")),
            "{e:?}"
        );
        let e = load_key(Path::new("/nonexistent/k.pem"), "key_file").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        let e =
            client_config(Some(Path::new("/nonexistent/ca.pem")), false, "n", "?ca").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }
}
