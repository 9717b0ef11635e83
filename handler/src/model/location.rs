//! `namedLocation`: `ipNamedLocation` and `countryNamedLocation`.

use super::graph_object;

/// `@odata.type` of an IP named location.
pub const IP_NAMED_LOCATION: &str = "#microsoft.graph.ipNamedLocation";
/// `@odata.type` of a country named location.
pub const COUNTRY_NAMED_LOCATION: &str = "#microsoft.graph.countryNamedLocation";
pub const IPV4_CIDR_RANGE: &str = "#microsoft.graph.iPv4CidrRange";
pub const IPV6_CIDR_RANGE: &str = "#microsoft.graph.iPv6CidrRange";

graph_object! {
    /// A `namedLocation`. Graph tells the two kinds apart by `@odata.type`;
    /// one struct carries both kinds' properties so neither loses a field.
    pub struct NamedLocation {
        #[serde(rename = "@odata.type")]
        odata_type: String,
        id: String,
        display_name: String,
        created_date_time: String,
        modified_date_time: String,
        // ipNamedLocation
        is_trusted: bool,
        ip_ranges: Vec<IpRange>,
        // countryNamedLocation
        countries_and_regions: Vec<String>,
        include_unknown_countries_and_regions: bool,
        country_lookup_method: String,
    }
}

graph_object! {
    /// `iPv4CidrRange` / `iPv6CidrRange`.
    pub struct IpRange {
        #[serde(rename = "@odata.type")]
        odata_type: String,
        cidr_address: String,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamedLocationKind {
    Ip,
    Country,
    Unknown,
}

impl NamedLocation {
    pub fn kind(&self) -> NamedLocationKind {
        match self.odata_type.as_ref().map(String::as_str) {
            Some(IP_NAMED_LOCATION) => NamedLocationKind::Ip,
            Some(COUNTRY_NAMED_LOCATION) => NamedLocationKind::Country,
            _ if !self.ip_ranges.is_absent() => NamedLocationKind::Ip,
            _ if !self.countries_and_regions.is_absent() => NamedLocationKind::Country,
            _ => NamedLocationKind::Unknown,
        }
    }

    pub fn name(&self) -> &str {
        self.display_name.as_ref().map_or("", String::as_str)
    }

    pub fn id(&self) -> &str {
        self.id.as_ref().map_or("", String::as_str)
    }

    /// The CIDR strings of an IP location, in Graph's order.
    pub fn cidrs(&self) -> Vec<&str> {
        self.ip_ranges
            .as_ref()
            .map(|r| r.iter().filter_map(|r| r.cidr_address.as_ref().map(String::as_str)).collect())
            .unwrap_or_default()
    }
}

impl IpRange {
    /// The range typed for its address family, as Graph expects it.
    pub fn from_net(net: ipnet::IpNet) -> Self {
        let odata_type = match net {
            ipnet::IpNet::V4(_) => IPV4_CIDR_RANGE,
            ipnet::IpNet::V6(_) => IPV6_CIDR_RANGE,
        };
        IpRange {
            odata_type: odata_type.to_string().into(),
            cidr_address: net.to_string().into(),
            extra: Default::default(),
        }
    }
}
