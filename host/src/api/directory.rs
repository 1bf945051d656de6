//! Admin API: users, groups, membership and bulk import.
//!
//! The admin view of a user is a flat record of the attributes the
//! connector contract knows; it reads from and writes into the same SCIM
//! document the inbound SCIM server keeps, so attributes set over SCIM that
//! this view does not show are kept as they are.

use axum::Json;
use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::ImportOutcomeView;
use super::{ApiError, ApiErrorBody, ApiState, Body, PageOf, PageParams, store_call};
use crate::scim::schema::{DIRECTORY_USER_SCHEMA, ENTERPRISE_USER_SCHEMA};
use crate::store::{
    GroupRecord, GroupWrite, ImportBatch, ImportGroup, Member, MemberKind, Store, StoreError,
    UserRecord, UserWrite,
};
use crate::store::{group_by_id_or_name, group_id_by_id_or_name, user_by_id_or_name};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(set_password))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(add_member, remove_member))
        .routes(routes!(import))
}

/// A user as the admin API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    #[serde(flatten)]
    pub fields: UserFields,
    /// Display names of the groups the user belongs to directly.
    pub groups: Vec<String>,
    pub version: i64,
    pub created: String,
    pub modified: String,
}

/// The attributes of a user the admin API reads and writes. On update,
/// an absent field is left as it is and `null` clears it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserFields {
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// False suspends the user.
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub password_expired: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The work email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The company (SCIM enterprise `organization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The work location (office or city).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Attributes outside the standard set, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_attributes: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// A partial update of a user: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserUpdate {
    pub user_name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub external_id: Option<Option<String>>,
    pub active: Option<bool>,
    pub password_expired: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub given_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub middle_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub family_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub employee_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub department: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub organization: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub location: Option<Option<String>>,
    /// Replaces every custom attribute.
    pub custom_attributes: Option<BTreeMap<String, String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

fn text_at<'a>(attributes: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let mut value = attributes.get(*path.first()?)?;
    for key in &path[1..] {
        value = value.get(key)?;
    }
    value.as_str()
}

/// The preferred value of a multi-valued attribute: `work`, else primary,
/// else the first.
fn preferred<'a>(attributes: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    let items = attributes.get(name)?.as_array()?;
    items
        .iter()
        .find(|item| item.get("type").and_then(Value::as_str) == Some("work"))
        .or_else(|| {
            items
                .iter()
                .find(|item| item.get("primary") == Some(&Value::Bool(true)))
        })
        .or_else(|| items.first())
        .and_then(|item| item.get("value"))
        .and_then(Value::as_str)
}

impl UserFields {
    fn of(user: &UserRecord) -> Self {
        let a = &user.attributes;
        let owned = |text: Option<&str>| text.map(str::to_string);
        UserFields {
            user_name: user.user_name.clone(),
            external_id: user.external_id.clone(),
            active: user.active,
            password_expired: a
                .get(DIRECTORY_USER_SCHEMA)
                .and_then(|ext| ext.get("passwordExpired"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            given_name: owned(text_at(a, &["name", "givenName"])),
            middle_name: owned(text_at(a, &["name", "middleName"])),
            family_name: owned(text_at(a, &["name", "familyName"])),
            display_name: owned(text_at(a, &["displayName"])),
            email: owned(preferred(a, "emails")),
            phone: owned(preferred(a, "phoneNumbers")),
            title: owned(text_at(a, &["title"])),
            employee_number: owned(text_at(a, &[ENTERPRISE_USER_SCHEMA, "employeeNumber"])),
            department: owned(text_at(a, &[ENTERPRISE_USER_SCHEMA, "department"])),
            organization: owned(text_at(a, &[ENTERPRISE_USER_SCHEMA, "organization"])),
            location: owned(text_at(a, &[DIRECTORY_USER_SCHEMA, "location"])),
            custom_attributes: a
                .get(DIRECTORY_USER_SCHEMA)
                .and_then(|ext| ext.get("customAttributes"))
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| {
                            Some((
                                item.get("name")?.as_str()?.to_string(),
                                item.get("value")?.as_str()?.to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Checks the fields and writes them into a SCIM document.
    pub fn into_write(self, mut attributes: Map<String, Value>) -> Result<UserWrite, ApiError> {
        let user_name = self.user_name.trim().to_string();
        if user_name.is_empty() {
            return Err(ApiError::invalid("userName", "userName must not be empty"));
        }
        if let Some(email) = &self.email
            && !email.contains('@')
        {
            return Err(ApiError::invalid(
                "email",
                format!("{email:?} is not an email address"),
            ));
        }
        attributes.insert("userName".into(), json!(user_name));
        attributes.insert("active".into(), json!(self.active));
        set(&mut attributes, &["externalId"], self.external_id.clone());
        set(&mut attributes, &["name", "givenName"], self.given_name);
        set(&mut attributes, &["name", "middleName"], self.middle_name);
        set(&mut attributes, &["name", "familyName"], self.family_name);
        set(&mut attributes, &["displayName"], self.display_name);
        set(&mut attributes, &["title"], self.title);
        set_preferred(&mut attributes, "emails", self.email);
        set_preferred(&mut attributes, "phoneNumbers", self.phone);
        set(
            &mut attributes,
            &[ENTERPRISE_USER_SCHEMA, "employeeNumber"],
            self.employee_number,
        );
        set(
            &mut attributes,
            &[ENTERPRISE_USER_SCHEMA, "department"],
            self.department,
        );
        set(
            &mut attributes,
            &[ENTERPRISE_USER_SCHEMA, "organization"],
            self.organization,
        );
        set(
            &mut attributes,
            &[DIRECTORY_USER_SCHEMA, "location"],
            self.location,
        );
        if let Some(name) = self
            .custom_attributes
            .keys()
            .find(|name| name.trim().is_empty())
        {
            return Err(ApiError::invalid(
                "customAttributes",
                format!("{name:?} is not a name"),
            ));
        }
        let custom: Vec<Value> = self
            .custom_attributes
            .into_iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        set_value(
            &mut attributes,
            &[DIRECTORY_USER_SCHEMA, "customAttributes"],
            (!custom.is_empty()).then_some(Value::Array(custom)),
        );
        let expired = self.password_expired.then_some(true);
        match expired {
            Some(_) => set_value(
                &mut attributes,
                &[DIRECTORY_USER_SCHEMA, "passwordExpired"],
                Some(json!(true)),
            ),
            None => set_value(
                &mut attributes,
                &[DIRECTORY_USER_SCHEMA, "passwordExpired"],
                None,
            ),
        }
        Ok(UserWrite {
            password: None,
            user_name,
            external_id: self.external_id,
            active: self.active,
            attributes,
        })
    }

    fn update(mut self, update: UserUpdate) -> Self {
        if let Some(user_name) = update.user_name {
            self.user_name = user_name;
        }
        if let Some(active) = update.active {
            self.active = active;
        }
        if let Some(expired) = update.password_expired {
            self.password_expired = expired;
        }
        let fields = [
            (&mut self.external_id, update.external_id),
            (&mut self.given_name, update.given_name),
            (&mut self.middle_name, update.middle_name),
            (&mut self.family_name, update.family_name),
            (&mut self.display_name, update.display_name),
            (&mut self.email, update.email),
            (&mut self.phone, update.phone),
            (&mut self.title, update.title),
            (&mut self.employee_number, update.employee_number),
            (&mut self.department, update.department),
            (&mut self.organization, update.organization),
            (&mut self.location, update.location),
        ];
        for (field, change) in fields {
            if let Some(change) = change {
                *field = change;
            }
        }
        if let Some(custom) = update.custom_attributes {
            self.custom_attributes = custom;
        }
        self
    }
}

fn set(attributes: &mut Map<String, Value>, path: &[&str], value: Option<String>) {
    set_value(attributes, path, value.map(Value::String));
}

fn set_value(attributes: &mut Map<String, Value>, path: &[&str], value: Option<Value>) {
    let [key, rest @ ..] = path else {
        return;
    };
    if rest.is_empty() {
        match value {
            Some(value) => {
                attributes.insert((*key).to_string(), value);
            }
            None => {
                attributes.remove(*key);
            }
        }
        return;
    }
    if value.is_none() && !attributes.contains_key(*key) {
        return;
    }
    let slot = attributes
        .entry((*key).to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(inner) = slot {
        set_value(inner, rest, value);
        if inner.is_empty() {
            attributes.remove(*key);
        }
    }
}

/// Sets the work value of a multi-valued attribute, keeping the others.
fn set_preferred(attributes: &mut Map<String, Value>, name: &str, value: Option<String>) {
    let mut items: Vec<Value> = attributes
        .get(name)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // The same value `preferred` reads: work, else primary, else the first.
    let work = items
        .iter()
        .position(|item| item.get("type").and_then(Value::as_str) == Some("work"))
        .or_else(|| {
            items
                .iter()
                .position(|item| item.get("primary") == Some(&Value::Bool(true)))
        })
        .or(if items.is_empty() { None } else { Some(0) });
    match (value, work) {
        (Some(value), Some(index)) => {
            if let Some(Value::Object(item)) = items.get_mut(index) {
                item.insert("value".into(), Value::String(value));
            }
        }
        (Some(value), None) => {
            items.push(json!({ "value": value, "type": "work", "primary": true }))
        }
        (None, Some(index)) => {
            items.remove(index);
        }
        (None, None) => {}
    }
    if items.is_empty() {
        attributes.remove(name);
    } else {
        attributes.insert(name.to_string(), Value::Array(items));
    }
}

fn user_view(store: &dyn Store, user: UserRecord) -> Result<UserView, StoreError> {
    let groups = store
        .user_groups(&user.id)?
        .into_iter()
        .map(|group| group.display_name)
        .collect();
    Ok(UserView {
        id: user.id.clone(),
        fields: UserFields::of(&user),
        groups,
        version: user.version,
        created: user.created.to_string(),
        modified: user.modified.to_string(),
    })
}

/// List directory users, by userName.
#[utoipa::path(get, path = "/users", tag = "directory", params(PageParams),
    responses((status = 200, body = PageOf<UserView>), (status = 401, body = ApiErrorBody)))]
async fn list_users(
    State(state): State<ApiState>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<UserView>>, ApiError> {
    let page = page.page()?;
    store_call(&state, move |store| {
        let listing = store.list_users(page)?;
        let items = listing
            .items
            .into_iter()
            .map(|user| user_view(store, user))
            .collect::<Result<_, _>>()?;
        Ok(PageOf {
            items,
            total: listing.total,
            offset: page.offset,
            limit: page.limit,
        })
    })
    .await
    .map(Json)
}

/// Create a directory user.
#[utoipa::path(post, path = "/users", tag = "directory", request_body = UserFields,
    responses((status = 201, body = UserView), (status = 409, description = "userName taken", body = ApiErrorBody),
        (status = 422, body = ApiErrorBody)))]
async fn create_user(
    State(state): State<ApiState>,
    Body(fields): Body<UserFields>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let write = fields.into_write(Map::new())?;
    let view = store_call(&state, move |store| {
        let user = store.create_user(write)?;
        user_view(store, user)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A directory user by id or userName.
#[utoipa::path(get, path = "/users/{user}", tag = "directory", params(("user" = String, Path, description = "id or userName")),
    responses((status = 200, body = UserView), (status = 404, body = ApiErrorBody)))]
async fn get_user(
    State(state): State<ApiState>,
    Path(user): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    store_call(&state, move |store| {
        let user = user_by_id_or_name(store, &user)?;
        user_view(store, user)
    })
    .await
    .map(Json)
}

/// Change some attributes of a user.
#[utoipa::path(patch, path = "/users/{user}", tag = "directory", request_body = UserUpdate,
    params(("user" = String, Path, description = "id or userName")),
    responses((status = 200, body = UserView), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
async fn update_user(
    State(state): State<ApiState>,
    Path(user): Path<String>,
    Body(update): Body<UserUpdate>,
) -> Result<Json<UserView>, ApiError> {
    let result = store_call(&state, move |store| {
        let current = user_by_id_or_name(store, &user)?;
        let write = UserFields::of(&current)
            .update(update)
            .into_write(current.attributes.clone());
        match write {
            Ok(write) => {
                let user = store.replace_user(&current.id, write, Some(current.version))?;
                Ok(Ok(user_view(store, user)?))
            }
            Err(error) => Ok(Err(error)),
        }
    })
    .await?;
    result.map(Json)
}

/// Delete a user and their memberships.
#[utoipa::path(delete, path = "/users/{user}", tag = "directory", params(("user" = String, Path, description = "id or userName")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
async fn delete_user(
    State(state): State<ApiState>,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    store_call(&state, move |store| {
        let user = user_by_id_or_name(store, &user)?;
        store.delete_user(&user.id, None)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A password to set. (No `Debug`: it is the password.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordInput {
    pub password: String,
}

/// Set a user's password. It is kept sealed only until every application
/// that takes passwords has it (each gets it once), and is never returned.
#[utoipa::path(put, path = "/users/{user}/password", tag = "directory",
    params(("user" = String, Path, description = "id or userName")), request_body = PasswordInput,
    responses((status = 204), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
async fn set_password(
    State(state): State<ApiState>,
    Path(user): Path<String>,
    Body(input): Body<PasswordInput>,
) -> Result<StatusCode, ApiError> {
    let password = crate::secrets::Secret::new(input.password);
    if password.expose().is_empty() {
        return Err(ApiError::invalid("password", "must not be empty"));
    }
    if password.expose().chars().count() > crate::scim::schema::MAX_PASSWORD_CHARACTERS {
        return Err(ApiError::invalid(
            "password",
            format!(
                "must be at most {} characters",
                crate::scim::schema::MAX_PASSWORD_CHARACTERS
            ),
        ));
    }
    store_call(&state, move |store| {
        let user = user_by_id_or_name(store, &user)?;
        store.set_password(&user.id, &password)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A group as the admin API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub members: Vec<MemberView>,
    pub version: i64,
    pub created: String,
    pub modified: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberView {
    pub id: String,
    /// `User` or `Group`.
    pub kind: String,
    /// userName or group name.
    pub name: String,
}

impl From<GroupRecord> for GroupView {
    fn from(group: GroupRecord) -> Self {
        GroupView {
            description: group
                .attributes
                .get(crate::scim::schema::DIRECTORY_GROUP_SCHEMA)
                .and_then(|ext| ext.get("description"))
                .and_then(Value::as_str)
                .map(str::to_string),
            id: group.id,
            name: group.display_name,
            members: group
                .members
                .into_iter()
                .map(|member| MemberView {
                    id: member.id,
                    kind: member.kind.as_str().to_string(),
                    name: member.display,
                })
                .collect(),
            version: group.version,
            created: group.created.to_string(),
            modified: group.modified.to_string(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupUpdate {
    /// A new name: the group is renamed in every application.
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
}

fn group_attributes(
    name: &str,
    description: Option<String>,
    mut attributes: Map<String, Value>,
) -> Map<String, Value> {
    attributes.insert("displayName".into(), json!(name));
    set(
        &mut attributes,
        &[crate::scim::schema::DIRECTORY_GROUP_SCHEMA, "description"],
        description,
    );
    attributes
}

fn check_group_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("name", "name must not be empty"));
    }
    Ok(name.to_string())
}

/// List groups, by name.
#[utoipa::path(get, path = "/groups", tag = "directory", params(PageParams),
    responses((status = 200, body = PageOf<GroupView>)))]
async fn list_groups(
    State(state): State<ApiState>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<GroupView>>, ApiError> {
    let page = page.page()?;
    store_call(&state, move |store| {
        let listing = store.list_groups(page)?;
        Ok(PageOf {
            items: listing.items.into_iter().map(GroupView::from).collect(),
            total: listing.total,
            offset: page.offset,
            limit: page.limit,
        })
    })
    .await
    .map(Json)
}

/// Create a group.
#[utoipa::path(post, path = "/groups", tag = "directory", request_body = GroupInput,
    responses((status = 201, body = GroupView), (status = 409, body = ApiErrorBody)))]
async fn create_group(
    State(state): State<ApiState>,
    Body(input): Body<GroupInput>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    let name = check_group_name(&input.name)?;
    let group = store_call(&state, move |store| {
        store.create_group(GroupWrite {
            attributes: group_attributes(&name, input.description, Map::new()),
            display_name: name,
            external_id: None,
            members: None,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(group.into())))
}

/// A group by id or name.
#[utoipa::path(get, path = "/groups/{group}", tag = "directory", params(("group" = String, Path, description = "id or name")),
    responses((status = 200, body = GroupView), (status = 404, body = ApiErrorBody)))]
async fn get_group(
    State(state): State<ApiState>,
    Path(group): Path<String>,
) -> Result<Json<GroupView>, ApiError> {
    store_call(&state, move |store| group_by_id_or_name(store, &group))
        .await
        .map(|g| Json(g.into()))
}

/// Rename a group or change its description.
#[utoipa::path(patch, path = "/groups/{group}", tag = "directory", request_body = GroupUpdate,
    params(("group" = String, Path, description = "id or name")),
    responses((status = 200, body = GroupView), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
async fn update_group(
    State(state): State<ApiState>,
    Path(group): Path<String>,
    Body(update): Body<GroupUpdate>,
) -> Result<Json<GroupView>, ApiError> {
    let name = update.name.as_deref().map(check_group_name).transpose()?;
    store_call(&state, move |store| {
        let current = group_by_id_or_name(store, &group)?;
        let name = name.unwrap_or(current.display_name.clone());
        let description = match update.description {
            Some(description) => description,
            None => GroupView::from(current.clone()).description,
        };
        store.replace_group(
            &current.id,
            GroupWrite {
                attributes: group_attributes(&name, description, current.attributes.clone()),
                display_name: name,
                external_id: current.external_id.clone(),
                members: None,
            },
            Some(current.version),
        )
    })
    .await
    .map(|g| Json(g.into()))
}

/// Delete a group: it is deleted or left in each application as the
/// application's rules say.
#[utoipa::path(delete, path = "/groups/{group}", tag = "directory", params(("group" = String, Path, description = "id or name")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
async fn delete_group(
    State(state): State<ApiState>,
    Path(group): Path<String>,
) -> Result<StatusCode, ApiError> {
    store_call(&state, move |store| {
        let group_id = group_id_by_id_or_name(store, &group)?;
        store.delete_group(&group_id, None)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a user or a group (nested) to a group.
#[utoipa::path(put, path = "/groups/{group}/members/{member}", tag = "directory",
    params(("group" = String, Path, description = "id or name"),
        ("member" = String, Path, description = "a user's id or userName, or a group's id or name")),
    responses((status = 200, body = GroupView), (status = 404, body = ApiErrorBody),
        (status = 422, description = "the membership would form a cycle", body = ApiErrorBody)))]
async fn add_member(
    State(state): State<ApiState>,
    Path((group, member)): Path<(String, String)>,
) -> Result<Json<GroupView>, ApiError> {
    store_call(&state, move |store| {
        let group_id = group_id_by_id_or_name(store, &group)?;
        let member = match user_by_id_or_name(store, &member) {
            Ok(user) => Member {
                id: user.id,
                kind: MemberKind::User,
            },
            Err(StoreError::NotFound { .. }) => {
                let nested =
                    group_id_by_id_or_name(store, &member).map_err(|_| StoreError::NotFound {
                        entity: "user or group",
                        key: member.clone(),
                    })?;
                Member {
                    id: nested,
                    kind: MemberKind::Group,
                }
            }
            Err(error) => return Err(error),
        };
        store.change_members(&group_id, &[member], &[])
    })
    .await
    .map(|g| Json(g.into()))
}

/// Remove a member from a group.
#[utoipa::path(delete, path = "/groups/{group}/members/{member}", tag = "directory",
    params(("group" = String, Path, description = "id or name"), ("member" = String, Path, description = "id, userName or group name")),
    responses((status = 200, body = GroupView), (status = 404, body = ApiErrorBody)))]
async fn remove_member(
    State(state): State<ApiState>,
    Path((group, member)): Path<(String, String)>,
) -> Result<Json<GroupView>, ApiError> {
    store_call(&state, move |store| {
        let group = group_by_id_or_name(store, &group)?;
        let id = group
            .members
            .iter()
            .find(|m| m.id == member || m.display.eq_ignore_ascii_case(&member))
            .map(|m| m.id.clone())
            .ok_or_else(|| StoreError::NotFound {
                entity: "member",
                key: member.clone(),
            })?;
        store.change_members(&group.id, &[], &[id])
    })
    .await
    .map(|g| Json(g.into()))
}

/// Users and groups to write in one transaction.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Matched on userName: existing users are updated with the fields
    /// given; fields left out (`active` included) stay as they are.
    #[serde(default)]
    #[schema(value_type = Vec<UserFields>)]
    pub users: Vec<Map<String, Value>>,
    #[serde(default)]
    pub groups: Vec<ImportGroupInput>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportGroupInput {
    pub name: String,
    /// userNames, added to the group's members.
    #[serde(default)]
    pub members: Vec<String>,
}

/// Import users and groups in one transaction: all of it, or nothing.
#[utoipa::path(post, path = "/directory/import", tag = "directory", request_body = ImportRequest,
    responses((status = 200, body = ImportOutcomeView), (status = 422, body = ApiErrorBody)))]
async fn import(
    State(state): State<ApiState>,
    Body(request): Body<ImportRequest>,
) -> Result<Json<ImportOutcomeView>, ApiError> {
    let batch = import_batch(request)?;
    store_call(&state, move |store| store.import(batch))
        .await
        .map(|outcome| Json(outcome.into()))
}

/// Checks an import request whole and makes the batch the store writes.
pub(super) fn import_batch(request: ImportRequest) -> Result<ImportBatch, ApiError> {
    let mut batch = ImportBatch::default();
    for (index, fields) in request.users.into_iter().enumerate() {
        let at = |error: ApiError| {
            let field = error.detail.field.clone().unwrap_or_default();
            let mut error = error;
            error.detail.field = Some(format!("users[{index}].{field}"));
            error
        };
        let active_given = fields.contains_key("active");
        let expired_given = fields.get("passwordExpired").and_then(Value::as_bool);
        let fields: UserFields = serde_json::from_value(Value::Object(fields))
            .map_err(|error| at(ApiError::invalid("", error.to_string())))?;
        let mut write = fields.into_write(Map::new()).map_err(at)?;
        if !active_given {
            write.attributes.remove("active");
        }
        if expired_given == Some(false) {
            set_value(
                &mut write.attributes,
                &[DIRECTORY_USER_SCHEMA, "passwordExpired"],
                Some(json!(false)),
            );
        }
        batch.users.push(write);
    }
    for (index, group) in request.groups.into_iter().enumerate() {
        let name = check_group_name(&group.name).map_err(|_| {
            ApiError::invalid(
                &format!("groups[{index}].name"),
                "a group name must not be empty",
            )
        })?;
        batch.groups.push(ImportGroup {
            display_name: name,
            member_user_names: group.members,
        });
    }
    Ok(batch)
}

/// [`create_user`]'s checks.
pub(super) fn check_user_create(fields: UserFields) -> Result<(), ApiError> {
    fields.into_write(Map::new()).map(drop)
}

/// [`update_user`]'s checks, applied to a user with a name, a work email
/// and a phone number.
pub(super) fn check_user_update(update: UserUpdate) -> Result<(), ApiError> {
    let current = UserFields {
        user_name: "ada".into(),
        given_name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
        phone: Some("+1 555 0100".into()),
        ..UserFields::default()
    };
    let attributes = current.clone().into_write(Map::new())?.attributes;
    current.update(update).into_write(attributes).map(drop)
}

/// [`create_group`]'s checks.
pub(super) fn check_group_create(input: &GroupInput) -> Result<(), ApiError> {
    check_group_name(&input.name).map(drop)
}

/// [`update_group`]'s checks.
pub(super) fn check_group_update(update: &GroupUpdate) -> Result<(), ApiError> {
    update
        .name
        .as_deref()
        .map(check_group_name)
        .transpose()
        .map(drop)
}
