//! Public keys that stack releases are signed with: ECDSA P-256 keys in PEM (`-----BEGIN PUBLIC
//! KEY-----`, a SubjectPublicKeyInfo), the form `cosign generate-key-pair` and `openssl` write.
//! Parsed here, without a crypto library, so the webhook server and the operators judge a
//! `ClusterStack`'s key the same way; verifying with it is the stack crate's.

use base64::Engine as _;

/// The most a PEM public key may weigh (a P-256 key is 178 bytes).
pub const MAX_PEM: usize = 4096;

/// The DER of a P-256 SubjectPublicKeyInfo up to its point: SEQUENCE, the algorithm
/// (id-ecPublicKey, prime256v1) and the BIT STRING header of the 65-byte uncompressed point.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The uncompressed point (65 bytes, `0x04 || x || y`) of a PEM P-256 public key, or what is
/// wrong with it.
pub fn p256_point(pem: &str) -> Result<Vec<u8>, String> {
    if pem.len() > MAX_PEM {
        return Err(format!(
            "is {} bytes; a public key has at most {MAX_PEM}",
            pem.len()
        ));
    }
    let der = pem_body(pem, "PUBLIC KEY")?;
    match der.strip_prefix(&SPKI_P256_PREFIX[..]) {
        Some(point) if point.len() == 65 && point[0] == 0x04 => Ok(point.to_vec()),
        _ => Err("is not an ECDSA P-256 public key (the kind cosign and openssl make)".into()),
    }
}

/// The SubjectPublicKeyInfo DER of the uncompressed P-256 `point`, as PEM.
pub fn p256_pem(point: &[u8]) -> String {
    let mut der = SPKI_P256_PREFIX.to_vec();
    der.extend_from_slice(point);
    pem_encode("PUBLIC KEY", &der)
}

/// The bytes between `-----BEGIN <label>-----` and `-----END <label>-----`.
pub fn pem_body(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = pem
        .trim()
        .strip_prefix(&begin)
        .and_then(|rest| rest.strip_suffix(&end))
        .ok_or_else(|| format!("must be PEM starting with {begin} and ending with {end}"))?;
    let text: String = body.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("has a PEM body that is not base64: {e}"))
}

/// Every block of `text` labelled `label` (a CA bundle holds several), at least one.
pub fn pem_blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>, String> {
    if text.len() > 64 * MAX_PEM {
        return Err(format!("is {} bytes; at most {}", text.len(), 64 * MAX_PEM));
    }
    let end = format!("-----END {label}-----");
    let blocks: Vec<Vec<u8>> = text
        .split_inclusive(&end)
        .filter(|b| !b.trim().is_empty())
        .map(|b| pem_body(b, label))
        .collect::<Result<_, _>>()?;
    if blocks.is_empty() {
        return Err(format!(
            "must hold at least one -----BEGIN {label}----- block"
        ));
    }
    Ok(blocks)
}

/// `der` as PEM under `label`, 64 characters a line.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `openssl ecparam -name prime256v1 -genkey | openssl ec -pubout`.
    const OPENSSL_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEBAlBC9nBCCfUz6puVwVVuZerFIrJ
KdVDD1LmzquvkozqkrLIEL1WhlxN9N7pRj8w8QopCseuLvVp6/0n3jNHOQ==
-----END PUBLIC KEY-----
";

    #[test]
    fn a_p256_key_round_trips_and_others_are_named() {
        let point = p256_point(OPENSSL_KEY).expect("a P-256 key");
        assert_eq!(point.len(), 65);
        assert_eq!(p256_pem(&point).trim(), OPENSSL_KEY.trim());
        assert!(
            p256_point("ssh-ed25519 AAAA")
                .unwrap_err()
                .contains("BEGIN PUBLIC KEY")
        );
        let rsa_like = pem_encode("PUBLIC KEY", &[0x30, 0x82, 0x01, 0x22, 0, 0]);
        assert!(p256_point(&rsa_like).unwrap_err().contains("P-256"));
        assert!(
            p256_point(&"A".repeat(MAX_PEM + 1))
                .unwrap_err()
                .contains("at most")
        );
        assert!(
            p256_point("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----")
                .unwrap_err()
                .contains("base64")
        );
    }
}
