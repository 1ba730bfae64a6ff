//! CIDR parsing and overlap checks for the network validation rules. Small enough not to pull
//! in a crate for it.

use std::fmt;
use std::net::IpAddr;

/// A parsed network in CIDR form, such as `10.96.0.0/12` or `fd00::/108`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/prefix` part.
    #[error("must be in CIDR form, such as 10.96.0.0/12")]
    MissingPrefix,
    /// The address part is not an IP address.
    #[error("{0:?} is not an IP address")]
    BadAddress(String),
    /// The prefix is not a number within the address's length.
    #[error("prefix length must be 0 to {max}")]
    BadPrefix {
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// Bits are set past the prefix (`10.0.0.1/8`).
    #[error("host bits are set: did you mean {0}?")]
    HostBits(String),
}

impl Cidr {
    /// Parses `address/prefix`; the address must be the network's first address.
    pub fn parse(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = s.split_once('/').ok_or(CidrError::MissingPrefix)?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::BadAddress(addr.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or(CidrError::BadPrefix { max })?;
        let cidr = Cidr { addr, prefix };
        if cidr.network_bits() != cidr.bits() {
            let net = Cidr {
                addr: cidr.addr_with_bits(cidr.network_bits()),
                prefix,
            };
            return Err(CidrError::HostBits(net.to_string()));
        }
        Ok(cidr)
    }

    /// Whether this is an IPv4 network.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.is_ipv4() != other.is_ipv4() {
            return false;
        }
        let prefix = self.prefix.min(other.prefix);
        mask(self.bits(), prefix, self.width()) == mask(other.bits(), prefix, self.width())
    }

    fn width(&self) -> u8 {
        if self.is_ipv4() { 32 } else { 128 }
    }

    fn bits(&self) -> u128 {
        match self.addr {
            IpAddr::V4(a) => u32::from(a).into(),
            IpAddr::V6(a) => a.into(),
        }
    }

    fn network_bits(&self) -> u128 {
        mask(self.bits(), self.prefix, self.width())
    }

    fn addr_with_bits(&self, bits: u128) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4((bits as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(bits.into()),
        }
    }
}

fn mask(bits: u128, prefix: u8, width: u8) -> u128 {
    let host = u32::from(width - prefix);
    if host >= 128 {
        0
    } else {
        (bits >> host) << host
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert!(Cidr::parse("10.96.0.0/12").is_ok());
        assert!(Cidr::parse("fd00:10:96::/108").is_ok());
        assert_eq!(Cidr::parse("10.96.0.0"), Err(CidrError::MissingPrefix));
        assert_eq!(
            Cidr::parse("10.0.0.1/8"),
            Err(CidrError::HostBits("10.0.0.0/8".into()))
        );
        assert_eq!(
            Cidr::parse("10.0.0.0/33"),
            Err(CidrError::BadPrefix { max: 32 })
        );
        assert!(matches!(
            Cidr::parse("ten/8"),
            Err(CidrError::BadAddress(_))
        ));
        assert!(Cidr::parse("0.0.0.0/0").is_ok());
    }

    #[test]
    fn overlap() {
        let a = Cidr::parse("10.96.0.0/12").unwrap();
        let b = Cidr::parse("10.100.0.0/16").unwrap();
        let c = Cidr::parse("192.168.0.0/16").unwrap();
        let v6 = Cidr::parse("::/0").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(!a.overlaps(&v6));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().overlaps(&c));
    }
}
