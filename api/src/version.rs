//! Kubernetes and stack version handling: `"1.31"` (a minor that follows the newest patch) or
//! `"1.31.4"` (an exact patch), and semantic versions of stack releases.

use std::cmp::Ordering;
use std::fmt;

/// A Kubernetes version as a user writes it in `spec.kubernetesVersion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KubeVersion {
    /// Major version, always 1 today.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version; `None` follows the stack's newest patch of the minor.
    pub patch: Option<u64>,
}

/// Why a string is not a Kubernetes version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be MAJOR.MINOR or MAJOR.MINOR.PATCH, such as 1.31 or 1.31.4, without a leading v")]
pub struct KubeVersionError;

impl KubeVersion {
    /// Parses `1.31` or `1.31.4`.
    pub fn parse(s: &str) -> Result<Self, KubeVersionError> {
        let parts: Vec<&str> = s.split('.').collect();
        let num = |p: &str| -> Result<u64, KubeVersionError> {
            let ok = !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'));
            if ok {
                p.parse().map_err(|_| KubeVersionError)
            } else {
                Err(KubeVersionError)
            }
        };
        match parts.as_slice() {
            [ma, mi] => Ok(Self {
                major: num(ma)?,
                minor: num(mi)?,
                patch: None,
            }),
            [ma, mi, pa] => Ok(Self {
                major: num(ma)?,
                minor: num(mi)?,
                patch: Some(num(pa)?),
            }),
            _ => Err(KubeVersionError),
        }
    }

    /// Parses a full `MAJOR.MINOR.PATCH` version only.
    pub fn parse_full(s: &str) -> Result<Self, KubeVersionError> {
        let v = Self::parse(s)?;
        if v.patch.is_none() {
            return Err(KubeVersionError);
        }
        Ok(v)
    }

    /// Whether `full` is a patch of this version (or this exact version).
    pub fn matches(&self, full: &KubeVersion) -> bool {
        self.major == full.major
            && self.minor == full.minor
            && (self.patch.is_none() || self.patch == full.patch)
    }

    /// `(major, minor)`, for comparisons of minors.
    pub fn minor_key(&self) -> (u64, u64) {
        (self.major, self.minor)
    }

    /// Orders versions; a minor-only version sorts as its newest patch would.
    pub fn cmp_loose(&self, other: &Self) -> Ordering {
        self.minor_key()
            .cmp(&other.minor_key())
            .then(match (self.patch, other.patch) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => Ordering::Equal,
            })
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(p) => write!(f, "{}.{}.{}", self.major, self.minor, p),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

/// The newest of `versions` that `wanted` selects (`1.31` selects the newest `1.31.x`).
pub fn newest_match<'a>(wanted: &KubeVersion, versions: &'a [String]) -> Option<&'a str> {
    versions
        .iter()
        .filter_map(|s| KubeVersion::parse_full(s).ok().map(|v| (v, s.as_str())))
        .filter(|(v, _)| wanted.matches(v))
        .max_by(|a, b| a.0.cmp_loose(&b.0))
        .map(|(_, s)| s)
}

/// The newest full version in `versions`.
pub fn newest(versions: &[String]) -> Option<&str> {
    versions
        .iter()
        .filter_map(|s| KubeVersion::parse_full(s).ok().map(|v| (v, s.as_str())))
        .max_by(|a, b| a.0.cmp_loose(&b.0))
        .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(
            KubeVersion::parse("1.31").unwrap(),
            KubeVersion {
                major: 1,
                minor: 31,
                patch: None
            }
        );
        assert_eq!(KubeVersion::parse("1.31.4").unwrap().patch, Some(4));
        for bad in ["v1.31", "1", "1.31.4.1", "1.031", "", "1..2", "1.31-rc.1"] {
            assert!(KubeVersion::parse(bad).is_err(), "{bad}");
        }
        assert!(KubeVersion::parse_full("1.31").is_err());
    }

    #[test]
    fn newest_patch_of_minor() {
        let list = vec!["1.30.9".to_string(), "1.31.2".into(), "1.31.10".into()];
        let want = KubeVersion::parse("1.31").unwrap();
        assert_eq!(newest_match(&want, &list), Some("1.31.10"));
        assert_eq!(newest(&list), Some("1.31.10"));
        let exact = KubeVersion::parse("1.31.2").unwrap();
        assert_eq!(newest_match(&exact, &list), Some("1.31.2"));
        let none = KubeVersion::parse("1.29").unwrap();
        assert_eq!(newest_match(&none, &list), None);
    }
}
