//! CIPP's ranges columns: JSON inside a string, encoded by count (`""` for
//! none, a bare string for one, an array for several), and the trusted set in
//! the form caguard writes.

use super::roles;
use crate::config::Config;
use ipnet::IpNet;
use serde_json::Value;

/// Decodes a ranges column with CIPP's rules.
pub fn decode_ranges(raw: &str) -> Result<Vec<String>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(vec![]);
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::String(s)) => Ok(vec![s]),
        Ok(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                other => Err(format!("an entry of the list is {other}, not a string")),
            })
            .collect(),
        Ok(Value::Null) => Ok(vec![]),
        Ok(other) => Err(format!("{other} is neither a string nor an array of strings")),
        Err(_) => Err(format!("'{raw}' is not JSON")),
    }
}

/// Encodes ranges exactly as CIPP does.
pub fn encode_ranges(ranges: &[String]) -> String {
    match ranges {
        [] => String::new(),
        [one] => Value::String(one.clone()).to_string(),
        many => Value::Array(many.iter().cloned().map(Value::String).collect()).to_string(),
    }
}

/// A range as CIPP accepts it: CIDR, or a bare address (a single host).
pub fn parse_range(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("'{s}' is not an IP range"))
}

pub(super) fn is_any(s: &str) -> bool {
    s.trim().eq_ignore_ascii_case("any")
}

/// The trusted ranges as caguard writes them into CIPP's tables ([`roles::cipp_form`]).
pub fn trusted_in_cipp_form(trusted: &[IpNet]) -> Vec<String> {
    trusted.iter().map(roles::cipp_form).collect()
}

/// The trusted set: every configured site's ranges.
pub fn trusted(config: &Config) -> Vec<IpNet> {
    config.sites.iter().flat_map(|s| s.ranges.iter().copied()).collect()
}
