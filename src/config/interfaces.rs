//! Interface specs (SPEC §2.3): the `interfaces` strings of jobs and
//! telemetry, their syntax, and their resolution to the one IP address that
//! gets advertised. Reading the machine's addresses lives here too, kept
//! apart from `resolve` so the ordering rules are testable without a network.
//!
//! Behaviour follows ContainerPilot 3 (`config/services/ips.go`):
//! - specs are tried in order and the first that matches any address wins;
//! - addresses are sorted by interface name, then by the 16-byte form of the
//!   address (IPv4 as `::ffff:a.b.c.d`), so on one interface `::1` comes
//!   before IPv4 addresses, which come before global IPv6 and `fe80::`;
//! - `eth0[N]` counts every address of `eth0` in that order, IPv4 and IPv6
//!   together, zero-based;
//! - `inet`/`inet6` skip loopback addresses, named and CIDR specs do not;
//! - `inet6` does not skip link-local `fe80::/10` (3.x did not either).
//!
//! Beyond 3.x: interface names may contain `-`, `.` and `@` (`br-1a2b`,
//! `eth0.100`), which 3.x's `\w+` pattern rejected.

use std::fmt;
use std::net::IpAddr;

/// What callers use when the config gives no `interfaces` (as 3.x).
pub const DEFAULT_SPECS: [&str; 2] = ["eth0:inet", "inet"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub name: String,
    pub addr: IpAddr,
    /// The interface has IFF_LOOPBACK set. `inet`/`inet6` also skip
    /// loopback addresses (127/8, `::1`) on other interfaces, as 3.x did.
    pub loopback: bool,
}

/// [`DEFAULT_SPECS`] as owned strings, as a config would list them.
pub fn default_specs() -> Vec<String> {
    DEFAULT_SPECS.iter().map(|s| s.to_string()).collect()
}

/// A test machine's address; the interface named `lo` is the loopback one.
#[cfg(test)]
pub fn fake_addr(name: &str, ip: &str) -> IfAddr {
    IfAddr {
        name: name.into(),
        addr: ip.parse().expect("test address"),
        loopback: name == "lo",
    }
}

/// A parsed spec. Kept private: callers pass strings, as the config does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Spec {
    /// `inet`, `inet6` (name `None`: any non-loopback interface), `eth0`,
    /// `eth0:inet`, `eth0:inet6`.
    Family { name: Option<String>, v6: bool },
    /// `eth0[1]`: the N-th address of the interface, zero-based.
    Index { name: String, index: usize },
    /// `10.0.0.0/16`, `fd00::/8`: the first address inside the network.
    Cidr { net: IpAddr, prefix: u8 },
    /// `static:ADDR`: that address, no lookup.
    Static(IpAddr),
}

/// The machine's addresses (getifaddrs through nix).
///
/// IPv4 and IPv6 only, in the order the kernel gives them (`resolve` sorts).
/// If the system call fails the list is empty, and `resolve`'s error then
/// says that no interfaces are present; the cause is logged as a warning.
pub fn system_addrs() -> Vec<IfAddr> {
    use nix::net::if_::InterfaceFlags;
    let ifaddrs = match nix::ifaddrs::getifaddrs() {
        Ok(it) => it,
        Err(e) => {
            crate::log::warn(&format!("cannot list the network interfaces: {e}"));
            return Vec::new();
        }
    };
    ifaddrs
        .filter_map(|ia| {
            let sa = ia.address?;
            let addr = if let Some(v4) = sa.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else {
                IpAddr::V6(sa.as_sockaddr_in6()?.ip())
            };
            Some(IfAddr {
                name: ia.interface_name,
                addr,
                loopback: ia.flags.contains(InterfaceFlags::IFF_LOOPBACK),
            })
        })
        .collect()
}

/// Check that a spec is well-formed (used when resolution is not needed).
///
/// The error is the whole sentence, naming the spec:
/// `invalid interface spec "eth0[x]": ...`.
pub fn check_spec(spec: &str) -> Result<(), String> {
    parse_spec(spec).map(|_| ())
}

/// First match wins over `specs` in order; error lists the interfaces present.
///
/// An empty `specs` means [`DEFAULT_SPECS`]. All specs are checked before
/// any is matched, so a typo in a later spec is reported even when an
/// earlier one matches.
pub fn resolve(specs: &[String], addrs: &[IfAddr]) -> Result<IpAddr, String> {
    let default: Vec<String>;
    let specs = if specs.is_empty() {
        default = default_specs();
        &default[..]
    } else {
        specs
    };
    let parsed = specs
        .iter()
        .map(|s| parse_spec(s))
        .collect::<Result<Vec<_>, _>>()?;

    let mut sorted: Vec<&IfAddr> = addrs.iter().collect();
    sorted.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| sort_key(a.addr).cmp(&sort_key(b.addr)))
    });

    for spec in &parsed {
        if let Spec::Static(ip) = spec {
            return Ok(*ip);
        }
        // Position of each address within its own interface, for `eth0[N]`.
        let mut index = 0;
        for (i, a) in sorted.iter().enumerate() {
            index = if i > 0 && sorted[i - 1].name == a.name {
                index + 1
            } else {
                0
            };
            if matches(spec, index, a) {
                return Ok(canonical(a.addr));
            }
        }
    }
    Err(format!(
        "none of the interfaces {} matches an address on this machine; interfaces present: {}",
        QuotedList(specs),
        Present(&sorted)
    ))
}

fn matches(spec: &Spec, index: usize, a: &IfAddr) -> bool {
    let addr = canonical(a.addr);
    match spec {
        Spec::Family {
            name: Some(name),
            v6,
        } => *name == a.name && addr.is_ipv6() == *v6,
        Spec::Family { name: None, v6 } => {
            !(a.loopback || addr.is_loopback()) && addr.is_ipv6() == *v6
        }
        Spec::Index { name, index: want } => *name == a.name && index == *want,
        Spec::Cidr { net, prefix } => in_network(addr, *net, *prefix),
        Spec::Static(_) => false,
    }
}

/// IPv4-mapped IPv6 addresses count as IPv4, as Go's `To4()` makes them.
fn canonical(addr: IpAddr) -> IpAddr {
    addr.to_canonical()
}

/// Go sorted on `IP.To16()`: IPv4 as `::ffff:a.b.c.d`.
fn sort_key(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn in_network(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn parse_spec(spec: &str) -> Result<Spec, String> {
    let invalid = |why: String| format!("invalid interface spec {spec:?}: {why}");
    match spec {
        "" => return Err(invalid("empty".into())),
        "inet" => {
            return Ok(Spec::Family {
                name: None,
                v6: false,
            })
        }
        "inet6" => {
            return Ok(Spec::Family {
                name: None,
                v6: true,
            })
        }
        _ => {}
    }
    if let Some(addr) = spec.strip_prefix("static:") {
        return addr
            .parse()
            .map(Spec::Static)
            .map_err(|_| invalid(format!("{addr:?} is not an IPv4 or IPv6 address")));
    }
    if let Some((addr, prefix)) = spec.split_once('/') {
        let net: IpAddr = addr
            .parse()
            .map_err(|_| invalid(format!("{addr:?} is not an IPv4 or IPv6 address")))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        return match prefix.parse::<u8>() {
            Ok(p) if p <= max && prefix.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Spec::Cidr { net, prefix: p })
            }
            _ => Err(invalid(format!(
                "the prefix length {prefix:?} must be a number from 0 to {max}"
            ))),
        };
    }
    // A bare address would otherwise read as an interface name (dots are
    // allowed in names) or a name with a bad suffix, and never match.
    if let Ok(addr) = spec.parse::<IpAddr>() {
        return Err(invalid(format!(
            "an address needs static:{addr} (or a CIDR such as {addr}/32)"
        )));
    }
    // The name forms: NAME, NAME:inet, NAME:inet6, NAME[N].
    const FORMS: &str = "expected an interface name (eth0, eth0:inet, eth0:inet6, eth0[1]), \
                         a CIDR (10.0.0.0/16), inet, inet6 or static:ADDRESS";
    let name_end = spec.find(|c: char| !is_name_char(c)).unwrap_or(spec.len());
    let (name, rest) = spec.split_at(name_end);
    if name.is_empty() {
        return Err(invalid(FORMS.into()));
    }
    let name = name.to_string();
    match rest {
        "" | ":inet" => Ok(Spec::Family {
            name: Some(name),
            v6: false,
        }),
        ":inet6" => Ok(Spec::Family {
            name: Some(name),
            v6: true,
        }),
        _ if rest.starts_with(':') => Err(invalid(format!(
            "unknown suffix {rest:?}: use {name}:inet or {name}:inet6"
        ))),
        _ if rest.starts_with('[') => {
            let (digits, tail) = rest[1..]
                .split_once(']')
                .ok_or_else(|| invalid(format!("expected a closing \"]\", as in \"{name}[1]\"")))?;
            if !tail.is_empty() {
                return Err(invalid(format!("unexpected {tail:?} after \"]\"")));
            }
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!(
                    "the index {digits:?} must be a non-negative number, as in \"{name}[1]\""
                )));
            }
            let index = digits
                .parse()
                .map_err(|_| invalid(format!("the index {digits} is too large")))?;
            Ok(Spec::Index { name, index })
        }
        _ => Err(invalid(FORMS.into())),
    }
}

/// Characters of a Linux interface name as they occur in practice
/// (`eth0`, `br-1a2b`, `eth0.100`, `veth1@if5`). 3.x allowed only `\w`.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@')
}

/// `["eth0:inet", "inet"]`
struct QuotedList<'a>(&'a [String]);
impl fmt::Display for QuotedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{s:?}")?;
        }
        f.write_str("]")
    }
}

/// `lo (127.0.0.1, ::1), wlan0 (192.168.1.5)` over name-sorted addresses,
/// or `none`.
struct Present<'a>(&'a [&'a IfAddr]);
impl fmt::Display for Present<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, a) in self.0.iter().enumerate() {
            let first_of_name = i == 0 || self.0[i - 1].name != a.name;
            let last_of_name = i + 1 == self.0.len() || self.0[i + 1].name != a.name;
            if first_of_name {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{} ({}", a.name, canonical(a.addr))?;
            } else {
                write!(f, ", {}", canonical(a.addr))?;
            }
            if last_of_name {
                f.write_str(")")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }
    fn ok(s: &[&str], addrs: &[IfAddr]) -> String {
        resolve(&specs(s), addrs)
            .unwrap_or_else(|e| panic!("resolve({s:?}) failed: {e}"))
            .to_string()
    }
    fn err(s: &[&str], addrs: &[IfAddr]) -> String {
        match resolve(&specs(s), addrs) {
            Ok(ip) => panic!("resolve({s:?}) should fail, got {ip}"),
            Err(e) => e,
        }
    }

    /// A container-like machine, deliberately listed out of order.
    fn machine() -> Vec<IfAddr> {
        vec![
            fake_addr("eth1", "10.1.0.7"),
            fake_addr("eth0", "fe80::42:acff:fe11:2"),
            fake_addr("eth0", "172.17.0.2"),
            fake_addr("lo", "::1"),
            fake_addr("eth0", "2001:db8::2"),
            fake_addr("eth0", "172.17.0.1"),
            fake_addr("lo", "127.0.0.1"),
        ]
    }

    #[test]
    fn named_interface_defaults_to_ipv4() {
        let m = machine();
        assert_eq!(ok(&["eth0"], &m), "172.17.0.1");
        assert_eq!(ok(&["eth0:inet"], &m), "172.17.0.1");
        assert_eq!(ok(&["eth1"], &m), "10.1.0.7");
        // A named spec may pick loopback.
        assert_eq!(ok(&["lo"], &m), "127.0.0.1");
        assert_eq!(ok(&["lo:inet6"], &m), "::1");
    }

    #[test]
    fn named_inet6_takes_lowest_bytes_first() {
        // 2001:db8:: sorts before fe80::
        assert_eq!(ok(&["eth0:inet6"], &machine()), "2001:db8::2");
    }

    #[test]
    fn index_counts_v4_and_v6_together_in_byte_order() {
        let m = machine();
        // eth0 sorted: 172.17.0.1 (::ffff:…), 172.17.0.2, 2001:db8::2, fe80::…
        assert_eq!(ok(&["eth0[0]"], &m), "172.17.0.1");
        assert_eq!(ok(&["eth0[1]"], &m), "172.17.0.2");
        assert_eq!(ok(&["eth0[2]"], &m), "2001:db8::2");
        assert_eq!(ok(&["eth0[3]"], &m), "fe80::42:acff:fe11:2");
        // On lo, ::1 sorts before ::ffff:127.0.0.1 (as 3.x).
        assert_eq!(ok(&["lo[0]"], &m), "::1");
        assert_eq!(ok(&["lo[1]"], &m), "127.0.0.1");
        assert_eq!(ok(&["eth1[0]"], &m), "10.1.0.7");
    }

    #[test]
    fn index_out_of_range_falls_through_or_fails() {
        let m = machine();
        assert_eq!(ok(&["eth0[4]", "eth1"], &m), "10.1.0.7");
        let e = err(&["eth0[4]"], &m);
        assert!(
            e.starts_with(r#"none of the interfaces ["eth0[4]"] matches"#),
            "{e}"
        );
    }

    #[test]
    fn inet_skips_loopback_and_sorts_by_name() {
        let m = machine();
        // eth0 < eth1 < lo
        assert_eq!(ok(&["inet"], &m), "172.17.0.1");
        assert_eq!(ok(&["inet6"], &m), "2001:db8::2");
        let only_lo = vec![fake_addr("lo", "127.0.0.1"), fake_addr("lo", "::1")];
        assert!(resolve(&specs(&["inet"]), &only_lo).is_err());
        assert!(resolve(&specs(&["inet6"]), &only_lo).is_err());
        // A loopback address on a non-loopback interface is skipped too (as 3.x).
        let odd = vec![
            fake_addr("dummy0", "127.0.0.2"),
            fake_addr("eth0", "10.0.0.1"),
        ];
        assert_eq!(ok(&["inet"], &odd), "10.0.0.1");
        // And any address on an IFF_LOOPBACK interface.
        let flagged = vec![IfAddr {
            name: "lo0".into(),
            addr: "10.9.9.9".parse().expect("ip"),
            loopback: true,
        }];
        assert!(resolve(&specs(&["inet"]), &flagged).is_err());
    }

    #[test]
    fn inet6_keeps_link_local_as_3x() {
        let m = vec![
            fake_addr("eth0", "10.0.0.1"),
            fake_addr("eth0", "fe80::1"),
            fake_addr("lo", "::1"),
        ];
        assert_eq!(ok(&["inet6"], &m), "fe80::1");
    }

    #[test]
    fn cidr_v4_and_v6() {
        let m = machine();
        assert_eq!(ok(&["10.0.0.0/8"], &m), "10.1.0.7");
        assert_eq!(ok(&["172.17.0.0/16"], &m), "172.17.0.1");
        // Host bits in the spec are ignored, as Go's ParseCIDR does.
        assert_eq!(ok(&["172.17.0.2/31"], &m), "172.17.0.2");
        assert_eq!(ok(&["172.17.0.2/32"], &m), "172.17.0.2");
        assert_eq!(ok(&["2001:db8::/32"], &m), "2001:db8::2");
        assert_eq!(ok(&["fe80::/10"], &m), "fe80::42:acff:fe11:2");
        // CIDR matches loopback too.
        assert_eq!(ok(&["127.0.0.0/8"], &m), "127.0.0.1");
        // /0 matches the first address of the family in sorted order.
        assert_eq!(ok(&["0.0.0.0/0"], &m), "172.17.0.1");
        assert_eq!(ok(&["::/0"], &m), "2001:db8::2");
        assert!(resolve(&specs(&["192.168.0.0/16"]), &m).is_err());
    }

    #[test]
    fn static_needs_no_lookup_and_respects_order() {
        assert_eq!(ok(&["static:192.0.2.1"], &[]), "192.0.2.1");
        assert_eq!(ok(&["static:2001:db8::9"], &[]), "2001:db8::9");
        let m = machine();
        assert_eq!(ok(&["eth9", "static:192.0.2.1", "eth0"], &m), "192.0.2.1");
        assert_eq!(ok(&["eth0", "static:192.0.2.1"], &m), "172.17.0.1");
    }

    #[test]
    fn first_matching_spec_wins() {
        let m = machine();
        assert_eq!(ok(&["eth9", "eth1", "eth0"], &m), "10.1.0.7");
        assert_eq!(
            ok(&["eth0:inet", "inet"], &[fake_addr("en0", "192.168.1.5")]),
            "192.168.1.5"
        );
        // Empty list = the default.
        assert_eq!(
            resolve(&[], &m).map(|ip| ip.to_string()),
            Ok("172.17.0.1".into())
        );
    }

    #[test]
    fn v4_mapped_v6_counts_as_ipv4() {
        let m = vec![fake_addr("eth0", "::ffff:10.0.0.1")];
        assert_eq!(ok(&["inet"], &m), "10.0.0.1");
        assert_eq!(ok(&["10.0.0.0/8"], &m), "10.0.0.1");
    }

    #[test]
    fn names_with_dashes_dots_and_at() {
        let m = vec![
            fake_addr("br-1a2b", "10.0.0.1"),
            fake_addr("eth0.100", "10.0.1.1"),
            fake_addr("veth1@if5", "10.0.2.1"),
        ];
        assert_eq!(ok(&["br-1a2b"], &m), "10.0.0.1");
        assert_eq!(ok(&["eth0.100[0]"], &m), "10.0.1.1");
        assert_eq!(ok(&["veth1@if5:inet"], &m), "10.0.2.1");
    }

    #[test]
    fn no_match_lists_specs_and_interfaces() {
        let m = vec![
            fake_addr("wlan0", "192.168.1.5"),
            fake_addr("lo", "::1"),
            fake_addr("lo", "127.0.0.1"),
        ];
        assert_eq!(
            err(&["eth0:inet", "inet6"], &m),
            r#"none of the interfaces ["eth0:inet", "inet6"] matches an address on this machine; interfaces present: lo (::1, 127.0.0.1), wlan0 (192.168.1.5)"#
        );
        assert!(err(&["eth0"], &[]).ends_with("interfaces present: none"));
    }

    #[test]
    fn malformed_spec_is_named_even_after_a_match() {
        let e = err(&["eth0", "eth0[x]"], &machine());
        assert!(
            e.starts_with(r#"invalid interface spec "eth0[x]": "#),
            "{e}"
        );
    }

    #[test]
    fn check_spec_accepts_every_form() {
        for s in [
            "eth0",
            "eth0:inet",
            "eth0:inet6",
            "eth0[0]",
            "eth0[12]",
            "inet",
            "inet6",
            "10.0.0.0/16",
            "fd00::/8",
            "::/0",
            "0.0.0.0/0",
            "static:10.0.0.1",
            "static:::1",
            "br-1a2b",
            "lo",
        ] {
            assert_eq!(check_spec(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn check_spec_errors_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            (
                "eth0[x]",
                r#"the index "x" must be a non-negative number, as in "eth0[1]""#,
            ),
            ("eth0[-1]", "must be a non-negative number"),
            ("eth0[]", "must be a non-negative number"),
            ("eth0[1", r#"expected a closing "]""#),
            ("eth0[1]x", r#"unexpected "x" after "]""#),
            ("10.0.0.1", "an address needs static:10.0.0.1"),
            ("fd00::1", "an address needs static:fd00::1"),
            ("eth0[99999999999999999999999]", "too large"),
            (
                "eth0:inet4",
                r#"unknown suffix ":inet4": use eth0:inet or eth0:inet6"#,
            ),
            ("eth0:", "unknown suffix"),
            (
                "10.0.0.0/33",
                r#"the prefix length "33" must be a number from 0 to 32"#,
            ),
            ("fd00::/129", "from 0 to 128"),
            ("10.0.0.0/", "prefix length"),
            ("10.0.0.0/+8", "prefix length"),
            ("10.0.0/16", r#""10.0.0" is not an IPv4 or IPv6 address"#),
            ("static:foo", r#""foo" is not an IPv4 or IPv6 address"#),
            ("static:", r#""" is not an IPv4 or IPv6 address"#),
            ("static:123", "is not an IPv4 or IPv6 address"),
            ("a b", "expected an interface name"),
            (":inet", "expected an interface name"),
            ("[1]", "expected an interface name"),
            ("ëth0", "expected an interface name"),
        ];
        for (spec, want) in cases {
            match check_spec(spec) {
                Ok(()) => panic!("{spec:?} should be rejected"),
                Err(e) => {
                    assert!(
                        e.starts_with(&format!("invalid interface spec {spec:?}: ")),
                        "{e}"
                    );
                    assert!(e.contains(want), "{spec:?}: {e:?} should contain {want:?}");
                }
            }
        }
    }

    #[test]
    fn system_addrs_reads_this_machine() {
        // Any Linux test host has a loopback interface with 127.0.0.1.
        let addrs = system_addrs();
        assert!(
            addrs
                .iter()
                .any(|a| a.loopback && a.addr == IpAddr::from([127, 0, 0, 1])),
            "no loopback 127.0.0.1 in {addrs:?}"
        );
    }
}
