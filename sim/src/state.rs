//! The simulator's mutable state: tenants, tokens, faults and the journal.

use crate::estate::{Estate, TenantSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Who makes a write, as the audit log will name them.
#[derive(Clone, Debug, Serialize, Deserialize)]
/// On the wire (the `/_sim/tenants/{id}/edit` body, `docs/estate-format.md`):
/// `{"kind": "user", "id", "displayName", "userPrincipalName"}` or
/// `{"kind": "app", "appId", "displayName"}`.
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind")]
pub enum Actor {
    User { id: String, display_name: String, user_principal_name: String },
    App { app_id: String, display_name: String },
}

impl Actor {
    /// `initiatedBy` as Graph writes it in a `directoryAudit`.
    pub fn initiated_by(&self) -> Value {
        match self {
            Actor::User { id, display_name, user_principal_name } => json!({
                "user": {"id": id, "displayName": display_name,
                          "userPrincipalName": user_principal_name, "ipAddress": "203.0.113.77"},
                "app": null
            }),
            Actor::App { app_id, display_name } => json!({
                "user": null,
                "app": {"appId": app_id, "displayName": display_name,
                        "servicePrincipalId": app_id, "servicePrincipalName": null}
            }),
        }
    }
}

/// Injected faults. Every field can be changed at run time.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Added to every Graph and token response.
    pub latency_ms: u64,
    /// Fraction (0..1) of Graph requests answered 429 or 503 at random, without Retry-After.
    pub error_rate: f64,
    /// When not empty, `errorRate` applies only to requests whose path (after the
    /// version, e.g. `tenantRelationships/`) starts with one of these.
    pub error_paths: Vec<String>,
    /// While set, every CA request is answered 429 until this many ms after the storm began.
    pub storm_ms: u64,
    /// Token endpoint failures.
    pub token_failure: Option<TokenFailure>,
    /// The next N Graph GET responses carry a truncated JSON body.
    pub malformed_responses: u32,
    /// Paging links (`$skiptoken`) answer 404, as an expired skip token does.
    pub broken_next_links: bool,
    /// Enforce the CA limit of 1 request/second per tenant (on by default in `start`).
    pub ca_throttling: bool,
    /// Graph's replication lag: for this many ms after a write, a read of that
    /// policy or named location returns the version from before the write, and a
    /// named location younger than this cannot be referenced yet (error 1040).
    /// Deterministic, so tests are reproducible.
    pub replication_lag_ms: u64,
    /// Writes (POST, PATCH, DELETE) of policies or named locations with one of these
    /// display names are answered 400: a deterministic failing write for tests.
    pub refuse_writes_to: Vec<String>,
    /// What If answers the opposite `policyApplies` for policies with these display
    /// names, as Graph does when it knows what caguard cannot read (a nested group,
    /// a directory role, the legacy MFA trusted IPs): a deterministic disagreement.
    #[serde(default)]
    pub what_if_knows_better: Vec<String>,
}

/// Makes the token endpoint refuse requests.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenFailure {
    /// `invalid_grant`, `invalid_client` or any other OAuth error code.
    pub error: String,
    /// Only for this tenant; all tenants when absent.
    pub tenant: Option<String>,
    /// Fail this many requests, then recover; forever when absent.
    pub remaining: Option<u32>,
}

/// One received request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub seq: u64,
    /// Milliseconds since the simulator started, on arrival.
    pub at_ms: f64,
    pub tenant: Option<String>,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// A Conditional Access endpoint (policies, named locations, evaluate): 1 rps per tenant.
    pub ca: bool,
    /// Part of a `$batch`.
    pub in_batch: bool,
    /// `graph` (a Graph request, alone or inside a batch), `batch` (the `$batch` POST itself) or `token`.
    pub kind: String,
    /// The request's `Prefer` header, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer: Option<String>,
}

impl JournalEntry {
    /// A request that changes something (What If's `evaluate` is a POST that only reads).
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE")
            && self.kind == "graph"
            && !self.path.to_ascii_lowercase().ends_with("conditionalaccess/evaluate")
    }
}

pub(crate) struct TokenInfo {
    pub tenant: String,
    pub actor: Actor,
    pub expires: Instant,
}

pub(crate) struct Tenant {
    pub spec: TenantSpec,
    /// Arrival time of the last CA request that was let through.
    pub last_ca: Option<Instant>,
    /// Policies and named locations written lately, by lower-case id: what a read
    /// returns while the write replicates (see `Faults::replication_lag_ms`).
    pub recent: HashMap<String, Recent>,
    /// When the last sign-in log reads arrived (Graph allows about 5 per 10 s).
    pub sign_in_reads: Vec<Instant>,
}

/// One object's state before its latest write.
#[derive(Clone, Debug)]
pub(crate) struct Recent {
    /// The object before the write; `None` when the write created it.
    pub before: Option<Value>,
    pub at: Instant,
}

impl Tenant {
    pub fn new(spec: TenantSpec) -> Self {
        Tenant { spec, last_ca: None, recent: HashMap::new(), sign_in_reads: Vec::new() }
    }

    /// The groups `user` (object id) is a member of. The estate's groups hold users
    /// directly, so this is also the transitive membership.
    pub fn groups_of(&self, user: &str) -> Vec<&Value> {
        self.spec.groups.iter().filter(|g| has_member(g, user)).collect()
    }

    /// The directory roles `user` holds (activated roles, with `roleTemplateId`).
    pub fn roles_of(&self, user: &str) -> Vec<&Value> {
        self.spec.directory_roles.iter().filter(|r| has_member(r, user)).collect()
    }

    /// What What If and the sign-in log resolve for `user`: group ids and role
    /// template ids (Conditional Access targets roles by template id), lower case.
    pub fn memberships(&self, user: &str) -> (Vec<String>, Vec<String>) {
        let ids = |objects: Vec<&Value>, key: &str| -> Vec<String> {
            objects.iter().filter_map(|o| o[key].as_str()).map(str::to_ascii_lowercase).collect()
        };
        (ids(self.groups_of(user), "id"), ids(self.roles_of(user), "roleTemplateId"))
    }

    /// Remembers the state before a write, when a lag is simulated.
    pub fn wrote(&mut self, lag_ms: u64, id: &str, before: Option<Value>, at: Instant) {
        if lag_ms > 0 {
            self.recent.insert(id.to_ascii_lowercase(), Recent { before, at });
        }
    }

    /// The write to `id` that is still replicating at `now`, if any.
    pub fn replicating(&self, lag_ms: u64, id: &str, now: Instant) -> Option<&Recent> {
        let r = self.recent.get(&id.to_ascii_lowercase())?;
        (now.duration_since(r.at).as_millis() < u128::from(lag_ms)).then_some(r)
    }

    /// `items` as a reader sees them at `now`: objects still replicating read as
    /// they were before their write (absent if just created, present if just deleted).
    pub fn as_read(&self, lag_ms: u64, items: &[Value], now: Instant) -> Vec<Value> {
        if lag_ms == 0 || self.recent.is_empty() {
            return items.to_vec();
        }
        let id_of = |v: &Value| v["id"].as_str().unwrap_or_default().to_ascii_lowercase();
        let mut out: Vec<Value> = items
            .iter()
            .filter_map(|v| match self.replicating(lag_ms, &id_of(v), now) {
                Some(r) => r.before.clone(),
                None => Some(v.clone()),
            })
            .collect();
        for (id, r) in &self.recent {
            let deleted = !items.iter().any(|v| id_of(v) == *id);
            if deleted && self.replicating(lag_ms, id, now).is_some() {
                out.extend(r.before.clone());
            }
        }
        out
    }
}

pub(crate) struct State {
    pub started: Instant,
    pub msp_tenant_id: String,
    pub apps: Vec<crate::estate::App>,
    pub refresh_tokens: Vec<crate::estate::RefreshTokenSpec>,
    pub relationships: Vec<Value>,
    pub tenants: BTreeMap<String, Tenant>,
    pub cipp_sites: Vec<crate::estate::CippSite>,
    pub tokens: HashMap<String, TokenInfo>,
    pub journal: Vec<JournalEntry>,
    pub faults: Faults,
    pub storm_started: Option<Instant>,
    pub outbox: Vec<Value>,
    /// Partner Center webhook registration (per partner tenant).
    pub pc_registrations: HashMap<String, Value>,
    pub token_lifetime_secs: u64,
    pub page_size: usize,
    seq: u64,
}

impl State {
    pub fn new(estate: Estate, faults: Faults, token_lifetime_secs: u64, page_size: usize) -> Self {
        let tenants = estate.tenants.into_iter().map(|spec| (spec.id.clone(), Tenant::new(spec))).collect();
        State {
            started: Instant::now(),
            msp_tenant_id: estate.msp_tenant_id,
            apps: estate.apps,
            refresh_tokens: estate.refresh_tokens,
            relationships: estate.relationships,
            tenants,
            cipp_sites: estate.cipp_sites,
            tokens: HashMap::new(),
            journal: Vec::new(),
            storm_started: (faults.storm_ms > 0).then(Instant::now),
            faults,
            outbox: Vec::new(),
            pc_registrations: HashMap::new(),
            token_lifetime_secs,
            page_size,
            seq: 0,
        }
    }

    pub fn export(&self) -> Estate {
        Estate {
            msp_tenant_id: self.msp_tenant_id.clone(),
            apps: self.apps.clone(),
            refresh_tokens: self.refresh_tokens.clone(),
            relationships: self.relationships.clone(),
            tenants: self.tenants.values().map(|t| t.spec.clone()).collect(),
            cipp_sites: self.cipp_sites.clone(),
        }
    }

    pub fn ms_since_start(&self, at: Instant) -> f64 {
        at.duration_since(self.started).as_secs_f64() * 1000.0
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        at: Instant,
        tenant: Option<&str>,
        method: &str,
        path: &str,
        query: &str,
        status: u16,
        in_batch: bool,
        kind: &str,
    ) {
        self.seq += 1;
        let entry = JournalEntry {
            seq: self.seq,
            at_ms: self.ms_since_start(at),
            tenant: tenant.map(str::to_string),
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            status,
            ca: is_ca_path(path),
            in_batch,
            kind: kind.to_string(),
            prefer: None,
        };
        self.journal.push(entry);
    }

    /// Whether a CA storm is raging now.
    pub fn storm_active(&self, now: Instant) -> bool {
        match self.storm_started {
            Some(start) if self.faults.storm_ms > 0 => {
                now.duration_since(start).as_millis() < u128::from(self.faults.storm_ms)
            }
            _ => false,
        }
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.storm_started = (faults.storm_ms > 0).then(Instant::now);
        self.faults = faults;
    }
}

/// True for the endpoints under the 1 request/second/tenant CA limit.
pub fn is_ca_path(path: &str) -> bool {
    path.to_ascii_lowercase().contains("/identity/conditionalaccess/")
}

/// Graph-style timestamp with 7 fractional digits, in UTC.
pub fn now_stamp() -> String {
    use chrono::Timelike;
    let now = chrono::Utc::now();
    format!("{}.{:07}Z", now.format("%Y-%m-%dT%H:%M:%S"), now.nanosecond() % 1_000_000_000 / 100)
}

/// A random v4-shaped GUID.
pub fn new_guid() -> String {
    guid_from(std::array::from_fn(|_| fastrand::u8(..)))
}

/// A v4-shaped GUID from 16 bytes (version and variant bits set).
pub fn guid_from(b: [u8; 16]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-4{:01x}{:02x}-{:01x}{:01x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6] & 0x0f,
        b[7],
        8 | (b[8] & 0x3),
        b[8] >> 4,
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// Whether a group or role lists `user` (object id) among its `members`.
fn has_member(object: &Value, user: &str) -> bool {
    object["members"]
        .as_array()
        .is_some_and(|m| m.iter().any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(user))))
}
