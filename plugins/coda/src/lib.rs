//! The Coda connector: users only, with the five attributes Coda's SCIM
//! API manages (see README.md).
//!
//! Coda has no SCIM groups: group membership in the directory only decides
//! who is provisioned, and the manifest says so (`groups: false`), so the
//! host never pushes a group. Offboarding deactivates, never deletes: a
//! Coda account holds documents the customer may still need.

use scimlink_sdk::prelude::*;

pub struct Coda;

/// The organization's SCIM base URL; `tenantId` is the id in Coda's
/// "org-…" (its Organization Admin Console shows the whole URL).
pub const BASE_URL: &str = "https://coda.io/scim/v2/organizations/org-{tenantId}";

impl Connector for Coda {
    fn manifest() -> Manifest {
        Manifest::new("coda", env!("CARGO_PKG_VERSION"))
            .description("Coda: users only (userName, active, name, company email)")
            .base_url(BASE_URL)
            .setting(
                "tenantId",
                "Coda organization id: the part after org- in the SCIM base URL",
                true,
            )
            .groups(false)
            .direct_assignment(true)
            .offboarding(Offboarding::Deactivate)
            .required_attributes(&["username", "first-name", "last-name", "emails"])
    }

    fn map_user(user: &DirectoryUser, _settings: &Settings) -> Result<ScimJson, MappingError> {
        let company_email = company_email(user)
            .map(|email| json!([{ "value": email, "type": "work", "primary": true }]));
        Ok(ScimResource::user()
            .set("userName", user.username.as_str())
            .set("active", defaults::is_active(user))
            .set_opt("name.givenName", user.first_name.as_deref())
            .set_opt("name.familyName", user.last_name.as_deref())
            .set_opt("emails", company_email)
            .build()
            .into())
    }
}

/// The company email: the work email, else the primary one, else the first.
pub fn company_email(user: &DirectoryUser) -> Option<&str> {
    user.emails
        .iter()
        .find(|email| email.kind.as_deref() == Some("work"))
        .map(|email| email.value.as_str())
        .filter(|value| !value.trim().is_empty())
        .or_else(|| defaults::primary_email(user))
}

scimlink_sdk::export_connector!(Coda);

#[cfg(test)]
mod tests {
    use super::*;
    use scimlink_sdk::Email;

    fn user() -> DirectoryUser {
        defaults::sample_user()
    }

    #[test]
    fn maps_exactly_the_five_coda_attributes() {
        let document = Coda::map_user(&user(), &Settings::default())
            .unwrap()
            .value();
        let mut keys: Vec<&str> = document
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["active", "emails", "name", "schemas", "userName"]);
        assert_eq!(document["userName"], "ada.lovelace");
        assert_eq!(document["active"], true);
        assert_eq!(
            document["name"],
            json!({ "givenName": "Ada", "familyName": "Lovelace" })
        );
        assert_eq!(
            document["emails"],
            json!([{ "value": "ada@example.com", "type": "work", "primary": true }])
        );
    }

    #[test]
    fn the_company_email_is_the_work_one() {
        let mut user = user();
        user.emails = vec![
            Email {
                value: "ada@home.example".into(),
                kind: Some("home".into()),
                primary: true,
            },
            Email {
                value: "ada@analytical.example".into(),
                kind: Some("work".into()),
                primary: false,
            },
        ];
        assert_eq!(company_email(&user), Some("ada@analytical.example"));
        user.emails.remove(1);
        assert_eq!(company_email(&user), Some("ada@home.example"));
    }

    #[test]
    fn missing_optional_attributes_are_left_out_and_status_follows_the_directory() {
        let mut user = user();
        user.first_name = None;
        user.last_name = None;
        user.emails.clear();
        user.suspended = true;
        let document = Coda::map_user(&user, &Settings::default()).unwrap().value();
        assert_eq!(document["active"], false);
        assert!(document.get("name").is_none() && document.get("emails").is_none());
    }

    #[test]
    fn non_ascii_and_long_values_pass_through() {
        let mut user = user();
        user.username = "zoë.ñúñez".into();
        user.last_name = Some("Ø".repeat(2000));
        let document = Coda::map_user(&user, &Settings::default()).unwrap().value();
        assert_eq!(document["userName"], "zoë.ñúñez");
        assert_eq!(
            document["name"]["familyName"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            2000
        );
    }

    #[test]
    fn users_only_deactivated_on_offboarding_with_a_tenant_url() {
        let manifest = Coda::manifest();
        assert!(!manifest.capabilities.groups);
        assert!(!manifest.capabilities.passwords.on_create);
        assert_eq!(manifest.capabilities.passwords.on_change, None);
        assert_eq!(manifest.capabilities.offboarding, Offboarding::Deactivate);
        assert_eq!(manifest.base_url_template.as_deref(), Some(BASE_URL));
        assert!(
            manifest
                .settings
                .iter()
                .any(|s| s.key == "tenantId" && s.required)
        );
    }
}
