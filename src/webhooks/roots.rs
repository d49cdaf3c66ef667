//! The extra trust anchors for endpoints' certificates: hospitals run their receivers with
//! certificates from their own internal CA, which no public root store holds. The deployment
//! names them in `webhooks.ca_file` (one PEM file, one or more certificates); they are read
//! and checked once, when delivery starts, and trusted in addition to the public roots
//! (webpki-roots) for every endpoint.
//!
//! Per server, not per institution: which authorities the server trusts is a decision of
//! whoever runs it (with the file system), not of an institution's administrator over the
//! API, and a network has a handful of them. The cost: an authority added for one hospital
//! is trusted for every endpoint, so add only the network's own.
//!
//! A file that cannot be read, is too large, holds no certificate, or holds one that is not a
//! usable X.509 certificate stops the start with an error that names the file: a server that
//! quietly trusted nothing extra would fail every delivery to those hospitals later, one
//! retry at a time.

use std::io::Read;
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The largest CA file read (a bundle of a few hundred certificates).
pub const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaFileError {
    #[error("webhooks.ca_file {path}: cannot be read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("webhooks.ca_file {path}: larger than {MAX_CA_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("webhooks.ca_file {path}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("webhooks.ca_file {path}: certificate {index} is not valid: {reason}")]
    Invalid {
        path: PathBuf,
        /// 1 for the file's first certificate.
        index: usize,
        reason: String,
    },
}

/// The certificates of `path` (empty: none, the public roots alone), each checked as a trust
/// anchor.
pub fn load(path: &Path) -> Result<Vec<reqwest::Certificate>, CaFileError> {
    if path.as_os_str().is_empty() {
        return Ok(Vec::new());
    }
    let read = |source| CaFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .map_err(read)?
        .take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(read)?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(CaFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    parse(&pem).map_err(|e| match e {
        Parsed::None => CaFileError::NoCertificate {
            path: path.to_owned(),
        },
        Parsed::Invalid(index, reason) => CaFileError::Invalid {
            path: path.to_owned(),
            index,
            reason,
        },
    })
}

/// Why a file's text gave no roots.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    None,
    Invalid(usize, String),
}

fn parse(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, Parsed> {
    let mut roots = Vec::new();
    for (i, der) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let index = i + 1;
        let der = der.map_err(|e| Parsed::Invalid(index, e.to_string()))?;
        // What rustls will make of it when it verifies an endpoint: a trust anchor (subject
        // and public key), or an error now rather than at every attempt.
        rustls::RootCertStore::empty()
            .add(der.clone())
            .map_err(|e| Parsed::Invalid(index, e.to_string()))?;
        let cert = reqwest::Certificate::from_der(der.as_ref())
            .map_err(|e| Parsed::Invalid(index, e.to_string()))?;
        roots.push(cert);
    }
    if roots.is_empty() {
        return Err(Parsed::None);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn one_or_more_certificates_are_read() {
        assert_eq!(parse(ca_pem().as_bytes()).unwrap().len(), 1);
        let two = format!("# the network's CAs\n{}\n{}", ca_pem(), ca_pem());
        assert_eq!(parse(two.as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        for text in [
            "",
            "not a certificate",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert_eq!(parse(text.as_bytes()).err(), Some(Parsed::None), "{text}");
        }
    }

    #[test]
    fn a_broken_certificate_is_refused_by_its_place() {
        let broken = format!(
            "{}-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n",
            ca_pem()
        );
        assert!(matches!(
            parse(broken.as_bytes()),
            Err(Parsed::Invalid(2, _))
        ));
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = load(&missing).unwrap_err();
        assert!(matches!(e, CaFileError::Read { .. }));
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here").unwrap();
        let e = load(&empty).unwrap_err();
        assert!(matches!(e, CaFileError::NoCertificate { .. }));
        assert!(e.to_string().contains("empty.pem"), "{e}");
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'a'; MAX_CA_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(load(&big), Err(CaFileError::TooLarge { .. })));
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca_pem()).unwrap();
        assert_eq!(load(&good).unwrap().len(), 1);
        assert!(load(Path::new("")).unwrap().is_empty());
    }
}
