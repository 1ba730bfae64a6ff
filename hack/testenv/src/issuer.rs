//! A JWT issuer for tests: it serves OpenID Connect discovery and its signing key (a JWKS)
//! over TLS on loopback, and signs tokens (ES256). A real kube-apiserver whose structured
//! authentication trusts it fetches both and accepts its tokens, as it would a real identity
//! provider's. It serves from a thread of its own, so a test that blocks its runtime (running
//! `kubectl`, say) does not stall the API server's requests to it.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rcgen::{KeyPair, SigningKey as _};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::certs::TestCa;

/// A running issuer; it stops when dropped.
#[derive(Debug)]
pub struct Issuer {
    url: String,
    ca: String,
    key: KeyPair,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

const KEY_ID: &str = "kaas-test";

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Issuer {
    /// Starts serving `https://127.0.0.1:PORT` with a certificate of a fresh CA.
    pub async fn start() -> Result<Issuer> {
        crate::install_crypto_provider();
        let ca = TestCa::new()?;
        let (cert, key_pem) = ca.issue("kaas-test-issuer")?;
        let certs =
            CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let url = format!("https://{}", listener.local_addr()?);
        let signing = KeyPair::generate()?;
        let point = signing.public_key_raw().to_vec();
        if point.len() != 65 || point[0] != 4 {
            bail!("the signing key is not an uncompressed P-256 point");
        }
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": KEY_ID,
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]),
        }]});
        let discovery = json!({
            "issuer": url,
            "jwks_uri": format!("{url}/keys"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        crate::on_own_thread("test-issuer", move || async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            let serve = async {
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    let (discovery, jwks) = (discovery.clone(), jwks.clone());
                    tokio::spawn(async move {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = answer(tls, &discovery, &jwks).await;
                        }
                    });
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = stopped => {}
            }
        })?;
        Ok(Issuer {
            url,
            ca: ca.pem(),
            key: signing,
            stop: Some(stop),
        })
    }

    /// The issuer URL (`iss`), `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA certificate (PEM) the issuer's serving certificate is signed by.
    pub fn ca_pem(&self) -> &str {
        &self.ca
    }

    /// A signed token with `claims`, to which `iss`, `iat`, `nbf` and `exp` (in ten minutes)
    /// are added unless given.
    pub fn token(&self, mut claims: Value) -> Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let fields = claims.as_object_mut().context("claims must be an object")?;
        fields.entry("iss").or_insert(json!(self.url));
        fields.entry("iat").or_insert(json!(now));
        fields.entry("nbf").or_insert(json!(now));
        fields.entry("exp").or_insert(json!(now + 600));
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": KEY_ID});
        let signed = format!(
            "{}.{}",
            B64.encode(serde_json::to_vec(&header)?),
            B64.encode(serde_json::to_vec(&claims)?)
        );
        let der = self.key.sign(signed.as_bytes())?;
        Ok(format!("{signed}.{}", B64.encode(fixed_signature(&der)?)))
    }
}

/// One request on `stream`: the discovery document, the keys, or 404; then the connection
/// closes.
async fn answer<S>(mut stream: S, discovery: &Value, jwks: &Value) -> Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or_default();
    let (status, body) = match path {
        "/.well-known/openid-configuration" => ("200 OK", discovery.to_string()),
        "/keys" => ("200 OK", jwks.to_string()),
        _ => ("404 Not Found", "{}".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// An ECDSA signature in ASN.1 DER (`SEQUENCE { INTEGER r, INTEGER s }`) as JWS wants it:
/// `r` and `s` as 32 bytes each.
fn fixed_signature(der: &[u8]) -> Result<Vec<u8>> {
    fn integer(input: &[u8]) -> Result<(&[u8], &[u8])> {
        match input {
            [0x02, len, rest @ ..] if rest.len() >= *len as usize => {
                let (value, rest) = rest.split_at(*len as usize);
                Ok((value, rest))
            }
            _ => bail!("not a DER INTEGER"),
        }
    }
    let body = match der {
        [0x30, len, rest @ ..] if rest.len() == *len as usize => rest,
        _ => bail!("not a DER SEQUENCE"),
    };
    let (r, rest) = integer(body)?;
    let (s, _) = integer(rest)?;
    let mut out = Vec::with_capacity(64);
    for n in [r, s] {
        let n = &n[n.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0u8, 32 - n.len()));
        out.extend_from_slice(n);
    }
    Ok(out)
}
