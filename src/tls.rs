//! TLS for the HTTPS/WSS listener: configured PEM files, or a self-signed development
//! certificate generated into `server.cert_dir` on first run (see certs/README.md).

use std::path::{Path, PathBuf};

use crate::config::ServerConfig;

const DEV_CERT: &str = "dev-cert.pem";
const DEV_KEY: &str = "dev-key.pem";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read TLS file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the development certificate into {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a development certificate: {0}")]
    Generate(String),
}

/// Where the certificate and key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    Configured,
    /// Generated now, or on an earlier run.
    Development {
        generated_now: bool,
    },
}

/// Returns (certificate PEM, key PEM, source).
pub fn load_or_generate(cfg: &ServerConfig) -> Result<(Vec<u8>, Vec<u8>, CertSource), TlsError> {
    if !cfg.tls_cert.is_empty() {
        let cert = read(Path::new(&cfg.tls_cert))?;
        let key = read(Path::new(&cfg.tls_key))?;
        return Ok((cert, key, CertSource::Configured));
    }
    let cert_path = cfg.cert_dir.join(DEV_CERT);
    let key_path = cfg.cert_dir.join(DEV_KEY);
    if cert_path.exists() && key_path.exists() {
        return Ok((
            read(&cert_path)?,
            read(&key_path)?,
            CertSource::Development {
                generated_now: false,
            },
        ));
    }
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = generated.cert.pem().into_bytes();
    let key = generated.signing_key.serialize_pem().into_bytes();
    std::fs::create_dir_all(&cfg.cert_dir).map_err(|source| TlsError::Write {
        path: cfg.cert_dir.clone(),
        source,
    })?;
    write_private(&key_path, &key)?;
    std::fs::write(&cert_path, &cert).map_err(|source| TlsError::Write {
        path: cert_path.clone(),
        source,
    })?;
    Ok((
        cert,
        key,
        CertSource::Development {
            generated_now: true,
        },
    ))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|source| TlsError::Write {
            path: path.to_owned(),
            source,
        })
}
