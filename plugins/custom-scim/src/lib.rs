//! The generic custom SCIM connector: any application that speaks plain
//! SCIM 2.0. It keeps every default of the SDK — the full attribute set,
//! takeover by userName then email, PATCH updates, deactivation on
//! offboarding, groups pushed with their members — so it is also the
//! reference for what "plain SCIM" means in scimlink.
//!
//! Its application takes passwords, as JumpCloud's generic connector
//! does: a new account gets a temporary password (or the user's own), and
//! every password the user sets later is sent by PATCH. The connector
//! never sees them; the host adds `password` to the documents it makes.

use scimlink_sdk::prelude::*;

pub struct CustomScim;

impl Connector for CustomScim {
    fn manifest() -> Manifest {
        Manifest::new("custom-scim", env!("CARGO_PKG_VERSION"))
            .description(
                "Any SCIM 2.0 application: core User and Group with the enterprise extension",
            )
            .passwords(true, Some(UpdateMethod::Patch))
    }
}

scimlink_sdk::export_connector!(CustomScim);

#[cfg(test)]
mod tests {
    use super::*;
    use scimlink_sdk::scim::ENTERPRISE_USER_SCHEMA;

    #[test]
    fn its_application_takes_passwords_on_create_and_by_patch() {
        let passwords = CustomScim::manifest().capabilities.passwords;
        assert!(passwords.on_create);
        assert_eq!(passwords.on_change, Some(UpdateMethod::Patch));
    }

    #[test]
    fn maps_the_full_default_attribute_set() {
        let user = defaults::sample_user();
        let document = CustomScim::map_user(&user, &Settings::default())
            .unwrap()
            .value();
        assert_eq!(document["externalId"], user.id.as_str());
        assert_eq!(document["userName"], "ada.lovelace");
        assert_eq!(document["active"], true);
        assert_eq!(document["name"]["givenName"], "Ada");
        assert_eq!(document["name"]["middleName"], "King");
        assert_eq!(document["name"]["familyName"], "Lovelace");
        assert_eq!(document["displayName"], "Ada Lovelace");
        assert_eq!(document["emails"][0]["value"], "ada@example.com");
        assert_eq!(document["emails"][0]["primary"], true);
        assert_eq!(
            document["addresses"][0]["streetAddress"],
            "12 St James's Square"
        );
        assert_eq!(document["addresses"][0]["postalCode"], "SW1Y 4LB");
        assert_eq!(document["addresses"][0]["country"], "GB");
        assert_eq!(document["phoneNumbers"][0]["type"], "work");
        assert_eq!(document["title"], "Mathematician");
        let enterprise = &document[ENTERPRISE_USER_SCHEMA];
        assert_eq!(enterprise["employeeNumber"], "E-1815");
        assert_eq!(enterprise["department"], "Analytical Engines");
        assert_eq!(enterprise["organization"], "Babbage & Co");
    }

    #[test]
    fn a_user_with_only_a_username_maps_without_empty_values() {
        let user = DirectoryUser {
            id: "u1".into(),
            username: "bare".into(),
            password_expired: false,
            suspended: false,
            first_name: None,
            middle_name: None,
            last_name: None,
            display_name: None,
            emails: vec![],
            addresses: vec![],
            phones: vec![],
            employee_identifier: None,
            department: None,
            company: None,
            job_title: None,
            location: None,
            custom_attributes: vec![],
        };
        let document = CustomScim::map_user(&user, &Settings::default())
            .unwrap()
            .value();
        assert_eq!(
            document,
            json!({
                "schemas": [scim::USER_SCHEMA],
                "externalId": "u1",
                "userName": "bare",
                "active": true,
            })
        );
    }
}
