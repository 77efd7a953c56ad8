//! The CA certificates of `ca_bundle`, checked at Init as the TLS client will use them.
//!
//! The SDK's client takes extra certificates as PEM and parses them when it builds a
//! connector, panicking on one it cannot parse; here every certificate is checked first, so a
//! bad file fails Init with the key named, and what the client gets is the checked ones.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// Why a `ca_bundle` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    Unreadable(String),
    NoCertificate,
    /// The n-th certificate (from 1) is not valid PEM, or not a certificate a root store takes.
    Bad {
        index: usize,
        why: String,
    },
}

impl std::fmt::Display for BundleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleError::Unreadable(why) => write!(f, "{why}"),
            BundleError::NoCertificate => f.write_str("no certificate in it"),
            BundleError::Bad { index, why } => write!(f, "certificate {index}: {why}"),
        }
    }
}

/// The certificates of a PEM bundle, every one checked as the TLS client will use it, so that a
/// bad file fails Init with the key named (the SDK's client panics on it when it builds the first
/// connector, at Init, which Fluent Bit saw only as an internal error).
pub fn read_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, BundleError> {
    let mut certs = Vec::new();
    for (n, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|e| BundleError::Bad { index: n + 1, why: e.to_string() })?;
        if let Err(e) = RootCertStore::empty().add(cert.clone()) {
            return Err(BundleError::Bad { index: n + 1, why: e.to_string() });
        }
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(BundleError::NoCertificate);
    }
    Ok(certs)
}

/// `certs` as one PEM text: the only form the SDK's trust store takes.
pub fn pem_of(certs: &[CertificateDer<'static>]) -> Vec<u8> {
    let mut pem = Vec::with_capacity(certs.iter().map(|c| c.len() * 4 / 3 + 80).sum());
    for cert in certs {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let text = aws_smithy_types::base64::encode(cert.as_ref());
        for line in text.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

#[cfg(test)]
mod tests {
    use super::*;
    use cwrs_aws_standins::strict::new_ca_pem;

    #[test]
    fn a_bundle_reads_back_the_same_certificates_through_pem() {
        let pem = format!("{}{}", new_ca_pem(), new_ca_pem());
        let certs = read_bundle(pem.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(read_bundle(&pem_of(&certs)).unwrap(), certs);
    }

    #[test]
    fn a_bad_bundle_is_refused_with_the_certificate_named() {
        assert_eq!(read_bundle(b"not a certificate"), Err(BundleError::NoCertificate));
        let good = new_ca_pem();
        // valid PEM framing around base64 that is not a certificate
        let lines: Vec<&str> = good.lines().collect();
        let cut = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[lines.len() - 1]);
        let err = read_bundle(format!("{good}{cut}").as_bytes()).unwrap_err();
        assert!(matches!(err, BundleError::Bad { index: 2, .. }), "{err:?}");
        // a body that is not base64 at all
        let garbage = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let err = read_bundle(format!("{good}{garbage}").as_bytes()).unwrap_err();
        assert!(matches!(err, BundleError::Bad { index: 2, .. }), "{err:?}");
    }
}
