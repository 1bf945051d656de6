//! The code behind [`export_connector!`](crate::export_connector): converts
//! between the contract's wire forms (JSON text, setting lists) and the
//! typed forms a [`Connector`] works with.

use crate::{
    Connector, DirectoryGroup, DirectoryUser, MappingError, ScimJson, Setting, Settings, Value,
};

pub fn map_user<C: Connector>(
    user: &DirectoryUser,
    settings: Vec<Setting>,
) -> Result<String, MappingError> {
    C::map_user(user, &Settings::from(settings)).map(ScimJson::into_text)
}

pub fn map_users<C: Connector>(
    users: &[DirectoryUser],
    settings: Vec<Setting>,
) -> Vec<Result<String, MappingError>> {
    let settings = Settings::from(settings);
    users
        .iter()
        .map(|user| C::map_user(user, &settings).map(ScimJson::into_text))
        .collect()
}

pub fn map_group<C: Connector>(
    group: &DirectoryGroup,
    settings: Vec<Setting>,
) -> Result<String, MappingError> {
    C::map_group(group, &Settings::from(settings)).map(ScimJson::into_text)
}

pub fn read_user<C: Connector>(
    scim_user: &str,
    settings: Vec<Setting>,
) -> Result<DirectoryUser, MappingError> {
    let document: Value = serde_json::from_str(scim_user)
        .map_err(|e| MappingError::other(format!("the SCIM user is not JSON: {e}")))?;
    C::read_user(&document, &Settings::from(settings))
}
