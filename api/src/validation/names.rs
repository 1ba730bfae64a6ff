//! Kubernetes name rules (RFC 1123 labels and subdomains, qualified names, label values).

/// RFC 1123 label: lowercase alphanumerics and `-`, starting and ending alphanumeric, 1-63.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label key: `[prefix/]name`, prefix a DNS subdomain, name up to 63 alphanumerics, `-`,
/// `_` and `.` starting and ending alphanumeric.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// A label value: empty, or up to 63 alphanumerics, `-`, `_` and `.` starting and ending
/// alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_label("pool-1"));
        assert!(!is_dns_label("Pool"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("kaas.scs.community"));
        assert!(!is_dns_subdomain("kaas..community"));
        assert!(is_qualified_name("example.com/dedicated"));
        assert!(is_qualified_name("node-role.kubernetes.io/worker"));
        assert!(!is_qualified_name("example.com/"));
        assert!(!is_qualified_name("Bad Key"));
        assert!(is_label_value(""));
        assert!(!is_label_value("a b"));
    }
}
