//! Signed releases, in cosign's layout so the usual tools read them: the signed payload is
//! cosign's "simple signing" JSON naming the repository and the manifest digest; the signature
//! is ECDSA P-256 with SHA-256 (ASN.1 DER, base64 in the layer annotation
//! `dev.cosignproject.cosign/signature`); the payload is a layer of an OCI manifest tagged
//! `sha256-<hex>.sig` in the release's repository. Keys are PEM: PKCS#8 for the private key
//! (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`), SubjectPublicKeyInfo
//! for the public one (what `cosign generate-key-pair` writes as `cosign.pub`).
//!
//! The registry calls live in [`crate::source::Fetcher`]; this module is the pure part.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use sha2::{Digest as _, Sha256};

use crate::release::hex;

/// Media type of a signature layer (its blob is the signed payload).
pub const SIGNATURE_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `type` of a simple-signing payload.
const PAYLOAD_TYPE: &str = "cosign container image signature";
/// The most a signature payload may weigh; cosign's are about 250 bytes.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// The most signature layers looked at for one release.
pub const MAX_SIGNATURES: usize = 16;

/// The tag a release's signatures are stored under: `sha256-<hex>.sig`, or `None` when
/// `digest` is not `sha256:` and 64 hex digits.
pub fn signature_tag(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256-{hex}.sig"))
}

/// The payload signed for `repository@digest`.
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    })
    .to_string()
    .into_bytes()
}

/// Whether `payload` is a simple-signing payload for `digest`; what is wrong if not.
pub fn check_payload(payload: &[u8], digest: &str) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let critical = &value["critical"];
    if critical["type"] != PAYLOAD_TYPE {
        return Err(format!("payload type is not {PAYLOAD_TYPE:?}"));
    }
    match critical["image"]["docker-manifest-digest"].as_str() {
        Some(d) if d == digest => Ok(()),
        Some(d) => Err(format!("payload signs {d}, not {digest}")),
        None => Err("payload names no docker-manifest-digest".into()),
    }
}

/// A key releases are signed with.
pub struct SigningKey {
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public().fingerprint())
            .finish()
    }
}

impl SigningKey {
    /// The key in `pem` (PKCS#8, `-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        if pem.contains("ENCRYPTED") {
            return Err("is encrypted: give an unencrypted PKCS#8 P-256 key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)".into());
        }
        let der = api::signing_key::pem_body(pem, "PRIVATE KEY")?;
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der, &SystemRandom::new())
                .map_err(|e| format!("is not a PKCS#8 ECDSA P-256 key: {e}"))?;
        Ok(SigningKey { pair })
    }

    /// A new key, as PKCS#8 PEM.
    pub fn generate_pem() -> Result<String, String> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .map_err(|_| "could not generate a key".to_string())?;
        Ok(api::signing_key::pem_encode("PRIVATE KEY", doc.as_ref()))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            point: self.pair.public_key().as_ref().to_vec(),
        }
    }

    /// The DER signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| "signing failed".to_string())
    }
}

/// A key signatures are checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    point: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// The key in `pem` (`-----BEGIN PUBLIC KEY-----`, P-256).
    pub fn from_pem(pem: &str) -> Result<PublicKey, String> {
        Ok(PublicKey {
            point: api::signing_key::p256_point(pem)?,
        })
    }

    /// The key as PEM.
    pub fn to_pem(&self) -> String {
        api::signing_key::p256_pem(&self.point)
    }

    /// A short name for messages: `sha256:` and the first 16 hex digits of the key's DER.
    pub fn fingerprint(&self) -> String {
        let der = api::signing_key::pem_body(&self.to_pem(), "PUBLIC KEY").unwrap_or_default();
        format!("sha256:{}", &hex(&Sha256::digest(der))[..16])
    }

    /// Whether `signature` (DER) is this key's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(message, signature)
            .is_ok()
    }
}

/// The base64 signature of `payload` by `key`, for the layer annotation.
pub fn sign_payload(key: &SigningKey, payload: &[u8]) -> Result<String, String> {
    Ok(base64::engine::general_purpose::STANDARD.encode(key.sign(payload)?))
}

/// Whether the base64 `signature` over `payload` verifies with `key`.
pub fn verifies(key: &PublicKey, payload: &[u8], signature: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .is_ok_and(|sig| key.verifies(payload, &sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signature_verifies_with_its_key_only_and_for_its_digest_only() {
        let key = SigningKey::from_pem(&SigningKey::generate_pem().unwrap()).unwrap();
        let other = SigningKey::from_pem(&SigningKey::generate_pem().unwrap()).unwrap();
        let payload = payload("registry.example/stacks/docker-scs", DIGEST);
        let signature = sign_payload(&key, &payload).unwrap();
        assert!(verifies(&key.public(), &payload, &signature));
        assert!(!verifies(&other.public(), &payload, &signature));
        let mut changed = payload.clone();
        changed[10] ^= 1;
        assert!(!verifies(&key.public(), &changed, &signature));
        assert!(!verifies(&key.public(), &payload, "not base64!"));
        check_payload(&payload, DIGEST).unwrap();
        let elsewhere = DIGEST.replace("0123", "4567");
        assert!(
            check_payload(&payload, &elsewhere)
                .unwrap_err()
                .contains("not sha256:4567")
        );
        assert!(check_payload(b"{}", DIGEST).unwrap_err().contains("type"));
        // The public key survives PEM and is what the key reports.
        let public = PublicKey::from_pem(&key.public().to_pem()).unwrap();
        assert_eq!(public, key.public());
        assert_ne!(public.fingerprint(), other.public().fingerprint());
    }

    #[test]
    fn keys_made_by_openssl_are_read_and_bad_ones_named() {
        // `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
        let pem = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgl9hAJtIBTYLXIbzn
Vqzx0fX622Mrvka5fNR44yFQ0kChRANCAAQbxd4JUmGdUASzXQAmzr4VBTNtXTf5
Xsl11pClv9ttPfG/BMU52jEp68ugOGeEHtxnw8hiPbBSByOZFithrLNo
-----END PRIVATE KEY-----
";
        let key = SigningKey::from_pem(pem).unwrap();
        let signature = sign_payload(&key, b"x").unwrap();
        assert!(verifies(&key.public(), b"x", &signature));
        assert!(
            SigningKey::from_pem("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
                .unwrap_err()
                .contains("encrypted")
        );
        assert!(
            SigningKey::from_pem(&api::signing_key::pem_encode("PRIVATE KEY", b"junk"))
                .unwrap_err()
                .contains("PKCS#8")
        );
        assert_eq!(
            signature_tag(DIGEST).unwrap(),
            format!("sha256-{}.sig", &DIGEST[7..])
        );
        assert_eq!(signature_tag("sha256:../../x"), None);
    }
}
