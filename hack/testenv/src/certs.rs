//! A test certificate authority: it issues serving certificates for `127.0.0.1` and
//! `localhost`, and its PEM goes into webhook configurations as the `caBundle`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

/// A CA that can issue serving certificates.
#[derive(Debug)]
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA with a fresh key.
    pub fn new() -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "kaas test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(TestCa { issuer })
    }

    /// The CA certificate in PEM form (a `caBundle`).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A fresh serving certificate and key for `127.0.0.1`/`localhost`, as PEM strings.
    pub fn issue(&self, common_name: &str) -> Result<(String, String)> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues a serving certificate into `dir/tls.crt` and `dir/tls.key` (replacing them
    /// atomically, each through a rename) and returns both paths.
    pub fn issue_files(&self, dir: &Path, common_name: &str) -> Result<(PathBuf, PathBuf)> {
        let (cert, key) = self.issue(common_name)?;
        let cert_path = dir.join("tls.crt");
        let key_path = dir.join("tls.key");
        write_atomic(&key_path, key.as_bytes())?;
        write_atomic(&cert_path, cert.as_bytes())?;
        Ok((cert_path, key_path))
    }
}

fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(tmp, path)?;
    Ok(())
}
