use azure_core::credentials::TokenCredential;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Map, Value};
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;

/// The storage REST version caguard speaks (supports Entra auth).
const VERSION: &str = "2020-12-06";
/// Azurite's well-known development account.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How requests are authorised.
#[derive(Clone)]
pub enum Auth {
    /// The account key from a connection string (Azurite, local runs).
    SharedKey { account: String, key: Vec<u8> },
    /// An Entra token for `https://storage.azure.com/.default` (managed identity in Azure).
    Token(Arc<dyn TokenCredential>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::SharedKey { account, .. } => write!(f, "SharedKey {{ account: {account}, key: *** }}"),
            Auth::Token(_) => f.write_str("Token"),
        }
    }
}

/// A table error, naming the table and (where there is one) the row.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("table {table}{}: HTTP {status} {code}: {message}", key.as_ref().map(|k| format!(" row {k}")).unwrap_or_default())]
pub struct TableError {
    pub table: String,
    pub key: Option<String>,
    pub status: u16,
    /// `TableNotFound`, `EntityAlreadyExists`, `UpdateConditionNotSatisfied`, `AuthenticationFailed`, …
    pub code: String,
    pub message: String,
}

impl TableError {
    pub fn is_precondition_failed(&self) -> bool {
        self.status == 412
    }
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
    pub fn is_table_missing(&self) -> bool {
        self.code == "TableNotFound"
    }
    pub fn is_auth_failure(&self) -> bool {
        self.status == 401 || self.status == 403
    }
}

/// One entity: its properties (with `odata.type` annotations as the service sends them) and ETag.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    pub partition_key: String,
    pub row_key: String,
    pub etag: String,
    /// When the service last wrote the entity (its `Timestamp`).
    pub timestamp: Option<String>,
    /// Every property except the keys, `Timestamp` and `odata.*` metadata.
    pub properties: Map<String, Value>,
}

impl Entity {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str)
    }

    fn from_json(mut v: Map<String, Value>, etag_header: Option<String>) -> Entity {
        let etag =
            etag_header.or_else(|| v.get("odata.etag").and_then(Value::as_str).map(str::to_string)).unwrap_or_default();
        let take = |v: &mut Map<String, Value>, k: &str| {
            v.remove(k).and_then(|x| x.as_str().map(str::to_string)).unwrap_or_default()
        };
        let partition_key = take(&mut v, "PartitionKey");
        let row_key = take(&mut v, "RowKey");
        let timestamp = v.get("Timestamp").and_then(Value::as_str).map(str::to_string);
        v.retain(|k, _| !k.starts_with("odata.") && k != "Timestamp" && k != "Timestamp@odata.type");
        Entity { partition_key, row_key, etag, timestamp, properties: v }
    }
}

/// A client for one storage account's Table service.
#[derive(Clone, Debug)]
pub struct TableClient {
    http: reqwest::Client,
    /// `https://<account>.table.core.windows.net` or `http://127.0.0.1:10002/devstoreaccount1`.
    endpoint: String,
    auth: Auth,
}

fn quote_key(k: &str) -> String {
    let escaped = k.replace('\'', "''");
    url::form_urlencoded::byte_serialize(escaped.as_bytes()).collect::<String>().replace('+', "%20")
}

impl TableClient {
    pub fn new(endpoint: &str, auth: Auth) -> Self {
        TableClient { http: super::http_client(), endpoint: endpoint.trim_end_matches('/').to_string(), auth }
    }

    /// From a connection string (`UseDevelopmentStorage=true`, or `AccountName=…;AccountKey=…;TableEndpoint=…`
    /// / `DefaultEndpointsProtocol=…;EndpointSuffix=…`).
    pub fn from_connection_string(cs: &str) -> Result<Self, String> {
        let (endpoint, auth) = super::parse_connection_string(cs, "table", 10002)?;
        Ok(Self::new(&endpoint, auth))
    }

    /// The path part of a resource below the endpoint, as the signature needs it.
    fn canonical_resource(&self, path_and_query: &str) -> String {
        let endpoint_path =
            url::Url::parse(&self.endpoint).map(|u| u.path().trim_end_matches('/').to_string()).unwrap_or_default();
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let account = match &self.auth {
            Auth::SharedKey { account, .. } => account.clone(),
            Auth::Token(_) => String::new(),
        };
        let mut resource = format!("/{account}{endpoint_path}/{}", path.trim_start_matches('/'));
        // SharedKeyLite for tables keeps only the `comp` parameter.
        if let Some(comp) = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "comp") {
            resource.push_str(&format!("?comp={}", comp.1));
        }
        resource
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        table: &str,
        key: Option<&str>,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<reqwest::Response, TableError> {
        let url = format!("{}/{}", self.endpoint, path_and_query.trim_start_matches('/'));
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let mut req = self
            .http
            .request(method, &url)
            .header("x-ms-date", &date)
            .header("x-ms-version", VERSION)
            .header("Accept", "application/json;odata=minimalmetadata")
            .header("DataServiceVersion", "3.0;NetFx")
            .header("MaxDataServiceVersion", "3.0;NetFx");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let err = |status: u16, code: &str, message: String| TableError {
            table: table.into(),
            key: key.map(str::to_string),
            status,
            code: code.into(),
            message,
        };
        req = match &self.auth {
            Auth::SharedKey { account, key: secret } => {
                let to_sign =
                    format!("{date}\n{}", self.canonical_resource(path_and_query.split('?').next().unwrap_or("")));
                let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| err(0, "BadKey", e.to_string()))?;
                mac.update(to_sign.as_bytes());
                let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                req.header("Authorization", format!("SharedKeyLite {account}:{signature}"))
            }
            Auth::Token(credential) => {
                let token = credential
                    .get_token(&["https://storage.azure.com/.default"], None)
                    .await
                    .map_err(|e| err(401, "TokenUnavailable", e.to_string()))?;
                req.bearer_auth(token.token.secret())
            }
        };
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| err(0, "Transport", e.to_string()))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code =
            parsed.pointer("/odata.error/code").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| {
                match status {
                    404 => "ResourceNotFound",
                    412 => "UpdateConditionNotSatisfied",
                    403 => "AuthenticationFailed",
                    _ => "Error",
                }
                .to_string()
            });
        let message = parsed
            .pointer("/odata.error/message/value")
            .and_then(Value::as_str)
            .map_or_else(|| text.chars().take(200).collect(), |m| m.lines().next().unwrap_or("").to_string());
        Err(err(status, &code, message))
    }

    /// Creates the table; an existing one is fine.
    pub async fn create_table(&self, table: &str) -> Result<(), TableError> {
        match self
            .send(
                Method::POST,
                "Tables",
                table,
                None,
                &[("Prefer", "return-no-content".into())],
                Some(&serde_json::json!({ "TableName": table })),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_table(&self, table: &str) -> Result<(), TableError> {
        self.send(Method::DELETE, &format!("Tables('{}')", quote_key(table)), table, None, &[], None).await.map(|_| ())
    }

    fn entity_path(table: &str, pk: &str, rk: &str) -> String {
        format!("{table}(PartitionKey='{}',RowKey='{}')", quote_key(pk), quote_key(rk))
    }

    pub async fn get(&self, table: &str, pk: &str, rk: &str) -> Result<Option<Entity>, TableError> {
        match self.send(Method::GET, &Self::entity_path(table, pk, rk), table, Some(rk), &[], None).await {
            Ok(resp) => {
                let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string);
                let body: Map<String, Value> = resp.json().await.map_err(|e| TableError {
                    table: table.into(),
                    key: Some(rk.into()),
                    status: 200,
                    code: "Malformed".into(),
                    message: e.to_string(),
                })?;
                Ok(Some(Entity::from_json(body, etag)))
            }
            Err(e) if e.status == 404 && !e.is_table_missing() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every entity matching an OData `$filter` (all pages).
    pub async fn query(&self, table: &str, filter: Option<&str>) -> Result<Vec<Entity>, TableError> {
        let mut out = Vec::new();
        let mut continuation: Option<(String, String)> = None;
        loop {
            let path = {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                if let Some(f) = filter {
                    q.append_pair("$filter", f);
                }
                if let Some((pk, rk)) = &continuation {
                    q.append_pair("NextPartitionKey", pk);
                    q.append_pair("NextRowKey", rk);
                }
                format!("{table}()?{}", q.finish().replace('+', "%20"))
            };
            let resp = self.send(Method::GET, &path, table, None, &[], None).await?;
            let next = |h: &str| resp.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
            continuation = next("x-ms-continuation-NextPartitionKey")
                .zip(next("x-ms-continuation-NextRowKey").or(Some(String::new())));
            let body: Value = resp.json().await.map_err(|e| TableError {
                table: table.into(),
                key: None,
                status: 200,
                code: "Malformed".into(),
                message: e.to_string(),
            })?;
            for v in body["value"].as_array().cloned().unwrap_or_default() {
                if let Value::Object(m) = v {
                    out.push(Entity::from_json(m, None));
                }
            }
            if continuation.is_none() {
                return Ok(out);
            }
        }
    }

    fn body(pk: &str, rk: &str, properties: &Map<String, Value>) -> Value {
        let mut m = properties.clone();
        m.insert("PartitionKey".into(), Value::String(pk.into()));
        m.insert("RowKey".into(), Value::String(rk.into()));
        Value::Object(m)
    }

    fn etag_of(resp: &reqwest::Response) -> String {
        resp.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    }

    /// Writes an entity with `method` and an optional precondition header; returns the new ETag.
    async fn write(
        &self,
        method: Method,
        path: &str,
        (table, pk, rk): (&str, &str, &str),
        header: Option<(&str, String)>,
        properties: &Map<String, Value>,
    ) -> Result<String, TableError> {
        let headers: Vec<(&str, String)> = header.into_iter().collect();
        let resp = self.send(method, path, table, Some(rk), &headers, Some(&Self::body(pk, rk, properties))).await?;
        Ok(Self::etag_of(&resp))
    }

    /// Inserts a new entity; fails with `EntityAlreadyExists` if the key is taken. Returns the ETag.
    pub async fn insert(
        &self,
        table: &str,
        pk: &str,
        rk: &str,
        properties: &Map<String, Value>,
    ) -> Result<String, TableError> {
        self.write(Method::POST, table, (table, pk, rk), Some(("Prefer", "return-no-content".into())), properties).await
    }

    /// Changes only the given properties, if the entity still has `etag` (`*` for any). Returns the new ETag.
    pub async fn merge(
        &self,
        table: &str,
        pk: &str,
        rk: &str,
        properties: &Map<String, Value>,
        etag: &str,
    ) -> Result<String, TableError> {
        let method = Method::from_bytes(b"MERGE").expect("valid method");
        self.write(
            method,
            &Self::entity_path(table, pk, rk),
            (table, pk, rk),
            Some(("If-Match", etag.into())),
            properties,
        )
        .await
    }

    /// Replaces the entity, if it still has `etag` (`*` for any). Returns the new ETag.
    pub async fn replace(
        &self,
        table: &str,
        pk: &str,
        rk: &str,
        properties: &Map<String, Value>,
        etag: &str,
    ) -> Result<String, TableError> {
        self.write(
            Method::PUT,
            &Self::entity_path(table, pk, rk),
            (table, pk, rk),
            Some(("If-Match", etag.into())),
            properties,
        )
        .await
    }

    /// Inserts or replaces, whatever is there (idempotent writes of records keyed by content).
    pub async fn upsert(
        &self,
        table: &str,
        pk: &str,
        rk: &str,
        properties: &Map<String, Value>,
    ) -> Result<String, TableError> {
        self.write(Method::PUT, &Self::entity_path(table, pk, rk), (table, pk, rk), None, properties).await
    }

    pub async fn delete(&self, table: &str, pk: &str, rk: &str, etag: &str) -> Result<(), TableError> {
        self.send(
            Method::DELETE,
            &Self::entity_path(table, pk, rk),
            table,
            Some(rk),
            &[("If-Match", etag.into())],
            None,
        )
        .await
        .map(|_| ())
    }
}
