//! The inbound SCIM 2.0 server (RFC 7644) at `/scim/v2`: how an upstream
//! identity provider or HR system feeds the directory.
//!
//! Every response, failures included, is `application/scim+json`; every
//! failure is a SCIM error body with a 4xx status unless the store itself
//! failed. A request either changes the directory in one store write or
//! changes nothing. Resource versions are served as weak ETags
//! (`W/"N"`, also `meta.version`) and honoured in `If-Match` and
//! `If-None-Match`.
//!
//! A search that no index answers (`/.search`, a filter other than an
//! equality on an indexed attribute, a sort) reads the whole directory on
//! the blocking pool the engine and the admin API share. At most
//! [`ScanLimit`]'s number of such scans run at once; a search that finds
//! none free within [`ScanLimit::wait`] is answered 503 with `Retry-After`
//! (RFC 7644 §3.12) rather than queued without end.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::BearerToken;
use crate::scim::error::{SCIM_CONTENT_TYPE, ScimError};
use crate::scim::filter::{self, AttrPath, Filter, parse_filter_with, parse_patch_path_with};
use crate::scim::patch;
use crate::scim::schema::{
    self, Attributes, EXTENSION_URNS, GROUP_TYPE, RESOURCE_TYPES, ResourceType, Returned,
    USER_TYPE, check_resource, schemas_of, written_password,
};
use crate::store::{
    GroupKey, GroupRecord, GroupRef, GroupWrite, Member, MemberKind, Page, Store, StoreError,
    StoreHandle, Timestamp, UserKey, UserRecord, UserWrite,
};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Results per page when the client does not say.
pub const DEFAULT_PAGE: usize = 100;
/// The most results one page may carry.
pub const MAX_PAGE: usize = 1000;
/// The longest filter accepted.
pub const MAX_FILTER_BYTES: usize = 8 << 10;

const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

#[derive(Clone)]
pub struct ScimState {
    pub store: StoreHandle,
    pub token: BearerToken,
    pub scans: ScanLimit,
}

/// How many searches may scan the whole directory at once, and how long a
/// search waits for its turn before it is answered 503.
#[derive(Debug, Clone)]
pub struct ScanLimit {
    permits: Arc<tokio::sync::Semaphore>,
    concurrency: usize,
    wait: std::time::Duration,
}

impl ScanLimit {
    /// Scans at once unless `serve --scim-scan-concurrency` says otherwise.
    pub const DEFAULT_CONCURRENCY: usize = 4;
    /// How long a search waits for a free scan.
    pub const DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    /// At most `concurrency` (at least 1) scans at once; a search waits
    /// `wait` at most.
    pub fn new(concurrency: usize, wait: std::time::Duration) -> Self {
        let concurrency = concurrency.max(1);
        ScanLimit {
            permits: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            concurrency,
            wait,
        }
    }

    pub fn wait(&self) -> std::time::Duration {
        self.wait
    }

    /// A turn to scan, held until dropped; 503 when none came in time.
    async fn turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ScimError> {
        match tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one is "busy" too.
            Ok(Err(_)) | Err(_) => Err(ScimError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                format!(
                    "{} searches that read the whole directory are already running; \
                     try again later, or search by an indexed equality \
                     (userName, externalId or id eq; displayName for groups)",
                    self.concurrency
                ),
            )),
        }
    }
}

impl Default for ScanLimit {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CONCURRENCY, Self::DEFAULT_WAIT)
    }
}

/// The routes under `/scim/v2`.
pub fn router(state: ScimState) -> Router {
    let discovery = |handler| get(handler).fallback(method_not_allowed);
    Router::new()
        .route("/ServiceProviderConfig", discovery(service_provider_config))
        .route(
            "/ResourceTypes",
            get(resource_types).fallback(method_not_allowed),
        )
        .route(
            "/ResourceTypes/{id}",
            get(resource_type).fallback(method_not_allowed),
        )
        .route("/Schemas", get(schemas).fallback(method_not_allowed))
        .route(
            "/Schemas/{id}",
            get(schema_by_id).fallback(method_not_allowed),
        )
        .route(
            "/Users",
            get(list_users)
                .post(create_user)
                .fallback(method_not_allowed),
        )
        .route(
            "/Users/.search",
            post(search_users).fallback(method_not_allowed),
        )
        .route(
            "/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user)
                .fallback(method_not_allowed),
        )
        .route(
            "/Groups",
            get(list_groups)
                .post(create_group)
                .fallback(method_not_allowed),
        )
        .route(
            "/Groups/.search",
            post(search_groups).fallback(method_not_allowed),
        )
        .route(
            "/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group)
                .fallback(method_not_allowed),
        )
        .route("/.search", post(root_search))
        .fallback(unknown_endpoint)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

async fn require_token(State(state): State<ScimState>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if state.token.accepts(authorization) {
        next.run(request).await
    } else {
        ScimError::unauthorized().into_response()
    }
}

async fn method_not_allowed() -> ScimError {
    ScimError::method_not_allowed()
}

async fn unknown_endpoint() -> ScimError {
    ScimError::not_found("no SCIM endpoint at this path")
}

/// `POST /.search` (RFC 7644 §3.4.3): users and groups alike, users first.
/// Sorting applies within each resource type.
async fn root_search(
    State(state): State<ScimState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ScimError> {
    let request = ListRequest::parse(ListParams::from_search(&json_body(body).await?)?)?;
    let base = base_url(&headers);
    let turn = state.scans.turn().await?;
    let (request, page, total) = state
        .store
        .run(move |store| {
            let _turn = turn;
            let mut users = Vec::new();
            store.scan_users(&mut |user| {
                users.push(user);
                true
            })?;
            let mut groups = Vec::new();
            store.scan_groups(&mut |group| {
                groups.push(group);
                true
            })?;
            let everything = ListRequest {
                start_index: 1,
                count: usize::MAX,
                ..request.clone_without_paging()
            };
            let (matching_users, _) = select(
                &USER_TYPE,
                &everything,
                users.iter().map(user_summary).collect(),
            );
            let (matching_groups, _) = select(
                &GROUP_TYPE,
                &everything,
                groups.iter().map(|g| render_group(&base, g)).collect(),
            );
            let total = matching_users.len() + matching_groups.len();
            let mut by_id: std::collections::HashMap<String, UserRecord> =
                users.into_iter().map(|u| (u.id.clone(), u)).collect();
            let mut page = Vec::new();
            for user in matching_users
                .iter()
                .skip(request.start_index - 1)
                .take(request.count)
            {
                if let Some(record) = user["id"].as_str().and_then(|id| by_id.remove(id)) {
                    let groups = store.user_groups(&record.id)?;
                    page.push(
                        request
                            .projection
                            .apply(&USER_TYPE, render_user(&base, &record, &groups)),
                    );
                }
            }
            let skip_groups = (request.start_index - 1).saturating_sub(matching_users.len());
            let room = request.count - page.len();
            for group in matching_groups.into_iter().skip(skip_groups).take(room) {
                page.push(request.projection.apply(&GROUP_TYPE, group));
            }
            Ok((request, page, total))
        })
        .await?;
    Ok(scim_response(
        StatusCode::OK,
        &list_response(page, total, request.start_index),
        None,
    ))
}

/// The base URL of this server as the client reached it, for `location`s.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .filter(|scheme| *scheme == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}/scim/v2")
}

fn scim_response(status: StatusCode, body: &Value, version: Option<i64>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    if let Some(version) = version
        && let Ok(etag) = HeaderValue::from_str(&etag(version))
    {
        headers.insert(header::ETAG, etag);
    }
    if status == StatusCode::CREATED
        && let Some(location) = body.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(location) = HeaderValue::from_str(location)
    {
        headers.insert(header::LOCATION, location);
    }
    response
}

fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The version an `If-Match` header requires, if any. `*` requires none.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ScimError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    parse_etag(text).map(Some).ok_or_else(|| {
        ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!("If-Match {text:?} is not an ETag of this server"),
        )
    })
}

fn parse_etag(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    text.trim_matches('"').parse().ok()
}

/// Reads a JSON request body, refusing what is too large or malformed.
async fn json_body(body: Body) -> Result<Value, ScimError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("tooMany"),
                format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
            )
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|error| ScimError::invalid_syntax(format!("the body is not valid JSON: {error}")))
}

async fn service_provider_config(headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/scimlink/scimlink#inbound-scim",
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": MAX_PAGE },
        "changePassword": { "supported": false },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "The inbound SCIM token (SCIMLINK_SCIM_TOKEN), as `Authorization: Bearer TOKEN`.",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    });
    scim_response(StatusCode::OK, &body, None)
}

fn list_response(resources: Vec<Value>, total: usize, start_index: usize) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

async fn resource_types(headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let all: Vec<Value> = RESOURCE_TYPES.iter().map(|rt| rt.to_json(&base)).collect();
    let total = all.len();
    scim_response(StatusCode::OK, &list_response(all, total, 1), None)
}

async fn resource_type(headers: HeaderMap, Path(id): Path<String>) -> Response {
    let base = base_url(&headers);
    match RESOURCE_TYPES
        .iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(&id))
    {
        Some(rt) => scim_response(StatusCode::OK, &rt.to_json(&base), None),
        None => ScimError::not_found(format!("no resource type {id:?}")).into_response(),
    }
}

async fn schemas(headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let all: Vec<Value> = schema::all_schemas()
        .iter()
        .map(|s| s.to_json(&base))
        .collect();
    let total = all.len();
    scim_response(StatusCode::OK, &list_response(all, total, 1), None)
}

async fn schema_by_id(headers: HeaderMap, Path(id): Path<String>) -> Response {
    let base = base_url(&headers);
    match schema::all_schemas()
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
    {
        Some(schema) => scim_response(StatusCode::OK, &schema.to_json(&base), None),
        None => ScimError::not_found(format!("no schema {id:?}")).into_response(),
    }
}

// ---------------------------------------------------------------------------
// Rendering and projection.

fn meta(
    resource_type: &str,
    location: String,
    created: Timestamp,
    modified: Timestamp,
    version: i64,
) -> Value {
    json!({
        "resourceType": resource_type,
        "created": created,
        "lastModified": modified,
        "location": location,
        "version": etag(version),
    })
}

fn render_user(base: &str, user: &UserRecord, groups: &[GroupRef]) -> Value {
    let mut out = Map::new();
    out.insert(
        "schemas".into(),
        Value::Array(schemas_of(&USER_TYPE, &user.attributes)),
    );
    out.insert("id".into(), Value::String(user.id.clone()));
    for (key, value) in &user.attributes {
        out.insert(key.clone(), value.clone());
    }
    if !groups.is_empty() {
        let groups = groups
            .iter()
            .map(|group| {
                json!({
                    "value": group.id,
                    "$ref": format!("{base}/Groups/{}", group.id),
                    "display": group.display_name,
                    "type": "direct",
                })
            })
            .collect();
        out.insert("groups".into(), Value::Array(groups));
    }
    out.insert(
        "meta".into(),
        meta(
            "User",
            format!("{base}/Users/{}", user.id),
            user.created,
            user.modified,
            user.version,
        ),
    );
    Value::Object(out)
}

fn render_group(base: &str, group: &GroupRecord) -> Value {
    let mut out = Map::new();
    out.insert(
        "schemas".into(),
        Value::Array(schemas_of(&GROUP_TYPE, &group.attributes)),
    );
    out.insert("id".into(), Value::String(group.id.clone()));
    for (key, value) in &group.attributes {
        out.insert(key.clone(), value.clone());
    }
    // Groups an older import created keep their name in the record alone.
    out.entry("displayName")
        .or_insert_with(|| Value::String(group.display_name.clone()));
    if !group.members.is_empty() {
        out.insert("members".into(), Value::Array(members_json(base, group)));
    }
    out.insert(
        "meta".into(),
        meta(
            "Group",
            format!("{base}/Groups/{}", group.id),
            group.created,
            group.modified,
            group.version,
        ),
    );
    Value::Object(out)
}

fn members_json(base: &str, group: &GroupRecord) -> Vec<Value> {
    group
        .members
        .iter()
        .map(|member| {
            let endpoint = match member.kind {
                MemberKind::User => "Users",
                MemberKind::Group => "Groups",
            };
            json!({
                "value": member.id,
                "$ref": format!("{base}/{endpoint}/{}", member.id),
                "type": member.kind.as_str(),
            })
        })
        .collect()
}

/// `attributes` / `excludedAttributes` of a request (RFC 7644 §3.9).
#[derive(Debug, Default)]
struct Projection {
    only: Vec<AttrPath>,
    excluded: Vec<AttrPath>,
}

impl Projection {
    fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        let paths = |list: Option<&str>| -> Result<Vec<AttrPath>, ScimError> {
            list.unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|path| !path.is_empty())
                .map(|path| {
                    parse_patch_path_with(path, EXTENSION_URNS)
                        .map(|parsed| parsed.attr)
                        .map_err(|error| {
                            ScimError::invalid_value(format!("attribute {path:?}: {error}"))
                        })
                })
                .collect()
        };
        Ok(Projection {
            only: paths(attributes)?,
            excluded: paths(excluded)?,
        })
    }

    fn apply(&self, resource_type: &ResourceType, resource: Value) -> Value {
        let Value::Object(mut resource) = resource else {
            return resource;
        };
        if !self.only.is_empty() {
            let mut kept = Map::new();
            for (key, value) in resource {
                if returned_always(resource_type, &key) {
                    kept.insert(key, value);
                    continue;
                }
                if let Some(value) = keep_selected(resource_type, &key, value, &self.only) {
                    kept.insert(key, value);
                }
            }
            resource = kept;
        }
        for path in &self.excluded {
            remove_path(resource_type, &mut resource, path);
        }
        Value::Object(resource)
    }
}

fn returned_always(resource_type: &ResourceType, key: &str) -> bool {
    key == "id"
        || key == "schemas"
        || resource_type
            .core
            .attribute(key)
            .is_some_and(|attribute| attribute.returned == Returned::Always)
}

/// The part of top-level `key` that the selection asks for, if any.
fn keep_selected(
    resource_type: &ResourceType,
    key: &str,
    value: Value,
    only: &[AttrPath],
) -> Option<Value> {
    let is_extension = resource_type.extension(key).is_some();
    let mut whole = false;
    let mut subs: Vec<&str> = Vec::new();
    for path in only {
        let (name, sub) = match (&path.urn, is_extension) {
            (Some(urn), true) if urn.eq_ignore_ascii_case(key) => {
                if path.attr.is_empty() {
                    whole = true;
                    continue;
                }
                (path.attr.as_str(), path.sub.as_deref())
            }
            (Some(urn), false) if urn.eq_ignore_ascii_case(resource_type.core.id) => {
                if !path.attr.eq_ignore_ascii_case(key) {
                    continue;
                }
                match &path.sub {
                    Some(sub) => (sub.as_str(), None),
                    None => {
                        whole = true;
                        continue;
                    }
                }
            }
            (None, false) => {
                if !path.attr.eq_ignore_ascii_case(key) {
                    continue;
                }
                match &path.sub {
                    Some(sub) => (sub.as_str(), None),
                    None => {
                        whole = true;
                        continue;
                    }
                }
            }
            _ => continue,
        };
        let _ = sub;
        subs.push(name);
    }
    if whole {
        return Some(value);
    }
    if subs.is_empty() {
        return None;
    }
    let pick = |object: &Map<String, Value>| -> Map<String, Value> {
        object
            .iter()
            .filter(|(name, _)| subs.iter().any(|sub| sub.eq_ignore_ascii_case(name)))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    };
    match value {
        Value::Object(object) => Some(Value::Object(pick(&object))),
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(Value::as_object)
                .map(|object| Value::Object(pick(object)))
                .collect(),
        )),
        _ => None,
    }
}

fn remove_path(resource_type: &ResourceType, resource: &mut Map<String, Value>, path: &AttrPath) {
    let remove_in = |object: &mut Map<String, Value>, name: &str, sub: Option<&str>| {
        let Some(key) = object
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name))
            .cloned()
        else {
            return;
        };
        match sub {
            None => {
                object.remove(&key);
            }
            Some(sub) => match object.get_mut(&key) {
                Some(Value::Object(inner)) => inner.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
                Some(Value::Array(items)) => {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        item.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                    }
                }
                _ => {}
            },
        }
    };
    match &path.urn {
        Some(urn) if resource_type.extension(urn).is_some() => {
            if path.attr.is_empty() {
                resource.retain(|key, _| !key.eq_ignore_ascii_case(urn));
            } else if let Some(Value::Object(extension)) = resource
                .iter_mut()
                .find(|(key, _)| key.eq_ignore_ascii_case(urn))
                .map(|(_, v)| v)
            {
                remove_in(extension, &path.attr, path.sub.as_deref());
            }
        }
        _ => {
            if path.attr.eq_ignore_ascii_case("id") || path.attr.eq_ignore_ascii_case("schemas") {
                return;
            }
            remove_in(resource, &path.attr, path.sub.as_deref());
        }
    }
}

// ---------------------------------------------------------------------------
// Listing.

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

impl ListParams {
    fn from_search(body: &Value) -> Result<Self, ScimError> {
        let Some(object) = body.as_object() else {
            return Err(ScimError::invalid_syntax(
                "a search body must be a JSON object",
            ));
        };
        let text = |name: &str| -> Result<Option<String>, ScimError> {
            match object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
            {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(Value::Array(items)) => Ok(Some(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                )),
                Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
            }
        };
        let number = |name: &str| -> Result<Option<i64>, ScimError> {
            match object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
            {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer"))),
            }
        };
        let declared = object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
            .and_then(|(_, v)| v.as_array())
            .is_some_and(|schemas| schemas.iter().any(|s| s.as_str() == Some(SEARCH_SCHEMA)));
        if !declared {
            return Err(ScimError::invalid_syntax(format!(
                "a search body must list the schema {SEARCH_SCHEMA}"
            )));
        }
        Ok(ListParams {
            filter: text("filter")?,
            start_index: number("startIndex")?,
            count: number("count")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            attributes: text("attributes")?,
            excluded_attributes: text("excludedAttributes")?,
        })
    }
}

/// A validated list request.
struct ListRequest {
    filter: Option<Filter>,
    start_index: usize,
    count: usize,
    sort: Option<(AttrPath, bool)>,
    projection: Projection,
}

impl ListRequest {
    /// The same filter, sort and projection.
    fn clone_without_paging(&self) -> Self {
        ListRequest {
            filter: self.filter.clone(),
            start_index: 1,
            count: MAX_PAGE,
            sort: self.sort.clone(),
            projection: Projection {
                only: self.projection.only.clone(),
                excluded: self.projection.excluded.clone(),
            },
        }
    }

    fn parse(params: ListParams) -> Result<Self, ScimError> {
        let filter = match params.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) if text.len() > MAX_FILTER_BYTES => {
                return Err(ScimError::invalid_filter(format!(
                    "the filter exceeds {MAX_FILTER_BYTES} bytes"
                )));
            }
            Some(text) => Some(
                parse_filter_with(text, EXTENSION_URNS)
                    .map_err(|error| ScimError::invalid_filter(error.to_string()))?,
            ),
        };
        let sort = match params.sort_by.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(path) => {
                let path = parse_patch_path_with(path, EXTENSION_URNS)
                    .map_err(|error| ScimError::invalid_value(format!("sortBy: {error}")))?;
                let descending = match params.sort_order.as_deref() {
                    None => false,
                    Some(order) if order.eq_ignore_ascii_case("ascending") => false,
                    Some(order) if order.eq_ignore_ascii_case("descending") => true,
                    Some(order) => {
                        return Err(ScimError::invalid_value(format!(
                            "sortOrder {order:?} is neither ascending nor descending"
                        )));
                    }
                };
                Some((path.attr, descending))
            }
        };
        Ok(ListRequest {
            filter,
            start_index: usize::try_from(params.start_index.unwrap_or(1).max(1)).unwrap_or(1),
            count: usize::try_from(
                params
                    .count
                    .unwrap_or(DEFAULT_PAGE as i64)
                    .clamp(0, MAX_PAGE as i64),
            )
            .unwrap_or(DEFAULT_PAGE),
            sort,
            projection: Projection::parse(
                params.attributes.as_deref(),
                params.excluded_attributes.as_deref(),
            )?,
        })
    }

    fn page(&self) -> Page {
        Page {
            offset: (self.start_index - 1) as u64,
            limit: self.count as u64,
        }
    }
}

/// The value a resource sorts by: the first (primary if marked) value.
fn sort_key<'a>(
    resource_type: &ResourceType,
    resource: &'a Value,
    path: &AttrPath,
) -> Option<&'a Value> {
    let container = match &path.urn {
        Some(urn) if resource_type.extension(urn).is_some() => {
            resource
                .as_object()?
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(urn))?
                .1
        }
        _ => resource,
    };
    let value = container
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(&path.attr))?
        .1;
    let value = match value {
        Value::Array(items) => items
            .iter()
            .find(|item| item.get("primary") == Some(&Value::Bool(true)))
            .or_else(|| items.first())?,
        other => other,
    };
    match (&path.sub, value) {
        (Some(sub), Value::Object(fields)) => fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(sub))
            .map(|(_, v)| v),
        (None, Value::Object(fields)) => fields.get("value"),
        (None, other) => Some(other),
        _ => None,
    }
}

fn compare_for_sort(left: Option<&Value>, right: Option<&Value>, case_exact: bool) -> Ordering {
    match (left, right) {
        (None, None) => Ordering::Equal,
        // Resources without the attribute sort last.
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(Value::String(a)), Some(Value::String(b))) if !case_exact => {
            a.to_lowercase().cmp(&b.to_lowercase())
        }
        (Some(Value::String(a)), Some(Value::String(b))) => a.cmp(b),
        (Some(Value::Number(a)), Some(Value::Number(b))) => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::Bool(a)), Some(Value::Bool(b))) => a.cmp(b),
        (Some(a), Some(b)) => a.to_string().cmp(&b.to_string()),
    }
}

/// Filters, sorts and pages rendered resources.
fn select(
    resource_type: &ResourceType,
    request: &ListRequest,
    candidates: Vec<Value>,
) -> (Vec<Value>, usize) {
    let mut matching: Vec<Value> = match &request.filter {
        Some(filter) => candidates
            .into_iter()
            .filter(|resource| filter::matches(filter, resource, resource_type))
            .collect(),
        None => candidates,
    };
    if let Some((path, descending)) = &request.sort {
        let case_exact = filter::AttributeRules::case_exact(resource_type, path);
        matching.sort_by(|a, b| {
            let order = compare_for_sort(
                sort_key(resource_type, a, path),
                sort_key(resource_type, b, path),
                case_exact,
            );
            if *descending { order.reverse() } else { order }
        });
    }
    let total = matching.len();
    let page = matching
        .into_iter()
        .skip(request.start_index - 1)
        .take(request.count)
        .collect();
    (page, total)
}

fn respond_list(
    resource_type: &ResourceType,
    request: &ListRequest,
    page: Vec<Value>,
    total: usize,
) -> Response {
    let page = page
        .into_iter()
        .map(|resource| request.projection.apply(resource_type, resource))
        .collect();
    scim_response(
        StatusCode::OK,
        &list_response(page, total, request.start_index),
        None,
    )
}

/// The attributes whose equality the store answers from an index.
const USER_KEYS: &[&str] = &["userName", "externalId", "id"];
const GROUP_KEYS: &[&str] = &["displayName", "externalId", "id"];

/// Whether answering `request` reads the whole directory: it filters or
/// sorts, and no indexed equality narrows the candidates.
fn scans(request: &ListRequest, indexed: &[&'static str]) -> bool {
    (request.filter.is_some() || request.sort.is_some())
        && request
            .filter
            .as_ref()
            .and_then(|f| filter::equality_key(f, indexed))
            .is_none()
}

fn user_summary(user: &UserRecord) -> Value {
    // What filters see: the resource without its (costly) groups.
    render_user("", user, &[])
}

async fn list_users(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Result<Response, ScimError> {
    let request = ListRequest::parse(params)?;
    run_user_list(state, headers, request).await
}

async fn search_users(
    State(state): State<ScimState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ScimError> {
    let request = ListRequest::parse(ListParams::from_search(&json_body(body).await?)?)?;
    run_user_list(state, headers, request).await
}

async fn run_user_list(
    state: ScimState,
    headers: HeaderMap,
    request: ListRequest,
) -> Result<Response, ScimError> {
    let base = base_url(&headers);
    let turn = match scans(&request, USER_KEYS) {
        true => Some(state.scans.turn().await?),
        false => None,
    };
    let (request, page, total) = state
        .store
        .run(move |store| {
            let _turn = turn;
            let (records, total) = if request.filter.is_none() && request.sort.is_none() {
                let listing = store.list_users(request.page())?;
                (listing.items, listing.total as usize)
            } else {
                let key = request
                    .filter
                    .as_ref()
                    .and_then(|f| filter::equality_key(f, USER_KEYS));
                let candidates = match key {
                    Some(("userName", value)) => store.find_users(UserKey::UserName, value)?,
                    Some(("externalId", value)) => store.find_users(UserKey::ExternalId, value)?,
                    Some((_, value)) => store.find_users(UserKey::Id, value)?,
                    None => {
                        let mut all = Vec::new();
                        store.scan_users(&mut |user| {
                            all.push(user);
                            true
                        })?;
                        all
                    }
                };
                let summaries = candidates.iter().map(user_summary).collect();
                let (page, total) = select(&USER_TYPE, &request, summaries);
                let mut by_id: std::collections::HashMap<String, UserRecord> =
                    candidates.into_iter().map(|u| (u.id.clone(), u)).collect();
                let records = page
                    .iter()
                    .filter_map(|resource| resource["id"].as_str())
                    .filter_map(|id| by_id.remove(id))
                    .collect::<Vec<_>>();
                (records, total)
            };
            let mut rendered = Vec::with_capacity(records.len());
            for user in &records {
                let groups = store.user_groups(&user.id)?;
                rendered.push(render_user(&base, user, &groups));
            }
            Ok((request, rendered, total))
        })
        .await?;
    Ok(respond_list(&USER_TYPE, &request, page, total))
}

async fn list_groups(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Result<Response, ScimError> {
    let request = ListRequest::parse(params)?;
    run_group_list(state, headers, request).await
}

async fn search_groups(
    State(state): State<ScimState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ScimError> {
    let request = ListRequest::parse(ListParams::from_search(&json_body(body).await?)?)?;
    run_group_list(state, headers, request).await
}

async fn run_group_list(
    state: ScimState,
    headers: HeaderMap,
    request: ListRequest,
) -> Result<Response, ScimError> {
    let base = base_url(&headers);
    let turn = match scans(&request, GROUP_KEYS) {
        true => Some(state.scans.turn().await?),
        false => None,
    };
    let (request, page, total) = state
        .store
        .run(move |store| {
            let _turn = turn;
            if request.filter.is_none() && request.sort.is_none() {
                let listing = store.list_groups(request.page())?;
                let page = listing
                    .items
                    .iter()
                    .map(|g| render_group(&base, g))
                    .collect();
                return Ok((request, page, listing.total as usize));
            }
            let key = request
                .filter
                .as_ref()
                .and_then(|f| filter::equality_key(f, GROUP_KEYS));
            let candidates = match key {
                Some(("displayName", value)) => store.find_groups(GroupKey::DisplayName, value)?,
                Some(("externalId", value)) => store.find_groups(GroupKey::ExternalId, value)?,
                Some((_, value)) => store.find_groups(GroupKey::Id, value)?,
                None => {
                    let mut all = Vec::new();
                    store.scan_groups(&mut |group| {
                        all.push(group);
                        true
                    })?;
                    all
                }
            };
            let rendered = candidates.iter().map(|g| render_group(&base, g)).collect();
            let (page, total) = select(&GROUP_TYPE, &request, rendered);
            Ok((request, page, total))
        })
        .await?;
    Ok(respond_list(&GROUP_TYPE, &request, page, total))
}

// ---------------------------------------------------------------------------
// Users.

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProjectionParams {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

fn user_write(attributes: Attributes) -> Result<UserWrite, ScimError> {
    let user_name = attributes
        .get("userName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ScimError::invalid_value("userName is required and must not be empty"))?
        .to_string();
    // The stored document says what the index says.
    let mut attributes = attributes;
    attributes.insert("userName".into(), Value::String(user_name.clone()));
    Ok(UserWrite {
        password: None,
        user_name,
        external_id: attributes
            .get("externalId")
            .and_then(Value::as_str)
            .map(str::to_string),
        active: attributes
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        attributes,
    })
}

async fn load_user(
    store: &StoreHandle,
    id: String,
) -> Result<(UserRecord, Vec<GroupRef>), ScimError> {
    store
        .run(move |store| {
            let user = store.get_user(&id)?.ok_or_else(|| StoreError::NotFound {
                entity: "user",
                key: id.clone(),
            })?;
            let groups = store.user_groups(&id)?;
            Ok((user, groups))
        })
        .await
        .map_err(ScimError::from)
}

async fn get_user(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<ProjectionParams>,
) -> Result<Response, ScimError> {
    let projection = Projection::parse(
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    )?;
    let (user, groups) = load_user(&state.store, id).await?;
    if not_modified(&headers, user.version) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let body = projection.apply(&USER_TYPE, render_user(&base_url(&headers), &user, &groups));
    Ok(scim_response(StatusCode::OK, &body, Some(user.version)))
}

fn not_modified(headers: &HeaderMap, version: i64) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| parse_etag(tag) == Some(version)))
}

async fn create_user(
    State(state): State<ScimState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ScimError> {
    let body = json_body(body).await?;
    let mut write = user_write(check_resource(&USER_TYPE, &body)?)?;
    write.password = written_password(&body)?;
    let user = state
        .store
        .run(move |store| store.create_user(write))
        .await?;
    let body = render_user(&base_url(&headers), &user, &[]);
    Ok(scim_response(
        StatusCode::CREATED,
        &body,
        Some(user.version),
    ))
}

async fn replace_user(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ScimError> {
    let expected = if_match(&headers)?;
    let body = json_body(body).await?;
    let mut write = user_write(check_resource(&USER_TYPE, &body)?)?;
    // A replace without a password leaves the user's as it is: the
    // attribute is write-only, so a client cannot send back what it read.
    write.password = written_password(&body)?;
    let (user, groups) = state
        .store
        .run(move |store| {
            let user = store.replace_user(&id, write, expected)?;
            let groups = store.user_groups(&id)?;
            Ok((user, groups))
        })
        .await?;
    let body = render_user(&base_url(&headers), &user, &groups);
    Ok(scim_response(StatusCode::OK, &body, Some(user.version)))
}

async fn patch_user(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ScimError> {
    let operations = patch::parse_request(&json_body(body).await?)?;
    let expected = if_match(&headers)?;
    let (user, groups) = state
        .store
        .run(move |store| {
            Ok(with_retries(expected, || {
                patch_user_in(store, &id, expected, &operations)
            }))
        })
        .await??;
    let body = render_user(&base_url(&headers), &user, &groups);
    Ok(scim_response(StatusCode::OK, &body, Some(user.version)))
}

/// How often a PATCH without `If-Match` is tried again when another write
/// changed the resource between its read and its write.
const PATCH_ATTEMPTS: usize = 5;

/// Runs a read-modify-write; without a client precondition, a lost race is
/// retried rather than reported as a failed precondition the client never
/// set.
fn with_retries<T>(
    expected: Option<i64>,
    mut attempt: impl FnMut() -> Result<T, ScimError>,
) -> Result<T, ScimError> {
    let mut tries = 1;
    loop {
        match attempt() {
            Err(error)
                if expected.is_none()
                    && error.status == StatusCode::PRECONDITION_FAILED
                    && tries < PATCH_ATTEMPTS =>
            {
                tries += 1;
            }
            other => return other,
        }
    }
}

fn patch_user_in(
    store: &dyn Store,
    id: &str,
    expected: Option<i64>,
    operations: &[patch::Operation],
) -> Result<(UserRecord, Vec<GroupRef>), ScimError> {
    let current = store.get_user(id)?.ok_or_else(|| StoreError::NotFound {
        entity: "user",
        key: id.to_string(),
    })?;
    if let Some(expected) = expected
        && expected != current.version
    {
        return Err(StoreError::VersionMismatch {
            entity: "user",
            id: id.to_string(),
            expected,
            current: current.version,
        }
        .into());
    }
    let mut resource = current.attributes.clone();
    patch::apply(&USER_TYPE, &mut resource, operations)?;
    let resource = Value::Object(resource);
    let mut write = user_write(check_resource(&USER_TYPE, &resource)?)?;
    // The stored document never holds a password, so one in the patched
    // resource is one this PATCH sets.
    write.password = written_password(&resource)?;
    // The version read above guards against a change in between.
    let user = store.replace_user(id, write, Some(current.version))?;
    let groups = store.user_groups(id)?;
    Ok((user, groups))
}

async fn delete_user(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let expected = if_match(&headers)?;
    state
        .store
        .run(move |store| store.delete_user(&id, expected))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------
// Groups.

/// Splits a checked group into what the store writes; members are resolved
/// to users or groups.
fn group_write(store: &dyn Store, mut attributes: Attributes) -> Result<GroupWrite, StoreError> {
    let members = attributes.remove("members");
    let display_name = attributes
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    attributes.insert("displayName".into(), Value::String(display_name.clone()));
    let mut resolved = Vec::new();
    for member in members
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = member.get("value").and_then(Value::as_str) else {
            return Err(StoreError::InvalidMembership(
                "every member needs a value (the member's id)".into(),
            ));
        };
        let kind = match member.get("type").and_then(Value::as_str) {
            Some(kind) if kind.eq_ignore_ascii_case("user") => MemberKind::User,
            Some(kind) if kind.eq_ignore_ascii_case("group") => MemberKind::Group,
            Some(other) => {
                return Err(StoreError::InvalidMembership(format!(
                    "member type {other:?} is neither User nor Group"
                )));
            }
            None if store.get_user(id)?.is_some() => MemberKind::User,
            None => MemberKind::Group,
        };
        resolved.push(Member {
            id: id.to_string(),
            kind,
        });
    }
    Ok(GroupWrite {
        display_name,
        external_id: attributes
            .get("externalId")
            .and_then(Value::as_str)
            .map(str::to_string),
        attributes,
        members: Some(resolved),
    })
}

fn check_group(body: &Value) -> Result<Attributes, ScimError> {
    let attributes = check_resource(&GROUP_TYPE, body)?;
    let named = attributes
        .get("displayName")
        .and_then(Value::as_str)
        .is_some_and(|name| !name.trim().is_empty());
    if !named {
        return Err(ScimError::invalid_value("displayName must not be empty"));
    }
    Ok(attributes)
}

async fn get_group(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<ProjectionParams>,
) -> Result<Response, ScimError> {
    let projection = Projection::parse(
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    )?;
    let group = state
        .store
        .run(move |store| {
            store.get_group(&id)?.ok_or(StoreError::NotFound {
                entity: "group",
                key: id,
            })
        })
        .await?;
    if not_modified(&headers, group.version) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let body = projection.apply(&GROUP_TYPE, render_group(&base_url(&headers), &group));
    Ok(scim_response(StatusCode::OK, &body, Some(group.version)))
}

async fn create_group(
    State(state): State<ScimState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ScimError> {
    let attributes = check_group(&json_body(body).await?)?;
    let group = state
        .store
        .run(move |store| {
            let write = group_write(store, attributes)?;
            store.create_group(write)
        })
        .await?;
    let body = render_group(&base_url(&headers), &group);
    Ok(scim_response(
        StatusCode::CREATED,
        &body,
        Some(group.version),
    ))
}

async fn replace_group(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ScimError> {
    let expected = if_match(&headers)?;
    let attributes = check_group(&json_body(body).await?)?;
    let group = state
        .store
        .run(move |store| {
            let write = group_write(store, attributes)?;
            store.replace_group(&id, write, expected)
        })
        .await?;
    let body = render_group(&base_url(&headers), &group);
    Ok(scim_response(StatusCode::OK, &body, Some(group.version)))
}

async fn patch_group(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ScimError> {
    let operations = patch::parse_request(&json_body(body).await?)?;
    let expected = if_match(&headers)?;
    let base = base_url(&headers);
    let group = state
        .store
        .run(move |store| {
            Ok(with_retries(expected, || {
                patch_group_in(store, &id, &base, expected, &operations)
            }))
        })
        .await??;
    let body = render_group(&base_url(&headers), &group);
    Ok(scim_response(StatusCode::OK, &body, Some(group.version)))
}

fn patch_group_in(
    store: &dyn Store,
    id: &str,
    base: &str,
    expected: Option<i64>,
    operations: &[patch::Operation],
) -> Result<GroupRecord, ScimError> {
    let current = store.get_group(id)?.ok_or_else(|| StoreError::NotFound {
        entity: "group",
        key: id.to_string(),
    })?;
    if let Some(expected) = expected
        && expected != current.version
    {
        return Err(StoreError::VersionMismatch {
            entity: "group",
            id: id.to_string(),
            expected,
            current: current.version,
        }
        .into());
    }
    let mut resource = current.attributes.clone();
    resource
        .entry("displayName")
        .or_insert_with(|| Value::String(current.display_name.clone()));
    if !current.members.is_empty() {
        resource.insert("members".into(), Value::Array(members_json(base, &current)));
    }
    patch::apply(&GROUP_TYPE, &mut resource, operations)?;
    let attributes = check_group(&Value::Object(resource))?;
    let write = group_write(store, attributes)?;
    // The version read above guards against a change in between.
    Ok(store.replace_group(id, write, Some(current.version))?)
}

async fn delete_group(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let expected = if_match(&headers)?;
    state
        .store
        .run(move |store| store.delete_group(&id, expected))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scim::schema::USER_SCHEMA;
    use crate::store::prelude::*;
    use crate::store::{SqliteStore, TokenCipher};

    /// A server on loopback whose scans are limited by `scans`.
    async fn serve(scans: ScanLimit) -> (String, tempfile::TempDir) {
        let data = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(data.path(), TokenCipher::from_key(&[1; 32])).unwrap();
        store
            .create_user(UserWrite {
                password: None,
                user_name: "ada".into(),
                external_id: None,
                active: true,
                attributes: json!({"userName": "ada"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            })
            .unwrap();
        let app = Router::new().nest(
            "/scim/v2",
            router(ScimState {
                store: StoreHandle::new(Arc::new(store)),
                token: BearerToken::from_plain("t"),
                scans,
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/scim/v2", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, data)
    }

    async fn get(base: &str, path_and_query: &str) -> reqwest::Response {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
            .get(format!("{base}{path_and_query}"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_password_is_taken_sealed_and_never_returned() {
        let (base, data) = serve(ScanLimit::default()).await;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let send = |method: reqwest::Method, path: String, body: Value| {
            http.request(method, format!("{base}{path}"))
                .bearer_auth("t")
                .header("content-type", "application/scim+json")
                .body(body.to_string())
                .send()
        };
        let created = send(
            reqwest::Method::POST,
            "/Users".into(),
            json!({ "schemas": [USER_SCHEMA], "userName": "grace", "password": "Cobol-1959!" }),
        )
        .await
        .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let created: Value = created.json().await.unwrap();
        assert!(created.get("password").is_none(), "{created}");
        let id = created["id"].as_str().unwrap().to_owned();

        let store = SqliteStore::open_in(data.path(), TokenCipher::from_key(&[1; 32])).unwrap();
        let first = store.user_password(&id).unwrap().unwrap();
        assert_eq!(first.secret.expose(), "Cobol-1959!");

        // A replace without a password keeps it; one with a password sets it.
        let replaced = send(
            reqwest::Method::PUT,
            format!("/Users/{id}"),
            json!({ "schemas": [USER_SCHEMA], "userName": "grace", "title": "RADM" }),
        )
        .await
        .unwrap();
        assert_eq!(replaced.status(), StatusCode::OK);
        assert_eq!(
            store.user_password(&id).unwrap().unwrap().generation,
            first.generation
        );
        let replaced = send(
            reqwest::Method::PUT,
            format!("/Users/{id}"),
            json!({ "schemas": [USER_SCHEMA], "userName": "grace", "password": "Mark-I-1944!" }),
        )
        .await
        .unwrap();
        let replaced: Value = replaced.json().await.unwrap();
        assert!(replaced.get("password").is_none());
        assert_eq!(
            store.user_password(&id).unwrap().unwrap().secret.expose(),
            "Mark-I-1944!"
        );

        // An empty or non-string password is refused, naming the attribute only.
        for bad in [json!(""), json!(12)] {
            let refused = send(
                reqwest::Method::POST,
                "/Users".into(),
                json!({ "schemas": [USER_SCHEMA], "userName": "alan", "password": bad }),
            )
            .await
            .unwrap();
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
        }

        let read: Value = get(&base, &format!("/Users/{id}?attributes=password"))
            .await
            .json()
            .await
            .unwrap();
        assert!(!read.to_string().contains("Mark-I"), "{read}");
        let stored = store.get_user(&id).unwrap().unwrap();
        assert!(
            !Value::Object(stored.attributes)
                .to_string()
                .contains("Mark-I")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scans_beyond_the_limit_wait_then_get_503_with_retry_after() {
        let scans = ScanLimit::new(1, Duration::from_millis(200));
        let held = Arc::clone(&scans.permits).try_acquire_owned().unwrap();
        let (base, _data) = serve(scans.clone()).await;

        let scanning = "/Users?filter=userName%20co%20%22a%22";
        let busy = get(&base, scanning).await;
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            busy.headers()[header::RETRY_AFTER],
            crate::scim::error::RETRY_AFTER_SECONDS
        );
        let body: Value = busy.json().await.unwrap();
        assert_eq!(body["status"], "503");
        assert!(body["detail"].as_str().unwrap().contains("already running"));
        for scanning in [
            "/Users?sortBy=userName",
            "/Groups?filter=displayName%20sw%20%22a%22",
        ] {
            assert_eq!(
                get(&base, scanning).await.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{scanning}"
            );
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let search = reqwest::Client::new()
            .post(format!("{base}/.search"))
            .bearer_auth("t")
            .header("content-type", "application/scim+json")
            .body(json!({"schemas": [SEARCH_SCHEMA]}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(search.status(), StatusCode::SERVICE_UNAVAILABLE);

        // What an index answers, or a plain page, never waits for a scan.
        for indexed in [
            "/Users?filter=userName%20eq%20%22ada%22",
            "/Users",
            "/Groups?filter=displayName%20eq%20%22x%22",
        ] {
            assert_eq!(
                get(&base, indexed).await.status(),
                StatusCode::OK,
                "{indexed}"
            );
        }

        // A scan that frees its turn within the wait lets the next one run.
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
        });
        let waited = get(&base, scanning).await;
        assert_eq!(waited.status(), StatusCode::OK);
        let body: Value = waited.json().await.unwrap();
        assert_eq!(body["totalResults"], 1, "{body}");
        release.await.unwrap();
        assert_eq!(
            scans.permits.available_permits(),
            1,
            "every turn is returned"
        );
    }
}
