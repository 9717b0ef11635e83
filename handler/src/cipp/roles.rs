//! C2, complete: every CIPP role has an `AccessIPRanges` row, in the form CIPP's
//! own save accepts.
//!
//! From CIPP's source (CyberDrain/CIPP `backend/`):
//! - The roles are the defaults in `Config/cipp-roles.json` (readonly, editor,
//!   admin, superadmin) and the rows of the `CustomRoles` table (PartitionKey
//!   `CustomRoles`, RowKey the role in lower case).
//! - `Get-CIPPRoleIPRanges` (`Modules/CIPPCore/Public/Authentication/`) combines the
//!   ranges of a user's roles; a role with no row adds none, and a user whose roles
//!   have none may sign in from **any IP**. `superadmin` is never restricted.
//! - `Invoke-ExecCustomRole` (`Modules/CIPPHTTP/…/Settings/`) keeps only ranges that
//!   match [`CIPP_RANGE_PATTERN`], and **deletes** the row when none are left, so
//!   clearing a role's ranges in CIPP removes its row, and a compressed IPv6 range
//!   (`2001:db8::/48`) is dropped by the next save in CIPP. `Invoke-ExecApiClient`
//!   applies the same pattern to an API client's ranges (C1).

use ipnet::IpNet;

/// CIPP's check on a saved range, verbatim from `Invoke-ExecCustomRole` and `Invoke-ExecApiClient`.
pub const CIPP_RANGE_PATTERN: &str =
    r"^(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?:/\d{1,2})?|(?:[0-9A-Fa-f]{1,4}:){1,7}[0-9A-Fa-f]{1,4}(?:/\d{1,3})?)$";

/// CIPP's built-in roles (`backend/Config/cipp-roles.json`).
pub const DEFAULT_ROLES: [&str; 4] = ["readonly", "editor", "admin", "superadmin"];
/// The role CIPP never restricts by IP, and refuses to give ranges.
pub const SUPERADMIN: &str = "superadmin";
pub const CUSTOM_ROLES: &str = "CustomRoles";

/// A range as caguard writes it for CIPP: IPv4 as `a.b.c.d/n`; IPv6 as all eight
/// groups, without `::` (which CIPP's pattern refuses), each without leading zeros.
pub fn cipp_form(net: &IpNet) -> String {
    match net {
        IpNet::V4(n) => format!("{}/{}", n.addr(), n.prefix_len()),
        IpNet::V6(n) => {
            let groups: Vec<String> = n.addr().segments().iter().map(|g| format!("{g:x}")).collect();
            format!("{}/{}", groups.join(":"), n.prefix_len())
        }
    }
}

/// What CIPP's pattern accepts, written out (the tests run CIPP's own pattern
/// against it): a dotted quad of 1–3 digits, or 2–8 groups of 1–4 hex digits
/// joined by single colons; either with an optional `/` and 1–2 (IPv4) or 1–3 digits.
pub fn cipp_accepts(s: &str) -> bool {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let digits = |p: &str, max: usize| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit());
    let quad = addr.split('.').collect::<Vec<_>>();
    if quad.len() == 4 && quad.iter().all(|g| digits(g, 3)) {
        return prefix.is_none_or(|p| digits(p, 2));
    }
    let groups = addr.split(':').collect::<Vec<_>>();
    let hex = |g: &str| !g.is_empty() && g.len() <= 4 && g.bytes().all(|b| b.is_ascii_hexdigit());
    (2..=8).contains(&groups.len()) && groups.iter().all(|g| hex(g)) && prefix.is_none_or(|p| digits(p, 3))
}

/// The roles that should have a row but have none (superadmin never does).
pub fn missing_rows(roles: &[String], rows: &[String]) -> Vec<String> {
    let mut out: Vec<String> = roles
        .iter()
        .map(|r| r.to_ascii_lowercase())
        .filter(|r| r != SUPERADMIN && !rows.iter().any(|k| k.eq_ignore_ascii_case(r)))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_written_in_full_and_accepted() {
        let net: IpNet = "2001:db8:10::/48".parse().unwrap();
        assert_eq!(cipp_form(&net), "2001:db8:10:0:0:0:0:0/48");
        assert!(cipp_accepts(&cipp_form(&net)));
        assert!(!cipp_accepts("2001:db8:10::/48"), "CIPP drops the compressed form");
        assert!(cipp_accepts("203.0.113.0/24") && cipp_accepts("203.0.113.7"));
        assert!(!cipp_accepts("203.0.113.0/124") && !cipp_accepts("any"));
    }

    #[test]
    fn every_role_but_superadmin_needs_a_row() {
        let roles: Vec<String> = ["readonly", "editor", "admin", "superadmin", "Helpdesk"].map(String::from).into();
        assert_eq!(missing_rows(&roles, &["editor".into()]), ["admin", "helpdesk", "readonly"]);
    }
}
