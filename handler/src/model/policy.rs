//! `conditionalAccessPolicy` and its condition sets.
//! Shapes: <https://learn.microsoft.com/graph/api/resources/conditionalaccesspolicy>.

use super::{graph_enum, graph_object};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

graph_enum! {
    /// `conditionalAccessPolicyState`.
    pub enum PolicyState {
        Enabled => "enabled",
        Disabled => "disabled",
        ReportOnly => "enabledForReportingButNotEnforced",
    }
}

graph_enum! {
    /// `conditionalAccessGrantControl`.
    pub enum BuiltInControl {
        Block => "block",
        Mfa => "mfa",
        CompliantDevice => "compliantDevice",
        DomainJoinedDevice => "domainJoinedDevice",
        ApprovedApplication => "approvedApplication",
        CompliantApplication => "compliantApplication",
        PasswordChange => "passwordChange",
        UnknownFutureValue => "unknownFutureValue",
    }
}

graph_enum! {
    /// `conditionalAccessClientApp`.
    pub enum ClientAppType {
        All => "all",
        Browser => "browser",
        MobileAppsAndDesktopClients => "mobileAppsAndDesktopClients",
        ExchangeActiveSync => "exchangeActiveSync",
        EasSupported => "easSupported",
        Other => "other",
        UnknownFutureValue => "unknownFutureValue",
    }
}

graph_enum! {
    /// `conditionalAccessDevicePlatform`.
    pub enum DevicePlatform {
        Android => "android",
        Ios => "iOS",
        Windows => "windows",
        WindowsPhone => "windowsPhone",
        MacOs => "macOS",
        Linux => "linux",
        All => "all",
        UnknownFutureValue => "unknownFutureValue",
    }
}

graph_enum! {
    /// `riskLevel`.
    pub enum RiskLevel {
        Low => "low",
        Medium => "medium",
        High => "high",
        Hidden => "hidden",
        None => "none",
        UnknownFutureValue => "unknownFutureValue",
    }
}

graph_enum! {
    /// One flag of `conditionalAccessGuestOrExternalUserTypes`.
    pub enum GuestOrExternalUserType {
        None => "none",
        InternalGuest => "internalGuest",
        B2bCollaborationGuest => "b2bCollaborationGuest",
        B2bCollaborationMember => "b2bCollaborationMember",
        B2bDirectConnectUser => "b2bDirectConnectUser",
        OtherExternalUser => "otherExternalUser",
        ServiceProvider => "serviceProvider",
        UnknownFutureValue => "unknownFutureValue",
    }
}

graph_enum! {
    /// `conditionalAccessExternalTenantsMembershipKind`.
    pub enum MembershipKind {
        All => "all",
        Enumerated => "enumerated",
        UnknownFutureValue => "unknownFutureValue",
    }
}

graph_enum! {
    /// `signInFrequencyInterval`.
    pub enum FrequencyInterval {
        TimeBased => "timeBased",
        EveryTime => "everyTime",
        UnknownFutureValue => "unknownFutureValue",
    }
}

graph_enum! {
    /// `signinFrequencyType`.
    pub enum SignInFrequencyType {
        Days => "days",
        Hours => "hours",
        UnknownFutureValue => "unknownFutureValue",
    }
}

graph_enum! {
    /// `signInFrequencyAuthenticationType`.
    pub enum SignInFrequencyAuthenticationType {
        PrimaryAndSecondaryAuthentication => "primaryAndSecondaryAuthentication",
        SecondaryAuthentication => "secondaryAuthentication",
        UnknownFutureValue => "unknownFutureValue",
    }
}

graph_object! {
    /// `conditionalAccessPolicy`.
    pub struct ConditionalAccessPolicy {
        id: String,
        display_name: String,
        created_date_time: String,
        modified_date_time: String,
        template_id: String,
        state: PolicyState,
        conditions: ConditionSet,
        grant_controls: GrantControls,
        session_controls: SessionControls,
    }
}

graph_object! {
    /// `conditionalAccessConditionSet`.
    pub struct ConditionSet {
        users: UsersCondition,
        applications: ApplicationsCondition,
        locations: LocationsCondition,
        platforms: PlatformsCondition,
        client_app_types: Vec<ClientAppType>,
        sign_in_risk_levels: Vec<RiskLevel>,
        user_risk_levels: Vec<RiskLevel>,
        service_principal_risk_levels: Vec<RiskLevel>,
    }
}

graph_object! {
    /// `conditionalAccessUsers`.
    pub struct UsersCondition {
        include_users: Vec<String>,
        exclude_users: Vec<String>,
        include_groups: Vec<String>,
        exclude_groups: Vec<String>,
        include_roles: Vec<String>,
        exclude_roles: Vec<String>,
        include_guests_or_external_users: GuestsOrExternalUsers,
        exclude_guests_or_external_users: GuestsOrExternalUsers,
    }
}

graph_object! {
    /// `conditionalAccessGuestsOrExternalUsers`.
    pub struct GuestsOrExternalUsers {
        guest_or_external_user_types: GuestTypes,
        external_tenants: ExternalTenants,
    }
}

graph_object! {
    /// `conditionalAccessExternalTenants`: either
    /// `#microsoft.graph.conditionalAccessAllExternalTenants` or
    /// `#microsoft.graph.conditionalAccessEnumeratedExternalTenants` (which has `members`).
    pub struct ExternalTenants {
        #[serde(rename = "@odata.type")]
        odata_type: String,
        membership_kind: MembershipKind,
        members: Vec<String>,
    }
}

/// `@odata.type` of an enumerated external-tenants set.
pub const ENUMERATED_EXTERNAL_TENANTS: &str = "#microsoft.graph.conditionalAccessEnumeratedExternalTenants";
/// `@odata.type` of the all-external-tenants set.
pub const ALL_EXTERNAL_TENANTS: &str = "#microsoft.graph.conditionalAccessAllExternalTenants";

graph_object! {
    /// `conditionalAccessApplications`.
    pub struct ApplicationsCondition {
        include_applications: Vec<String>,
        exclude_applications: Vec<String>,
        include_user_actions: Vec<String>,
    }
}

graph_object! {
    /// `conditionalAccessLocations`.
    pub struct LocationsCondition {
        include_locations: Vec<String>,
        exclude_locations: Vec<String>,
    }
}

graph_object! {
    /// `conditionalAccessPlatforms`.
    pub struct PlatformsCondition {
        include_platforms: Vec<DevicePlatform>,
        exclude_platforms: Vec<DevicePlatform>,
    }
}

graph_object! {
    /// `conditionalAccessGrantControls`.
    pub struct GrantControls {
        operator: String,
        built_in_controls: Vec<BuiltInControl>,
        custom_authentication_factors: Vec<String>,
        terms_of_use: Vec<String>,
    }
}

graph_object! {
    /// `conditionalAccessSessionControls`.
    pub struct SessionControls {
        sign_in_frequency: SignInFrequency,
    }
}

graph_object! {
    /// `signInFrequencySessionControl`.
    pub struct SignInFrequency {
        is_enabled: bool,
        value: i64,
        #[serde(rename = "type")]
        kind: SignInFrequencyType,
        authentication_type: SignInFrequencyAuthenticationType,
        frequency_interval: FrequencyInterval,
    }
}

/// `conditionalAccessGuestOrExternalUserTypes`: a flags enum that Graph
/// writes as one comma-separated string, e.g. `"internalGuest,serviceProvider"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestTypes(pub Vec<GuestOrExternalUserType>);

impl GuestTypes {
    pub fn contains(&self, t: &GuestOrExternalUserType) -> bool {
        self.0.contains(t)
    }

    /// Adds a flag if missing, keeping every flag already present and its order.
    pub fn insert(&mut self, t: GuestOrExternalUserType) -> bool {
        if self.contains(&t) {
            return false;
        }
        self.0.retain(|f| *f != GuestOrExternalUserType::None);
        self.0.push(t);
        true
    }
}

impl Serialize for GuestTypes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let joined: Vec<&str> = self.0.iter().map(|t| t.as_str()).collect();
        s.serialize_str(&joined.join(","))
    }
}

impl<'de> Deserialize<'de> for GuestTypes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(GuestTypes(
            s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|p| p.parse().expect("infallible")).collect(),
        ))
    }
}

impl ConditionalAccessPolicy {
    /// The users condition, if the policy has one.
    pub fn users(&self) -> Option<&UsersCondition> {
        self.conditions.as_ref()?.users.as_ref()
    }

    pub fn name(&self) -> &str {
        self.display_name.as_ref().map_or("", String::as_str)
    }

    pub fn id(&self) -> &str {
        self.id.as_ref().map_or("", String::as_str)
    }
}

/// Reads a `Maybe<Vec<String>>` as a slice (absent and null are empty).
pub fn list(v: &super::Maybe<Vec<String>>) -> &[String] {
    v.as_ref().map_or(&[], Vec::as_slice)
}
