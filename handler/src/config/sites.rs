//! `[sites]`: each site's ranges parsed, normalised, merged and checked against
//! what Graph accepts in one IP named location.

use super::{ConfigWarning, Lines, MAX_SITE_RANGES, Site};
use ipnet::IpNet;
use std::collections::BTreeMap;
use toml::Spanned;

/// Every site, in name order; problems go to `err` and `warnings`.
pub(super) fn parse(
    raw: &BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    lines: &Lines,
    err: &mut impl FnMut(&str, usize, String),
    warnings: &mut Vec<ConfigWarning>,
) -> Vec<Site> {
    let mut sites: Vec<Site> = Vec::new();
    for (name, ranges) in raw {
        let key = format!("sites.{name}");
        let nets: Vec<IpNet> =
            ranges.get_ref().iter().filter_map(|cidr| range(cidr, &key, lines, err, warnings)).collect();
        let merged = IpNet::aggregate(&nets);
        if merged.len() < nets.len() {
            warnings.push(ConfigWarning {
                key: key.clone(),
                line: lines.at(ranges.span().start),
                message: format!("duplicate or overlapping ranges merged: {} → {}", nets.len(), merged.len()),
            });
        }
        if ranges.get_ref().is_empty() {
            err(&key, lines.at(ranges.span().start), "a site needs at least one range".into());
        }
        let site_line = lines.at(ranges.span().start);
        // Graph holds at most 2000 ranges per IP named location, and refuses /8 or shorter.
        if merged.len() > MAX_SITE_RANGES {
            let msg = format!(
                "{} ranges; Graph allows at most {MAX_SITE_RANGES} in one named location: split the site",
                merged.len()
            );
            err(&key, site_line, msg);
        }
        for m in merged.iter().filter(|m| m.prefix_len() <= 8) {
            err(
                &key,
                site_line,
                format!("the ranges merge into {m}, a /{} that Graph refuses; list a smaller set", m.prefix_len()),
            );
        }
        if let Some(other) = sites.iter().find(|s: &&Site| s.name.eq_ignore_ascii_case(name)) {
            let msg = format!(
                "site \"{name}\" differs from \"{}\" only in case; their named locations would collide",
                other.name
            );
            err(&key, site_line, msg);
        }
        sites.push(Site { name: name.clone(), ranges: merged });
    }
    sites
}

/// One range, normalised (host bits cleared); `None`, with an error, when Graph
/// would refuse it.
fn range(
    cidr: &Spanned<String>,
    key: &str,
    lines: &Lines,
    err: &mut impl FnMut(&str, usize, String),
    warnings: &mut Vec<ConfigWarning>,
) -> Option<IpNet> {
    let line = lines.at(cidr.span().start);
    let text = cidr.get_ref().trim();
    let Ok(net) = text.parse::<IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from)) else {
        err(key, line, format!("'{text}' is not a CIDR range (like 203.0.113.10/32 or 2001:db8::/48)"));
        return None;
    };
    if net.prefix_len() == 0 {
        err(key, line, format!("'{text}' is every address; a trusted site must be specific"));
        return None;
    }
    // "Only CIDR masks greater than /8 are allowed" (Microsoft Entra, named locations).
    if net.prefix_len() <= 8 {
        let msg = format!("'{text}' has a /{} prefix; Graph rejects prefixes of /8 or shorter", net.prefix_len());
        err(key, line, msg);
        return None;
    }
    let mut warn = |message: String| warnings.push(ConfigWarning { key: key.to_string(), line, message });
    if net.trunc() != net {
        warn(format!("'{text}' has host bits set; using {}", net.trunc()));
    }
    if let Some(why) = non_public_reason(&net) {
        warn(format!("'{text}' is a {why} range; a public egress IP is never one"));
    }
    Some(net.trunc())
}

/// Ranges that are never a public egress IP.
pub fn non_public_reason(net: &IpNet) -> Option<&'static str> {
    match net {
        IpNet::V4(n) => {
            let a = n.network();
            let o = a.octets();
            if a.is_loopback() {
                Some("loopback")
            } else if a.is_private() {
                Some("private")
            } else if a.is_link_local() {
                Some("link-local")
            } else if matches!(o, [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]) {
                Some("documentation")
            } else if o[0] == 100 && (64..128).contains(&o[1]) {
                Some("carrier-grade NAT")
            } else {
                None
            }
        }
        IpNet::V6(n) => {
            let s = n.network().segments();
            if n.network().is_loopback() {
                Some("loopback")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("unique-local (private)")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("documentation")
            } else {
                None
            }
        }
    }
}
