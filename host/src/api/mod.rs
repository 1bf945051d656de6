//! The HTTP server: the admin API under `/api/v1`, the inbound SCIM server
//! under `/scim/v2`, the operator console under `/console`
//! ([`crate::console`]), `GET /health` and `GET /openapi.json`.
//!
//! Every endpoint but `/health` and the console's pages requires a bearer
//! token: the admin token for the admin API and the OpenAPI document, the
//! inbound-SCIM token for `/scim/v2`. The console reaches the admin API
//! under `/console/api/v1` with a signed-in session instead. The OpenAPI
//! document is generated from the handlers
//! themselves, so it lists exactly the routes that exist.
//!
//! Admin errors are `{"error": {"code", "message", "field"?}}` with a stable
//! `code`; every list is paginated with `offset` and `limit`.

mod access;
mod applications;
mod connectors;
pub(crate) mod directory;
pub mod events;
mod insight;
mod operations;
mod safety;
mod status;
mod views;

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::BearerToken;
use crate::engine::operations::{OperationError, Operations};
use crate::scim_server;
use crate::store::{Page, Store, StoreError, StoreHandle};

/// The largest admin request body accepted.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub store: StoreHandle,
    pub admin_token: BearerToken,
    /// The serving history of the connectors (`DATA/plugin-history`), for
    /// rollbacks.
    pub plugin_history: Option<crate::runtime::history::History>,
    /// What an operator does to an application on demand, and the
    /// connectors the host serves.
    pub operations: Operations,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "scimlink admin API",
        description = "Directory, applications and bindings of a scimlink host."
    ),
    modifiers(&BearerAuth),
    security(("admin_token" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The admin routes and their OpenAPI document.
fn admin_routes() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    let (routes, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(
            "/api/v1",
            directory::routes()
                .merge(applications::routes())
                .merge(access::routes())
                .merge(operations::routes())
                .merge(connectors::routes())
                .merge(events::routes())
                .merge(insight::routes())
                .merge(safety::routes())
                .merge(status::routes()),
        )
        .split_for_parts();
    (
        routes,
        open_flattened_schemas(document_common_answers(document)),
    )
}

/// A view that flattens a strict input type (`UserView` holds
/// `UserFields`) is generated as `allOf` with a reference to that type,
/// whose `additionalProperties: false` would then forbid the view's own
/// fields: every object the API returns would break its schema. Wherever
/// such a reference stands in an `allOf` (in a component, or in a generic
/// page inlined into one), it is replaced by a copy of the type that is
/// open to more properties; the type keeps its strictness as a request.
fn open_flattened_schemas(document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use serde_json::Value;
    let Ok(mut json) = serde_json::to_value(&document) else {
        return document;
    };
    let strict: std::collections::BTreeMap<String, Value> = json
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, schema)| schema.get("additionalProperties") == Some(&Value::Bool(false)))
        .map(|(name, schema)| {
            let mut open = schema.clone();
            if let Some(object) = open.as_object_mut() {
                object.remove("additionalProperties");
            }
            (format!("#/components/schemas/{name}"), open)
        })
        .collect();
    fn open_all_of(value: &mut Value, strict: &std::collections::BTreeMap<String, Value>) {
        match value {
            Value::Object(object) => {
                if let Some(Value::Array(items)) = object.get_mut("allOf") {
                    for item in items.iter_mut() {
                        let open = item
                            .get("$ref")
                            .and_then(Value::as_str)
                            .and_then(|location| strict.get(location));
                        if let Some(open) = open {
                            *item = open.clone();
                        }
                    }
                }
                for child in object.values_mut() {
                    open_all_of(child, strict);
                }
            }
            Value::Array(items) => {
                for item in items {
                    open_all_of(item, strict);
                }
            }
            _ => {}
        }
    }
    open_all_of(&mut json, &strict);
    serde_json::from_value(json).unwrap_or(document)
}

/// Documents, on every operation, the answers any of them can give before
/// its handler runs: 401 without the admin token, 400 for a query, path or
/// body that cannot be read, 422 for a value that is not allowed, and 413
/// for a body over the limit. Done once here, so that no operation can
/// forget them and the document says what the server does.
fn document_common_answers(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let answer = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ApiErrorBody")))
                    .build(),
            )
            .build()
    };
    let common = [
        ("400", "the query, path or body cannot be read"),
        ("401", "no admin token, or not the admin token"),
        ("422", "a value is not allowed; `error.field` names it"),
    ];
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let with_body = operation.request_body.is_some();
            let responses = &mut operation.responses.responses;
            for (status, description) in common {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| answer(description).into());
            }
            if with_body {
                responses
                    .entry("413".to_string())
                    .or_insert_with(|| answer("the body is larger than the limit").into());
            }
        }
    }
    document
}

/// The OpenAPI document of the admin API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    admin_routes().1
}

/// The whole HTTP application; at most `scans` inbound SCIM searches read
/// the whole directory at once. A host builds it through
/// [`crate::host::HostBuilder`], which shares `state`'s clients with the
/// engine.
pub fn app(state: ApiState, scim_token: BearerToken, scans: scim_server::ScanLimit) -> Router {
    let (admin, document) = admin_routes();
    let console = crate::console::router(
        state.clone(),
        admin.clone(),
        crate::console::sessions::SessionPolicy::default(),
    );
    let document = Arc::new(document);
    let admin = admin
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = Arc::clone(&document);
                async move { Json(document.as_ref().clone()) }
            }),
        )
        .layer(middleware::from_fn_with_state(state.clone(), require_admin))
        .with_state(state.clone());
    let scim = scim_server::router(scim_server::ScimState {
        store: state.store.clone(),
        token: scim_token,
        scans,
    });
    Router::new()
        .route("/health", axum::routing::get(health))
        .nest("/scim/v2", scim)
        .merge(admin)
        .merge(console)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no endpoint at this path",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn require_admin(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if state.admin_token.accepts(authorization) {
        next.run(request).await
    } else {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API requires `Authorization: Bearer ADMIN_TOKEN`",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"scimlink admin\""),
        );
        response
    }
}

/// An admin API failure.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `not_found`, `conflict`, `invalid`,
    /// `version_mismatch`, `invalid_membership`, `unauthorized`,
    /// `malformed_json`, `too_large`, `internal`.
    pub code: String,
    pub message: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
                field: None,
            },
        }
    }

    /// A request field that does not hold what it must.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message);
        error.detail.field = Some(field.to_string());
        error
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::NotFound { .. } => ApiError::not_found(error.to_string()),
            StoreError::Conflict { field, .. } => {
                let mut api = ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string());
                api.detail.field = Some((*field).to_string());
                api
            }
            StoreError::VersionMismatch { .. } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "version_mismatch",
                error.to_string(),
            ),
            StoreError::InvalidMembership(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_membership",
                error.to_string(),
            ),
            StoreError::LinkedElsewhere { .. } => {
                ApiError::new(StatusCode::CONFLICT, "linked_elsewhere", error.to_string())
            }
            // An operator's work held the object for as long as it ran; one
            // that lost it was paused past it, and may be asked again.
            StoreError::LeaseLost(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "lease_lost",
                error.to_string(),
            ),
            StoreError::Secret(_) | StoreError::Backend(_) => {
                tracing::error!("admin API: {error}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the directory could not complete the request",
                )
            }
        }
    }
}

impl From<OperationError> for ApiError {
    fn from(error: OperationError) -> Self {
        let message = error.to_string();
        let conflict = |code| ApiError::new(StatusCode::CONFLICT, code, message.clone());
        match error {
            OperationError::Store(error) => ApiError::from(error),
            OperationError::NoSuchApp(_) | OperationError::NotLinked { .. } => {
                ApiError::not_found(message)
            }
            OperationError::NotActive { .. } => conflict("not_active"),
            OperationError::ConnectorNotServed(_) => conflict("connector_not_served"),
            OperationError::Connector(_) => conflict("connector_failed"),
            OperationError::Unavailable(_) => conflict("unavailable"),
            OperationError::InScope { .. } => conflict("in_scope"),
            OperationError::BaseUrl(reason) => ApiError::invalid("baseUrl", reason),
            OperationError::MovedWithoutToken { .. } => ApiError::invalid("token", message),
            OperationError::ConnectionFailed { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "connection_failed", message)
            }
            OperationError::ReconcileFailed { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "reconcile_failed", message)
            }
            // The host's own random source failed: nothing was sent.
            OperationError::Password(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "temporary_password",
                message,
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let too_large = self.status == StatusCode::PAYLOAD_TOO_LARGE;
        let mut response = (self.status, Json(ApiErrorBody { error: self.detail })).into_response();
        if too_large {
            // The rest of the body was never read: the connection cannot
            // carry another request.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// A JSON body whose rejections are [`ApiError`]s naming what is wrong.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
                )
            })?;
        parse_body(&bytes).map(Body)
    }
}

/// Reads a JSON request body as the handlers do: 400 when it is not JSON,
/// 422 naming the field when it does not fit `T`.
fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {inner}"),
            )
        } else {
            ApiError::invalid(&path, inner.to_string())
        }
    })
}

/// The admin API operations that take a JSON request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOf {
    /// `POST /users`
    CreateUser,
    /// `PATCH /users/{user}`
    UpdateUser,
    /// `POST /groups`
    CreateGroup,
    /// `PATCH /groups/{group}`
    UpdateGroup,
    /// `POST /directory/import`
    ImportDirectory,
    /// `POST /apps`
    CreateApp,
    /// `PATCH /apps/{app}`
    UpdateApp,
    /// `PUT /apps/{app}/token`
    ReplaceToken,
    /// `POST /apps/{app}/import`
    ImportFromApp,
    /// `POST /apps/{app}/dead-letters/replay`
    ReplayDeadLetters,
}

impl BodyOf {
    pub const ALL: [BodyOf; 10] = [
        BodyOf::CreateUser,
        BodyOf::UpdateUser,
        BodyOf::CreateGroup,
        BodyOf::UpdateGroup,
        BodyOf::ImportDirectory,
        BodyOf::CreateApp,
        BodyOf::UpdateApp,
        BodyOf::ReplaceToken,
        BodyOf::ImportFromApp,
        BodyOf::ReplayDeadLetters,
    ];
}

/// Reads a request body of `operation` and makes the checks its handler
/// makes before it reaches the store or a served connector, with the same
/// errors. An update is applied to a sample user, group or application.
pub fn check_body(operation: BodyOf, bytes: &[u8]) -> Result<(), ApiError> {
    match operation {
        BodyOf::CreateUser => directory::check_user_create(parse_body(bytes)?),
        BodyOf::UpdateUser => directory::check_user_update(parse_body(bytes)?),
        BodyOf::CreateGroup => directory::check_group_create(&parse_body(bytes)?),
        BodyOf::UpdateGroup => directory::check_group_update(&parse_body(bytes)?),
        BodyOf::ImportDirectory => directory::import_batch(parse_body(bytes)?).map(drop),
        BodyOf::CreateApp => applications::check_app_create(parse_body(bytes)?),
        BodyOf::UpdateApp => applications::check_app_change(parse_body(bytes)?),
        BodyOf::ReplaceToken => applications::check_token_input(&parse_body(bytes)?),
        BodyOf::ImportFromApp => parse_body::<operations::ImportInput>(bytes).map(drop),
        BodyOf::ReplayDeadLetters => parse_body::<safety::ReplayInput>(bytes).map(drop),
    }
}

/// `offset` and `limit` of a list request.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items to return, 1–1000 (default 100).
    pub limit: Option<u64>,
}

impl PageParams {
    pub fn page(self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                "limit must be between 1 and 1000",
            ));
        }
        Ok(Page {
            offset: self.offset.unwrap_or(0),
            limit,
        })
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageOf<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

impl<T> PageOf<T> {
    /// The page `page` of a whole list held in memory, each item shown
    /// through `view`.
    pub fn slice<S>(all: Vec<S>, page: Page, view: impl FnMut(S) -> T) -> Self {
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
            .map(view)
            .collect();
        PageOf {
            items,
            total,
            offset: page.offset,
            limit: page.limit,
        }
    }
}

/// Runs a store call off the async workers, mapping its error.
pub(crate) async fn store_call<T, F>(state: &ApiState, call: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    state.store.run(call).await.map_err(ApiError::from)
}

#[cfg(test)]
mod body_tests {
    use super::*;

    /// The fuzz corpus's seeds for `admin_api_body` are valid bodies, so the
    /// fuzzer starts from inputs that reach every check.
    #[test]
    fn the_fuzz_seeds_pass_their_handlers_checks() {
        macro_rules! seed {
            ($name:literal) => {
                include_bytes!(concat!("../../../fuzz/corpus/admin_api_body/", $name)).as_slice()
            };
        }
        for (operation, body) in [
            (BodyOf::CreateUser, seed!("user_create")),
            (BodyOf::UpdateUser, seed!("user_update")),
            (BodyOf::CreateGroup, seed!("group")),
            (BodyOf::UpdateGroup, seed!("group")),
            (BodyOf::ImportDirectory, seed!("import")),
            (BodyOf::CreateApp, seed!("app_create")),
            (BodyOf::UpdateApp, seed!("app_change")),
            (BodyOf::ReplaceToken, seed!("token")),
            (BodyOf::ImportFromApp, seed!("app_import")),
            (BodyOf::ReplayDeadLetters, seed!("replay")),
        ] {
            if let Err(error) = check_body(operation, body) {
                panic!("{operation:?}: {:?}", error.detail.message);
            }
        }
    }

    /// `open_flattened_schemas` works on the document as JSON and reads it
    /// back; a schema utoipa cannot read back would leave every flattened
    /// view strict, silently.
    #[test]
    fn the_document_reads_back_after_its_flattened_schemas_are_opened() {
        let (_, document) = admin_routes();
        let json = serde_json::to_value(&document).unwrap();
        if let Err(error) = serde_json::from_value::<utoipa::openapi::OpenApi>(json.clone()) {
            let mut culprits = Vec::new();
            for (name, schema) in json["components"]["schemas"].as_object().unwrap() {
                if serde_json::from_value::<utoipa::openapi::RefOr<utoipa::openapi::Schema>>(
                    schema.clone(),
                )
                .is_err()
                {
                    culprits.push(format!("schema {name}"));
                }
            }
            for (path, item) in json["paths"].as_object().unwrap() {
                if serde_json::from_value::<utoipa::openapi::PathItem>(item.clone()).is_err() {
                    culprits.push(format!("path {path}"));
                }
            }
            panic!("the OpenAPI document does not read back ({error}): {culprits:?}");
        }
        let user_view = &json["components"]["schemas"]["UserView"]["allOf"][0];
        assert!(
            user_view.get("$ref").is_none() && user_view.get("additionalProperties").is_none(),
            "UserView still refers to the strict UserFields: {user_view}"
        );
    }

    #[test]
    fn bad_bodies_get_400_or_422_naming_the_field() {
        let status = |operation, body: &str| {
            let error = check_body(operation, body.as_bytes()).unwrap_err();
            (error.status.as_u16(), error.detail.field)
        };
        assert_eq!(status(BodyOf::CreateUser, "{\"userName\":"), (400, None));
        assert_eq!(
            status(BodyOf::CreateUser, r#"{"userName":" "}"#),
            (422, Some("userName".into()))
        );
        assert_eq!(
            status(BodyOf::UpdateUser, r#"{"email":"nobody"}"#),
            (422, Some("email".into()))
        );
        assert_eq!(
            status(BodyOf::UpdateGroup, r#"{"name":""}"#),
            (422, Some("name".into()))
        );
        assert_eq!(
            status(
                BodyOf::ImportDirectory,
                r#"{"users":[{"userName":"a","x":1}]}"#
            )
            .0,
            422
        );
        assert_eq!(
            status(
                BodyOf::CreateApp,
                r#"{"name":"a","connector":"c","token":"t","baseUrl":"ftp://x"}"#
            ),
            (422, Some("baseUrl".into()))
        );
        assert_eq!(
            status(
                BodyOf::CreateApp,
                r#"{"name":"a","connector":"c","token":"t","baseUrl":"https://u:p@x.example"}"#
            ),
            (422, Some("baseUrl".into()))
        );
        assert_eq!(
            status(
                BodyOf::UpdateApp,
                r#"{"baseUrl":"https://u:p@scim.example.com/v2","token":"t"}"#
            ),
            (422, Some("baseUrl".into()))
        );
        assert_eq!(
            status(
                BodyOf::UpdateApp,
                r#"{"baseUrl":"https://elsewhere.example"}"#
            ),
            (422, Some("token".into()))
        );
        assert_eq!(
            status(BodyOf::ReplaceToken, "{\"token\":\"a\\u0000b\"}"),
            (422, Some("token".into()))
        );
    }
}
