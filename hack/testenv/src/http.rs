//! Minimal HTTP(S) GET for tests: readiness probes, metrics scrapes, and a look at the
//! certificate a TLS server presents.

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status code, body, and the server's leaf certificate for HTTPS.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// DER of the certificate the server presented (HTTPS only).
    pub peer_certificate: Option<Vec<u8>>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
}

/// `GET http://addr/path`.
pub async fn get(addr: &str, path: &str) -> Result<Response> {
    get_with(addr, path, &[]).await
}

/// `GET http://addr/path` with the request `headers` (name, value).
pub async fn get_with(addr: &str, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
    let mut stream = TcpStream::connect(addr).await?;
    exchange(&mut stream, addr, path, None, headers).await
}

/// `GET https://addr/path`, trusting only `ca_pem`.
pub async fn get_tls(addr: &str, path: &str, ca_pem: &str) -> Result<Response> {
    request_tls(addr, path, None, ca_pem).await
}

/// `POST https://addr/path` with a JSON `body`, trusting only `ca_pem`.
pub async fn post_tls(addr: &str, path: &str, body: &[u8], ca_pem: &str) -> Result<Response> {
    request_tls(addr, path, Some(body), ca_pem).await
}

/// A TLS connection to `addr` (HTTP/1.1), trusting only `ca_pem`: for tests that write
/// requests by hand (slow, partial, interrupted).
pub async fn connect_tls(
    addr: &str,
    ca_pem: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    crate::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    let name = ServerName::try_from(host.to_string())?;
    let tcp = TcpStream::connect(addr).await?;
    connector.connect(name, tcp).await.context("TLS handshake")
}

async fn request_tls(
    addr: &str,
    path: &str,
    body: Option<&[u8]>,
    ca_pem: &str,
) -> Result<Response> {
    let mut tls = connect_tls(addr, ca_pem).await?;
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    let mut response = exchange(&mut tls, addr, path, body, &[]).await?;
    response.peer_certificate = peer;
    Ok(response)
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Result<Response> {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "{} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
        if body.is_some() { "POST" } else { "GET" },
        body.map_or(0, <[u8]>::len)
    );
    stream.write_all(head.as_bytes()).await?;
    if let Some(body) = body {
        stream.write_all(body).await?;
    }
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify after a complete response.
    let _ = stream.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status in {head:?}"))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    let body = String::from_utf8_lossy(&body);
    let content_type = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-type")
            .then(|| v.trim().to_string())
    });
    Ok(Response {
        status,
        body: body.to_string(),
        peer_certificate: None,
        content_type,
    })
}

/// A chunked body's content (RFC 9112 7.1; extensions and trailers ignored).
fn dechunk(mut chunked: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = chunked
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunk size line without its end")?;
        let line = std::str::from_utf8(&chunked[..line_end])?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("chunk size {line:?}"))?;
        chunked = &chunked[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        anyhow::ensure!(chunked.len() >= size + 2, "a chunk cut short");
        out.extend_from_slice(&chunked[..size]);
        chunked = &chunked[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_chunked_body_reads_whole_and_a_cut_one_fails() {
        let body = b"4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n";
        assert_eq!(super::dechunk(body).unwrap(), b"Wikipedia ");
        assert!(super::dechunk(b"a\r\nshort\r\n").is_err());
    }
}
