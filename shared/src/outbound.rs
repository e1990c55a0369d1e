//! Outbound URLs set by tenants (billing endpoints, later webhook endpoints) and the server-side
//! request forgery rules they obey: `https` only, to public addresses. Loopback, private,
//! link-local, cloud-metadata, shared (CGNAT), multicast and reserved addresses are refused, as
//! names (`localhost`, `metadata.google.internal`), as literals, and as what a name resolves to,
//! when a URL is saved ([`check_saved`]) and again at delivery time
//! ([`crate::delivery::http_client`]). A development flag (`ALLOW_PRIVATE_URLS`, set by
//! `make dev` and the tests) lifts the rules for local sinks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::error::{Error, Result};

/// What kind of address an IP is, for the refusal's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    Private,
    LinkLocal,
    /// The instance-metadata endpoints of AWS, GCP and Azure (169.254.169.254, fd00:ec2::254).
    Metadata,
    Unspecified,
    /// 100.64.0.0/10, carrier-grade NAT.
    Shared,
    Multicast,
    /// Broadcast, documentation, benchmarking and other reserved ranges.
    Reserved,
}

impl AddressClass {
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Unspecified => "the unspecified address",
            AddressClass::Shared => "a shared (carrier-grade NAT) address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Reserved => "a reserved address",
        }
    }
}

/// The class of `ip` (IPv4-mapped IPv6 addresses are classified as the IPv4 they carry).
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(169, 254, 170, 2) {
        AddressClass::Metadata
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_unspecified() || a == 0 {
        AddressClass::Unspecified
    } else if a == 100 && (64..128).contains(&b) {
        AddressClass::Shared
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if ip.is_broadcast()
        || ip.is_documentation()
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let segments = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        AddressClass::Metadata
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if segments[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if segments[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if segments[0] == 0x2001 && segments[1] == 0xdb8 {
        AddressClass::Reserved
    } else if segments[0] == 0x64 && segments[1] == 0xff9b {
        // NAT64 of an IPv4 address: judged by the address it carries.
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        classify_v4(Ipv4Addr::new(a, b, c, d))
    } else {
        AddressClass::Public
    }
}

/// Names that stand for the machine itself or for metadata services, refused before resolving.
fn internal_name(host: &str) -> Option<AddressClass> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        Some(AddressClass::Loopback)
    } else if host == "metadata.google.internal" || host == "metadata" {
        Some(AddressClass::Metadata)
    } else {
        None
    }
}

/// Whether private addresses and plain `http` are allowed (development only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow_private: bool,
}

fn refused(field: &str, what: &str, class: AddressClass) -> Error {
    Error::invalid(
        field,
        format!(
            "{what} is {}; only https URLs to public addresses are allowed",
            class.describe()
        ),
    )
}

/// Parses an outbound URL and checks what can be checked without resolving: the scheme, no
/// credentials in it, and the host when it is a literal address or an internal name.
pub fn check_url(field: &str, text: &str, policy: Policy) -> Result<Url> {
    let url = Url::parse(text)
        .map_err(|error| Error::invalid(field, format!("is not an absolute URL ({error})")))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_private => {}
        "http" => {
            return Err(Error::invalid(
                field,
                "must use https (plain http is allowed only in development)",
            ));
        }
        other => {
            return Err(Error::invalid(
                field,
                format!("must be an https URL, not {other}:"),
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(field, "must not carry credentials"));
    }
    if text.len() > 2048 {
        return Err(Error::invalid(field, "must be at most 2048 characters"));
    }
    let host = url
        .host()
        .ok_or_else(|| Error::invalid(field, "has no host"))?;
    if !policy.allow_private {
        let class = match host {
            Host::Ipv4(ip) => classify(IpAddr::V4(ip)),
            Host::Ipv6(ip) => classify(IpAddr::V6(ip)),
            Host::Domain(name) => internal_name(name).unwrap_or(AddressClass::Public),
        };
        if class != AddressClass::Public {
            return Err(refused(field, &format!("its host {host}"), class));
        }
    }
    Ok(url)
}

/// [`check_url`], then the host's resolved addresses: every one must be public (a name with one
/// private address among public ones is refused: the connection could go to any of them).
pub async fn check_saved(field: &str, text: &str, policy: Policy) -> Result<Url> {
    let url = check_url(field, text, policy)?;
    if policy.allow_private {
        return Ok(url);
    }
    if let Some(Host::Domain(name)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses = tokio::net::lookup_host((name, port)).await.map_err(|_| {
            Error::invalid(
                field,
                format!("its host {name} does not resolve to an address"),
            )
        })?;
        for address in addresses {
            let class = classify(address.ip());
            if class != AddressClass::Public {
                return Err(refused(
                    field,
                    &format!("its host {name} resolves to {}, which", address.ip()),
                    class,
                ));
            }
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_class_is_recognised() {
        let cases = [
            ("8.8.8.8", AddressClass::Public),
            ("2606:4700::1111", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("fd12:3456::1", AddressClass::Private),
            ("169.254.1.1", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("169.254.169.254", AddressClass::Metadata),
            ("fd00:ec2::254", AddressClass::Metadata),
            ("0.0.0.0", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("100.64.0.1", AddressClass::Shared),
            ("224.0.0.1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Reserved),
            ("192.0.2.1", AddressClass::Reserved),
            ("64:ff9b::7f00:1", AddressClass::Loopback),
        ];
        for (ip, class) in cases {
            assert_eq!(classify(ip.parse().unwrap()), class, "{ip}");
        }
        assert_eq!(
            classify("172.32.0.1".parse().unwrap()),
            AddressClass::Public
        );
    }

    #[test]
    fn urls_are_refused_with_the_reason() {
        let strict = Policy::default();
        let refusal = |url: &str| {
            check_url("billing_url", url, strict)
                .unwrap_err()
                .to_string()
        };
        assert!(refusal("http://billing.example.com/").contains("https"));
        assert!(refusal("ftp://billing.example.com/").contains("https"));
        assert!(refusal("https://127.0.0.1/x").contains("loopback"));
        assert!(refusal("https://[::1]/x").contains("loopback"));
        assert!(refusal("https://10.0.0.8/x").contains("private"));
        assert!(refusal("https://169.254.169.254/latest").contains("metadata"));
        assert!(refusal("https://[fe80::1]/").contains("link-local"));
        assert!(refusal("https://localhost:8443/").contains("loopback"));
        assert!(refusal("https://metadata.google.internal/").contains("metadata"));
        assert!(refusal("https://user:pw@billing.example.com/").contains("credentials"));
        assert!(refusal("not a url").contains("absolute URL"));
        // Decimal and hex spellings of loopback are literals too.
        assert!(refusal("https://2130706433/").contains("loopback"));
        assert!(refusal("https://0x7f.1/").contains("loopback"));
        assert!(
            check_url(
                "billing_url",
                "https://billing.example.com/{user_id}",
                strict
            )
            .is_ok()
        );

        let dev = Policy {
            allow_private: true,
        };
        assert!(check_url("billing_url", "http://127.0.0.1:3000/dev", dev).is_ok());
        assert!(check_url("billing_url", "ftp://127.0.0.1/", dev).is_err());
    }

    #[tokio::test]
    async fn resolved_addresses_are_checked_when_saved() {
        let strict = Policy::default();
        // A name that resolves to loopback without being one of the refused names: the
        // machine's own name from /etc/hosts (Debian maps it to 127.0.1.1, this one to
        // 127.0.0.1).
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let name = hosts
            .lines()
            .filter(|line| line.starts_with("127."))
            .flat_map(|line| line.split_whitespace().skip(1))
            .find(|name| internal_name(name).is_none())
            .expect("/etc/hosts names this machine at a loopback address");
        let error = check_saved("billing_url", &format!("https://{name}/credit"), strict)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("resolves to 127."), "{error}");
        assert!(error.to_string().contains("loopback"), "{error}");
        let error = check_saved("billing_url", "https://no-such-host.invalid/", strict)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("does not resolve"), "{error}");
        assert!(
            check_saved("billing_url", "https://localhost./", strict)
                .await
                .unwrap_err()
                .to_string()
                .contains("loopback")
        );
    }
}
