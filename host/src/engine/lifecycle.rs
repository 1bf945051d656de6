//! An application's integration lifecycle: activation, token rotation,
//! update, deactivation — each an attempt that ends in an audit event.
//!
//! Testing a connection asks `GET /ServiceProviderConfig` (and keeps what
//! the application says it supports; an application without that endpoint
//! is tested all the same), then `GET /Users?count=1`, which proves the
//! token: discovery often answers without one. Each request is tried at
//! most twice, with a short wait: someone is waiting for the answer. A test of the application's own
//! token ([`test_with`]) goes through its shared client
//! ([`super::connections::Clients`]), so its rate limit and `Retry-After`
//! pause hold for the test too; a new token not yet kept
//! ([`test_connection`]) is tested through a client of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::scim_client::{ClientSettings, ScimClient, ScimClientError, ScimRequest};
use crate::store::Timestamp;
use crate::store::{AppRecord, Event, Outcome, Secret};

pub const ACTIVATE: &str = "idm_integration_activate";
pub const UPDATE: &str = "idm_integration_update";
pub const REAUTH: &str = "idm_integration_reauth";
pub const DELETE: &str = "idm_integration_delete";

/// `{key}` placeholders of a URL template, filled from settings.
///
/// A value can never move the URL elsewhere: in the host part it must be a
/// DNS label (letters, digits, `-`), so it can name a tenant's subdomain
/// but not another host, port or user; anywhere else it is percent-encoded
/// as one path segment or query value, so it cannot add a path, a query or
/// a fragment.
pub fn fill_placeholders(
    template: &str,
    settings: &BTreeMap<String, String>,
) -> Result<String, String> {
    // The authority ends at the first `/`, `?` or `#` after `scheme://`.
    let authority_end = template.find("://").map(|scheme_end| {
        let rest = &template[scheme_end + 3..];
        scheme_end + 3 + rest.find(['/', '?', '#']).unwrap_or(rest.len())
    });
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let at = template.len() - rest.len() + start;
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err("an unclosed { in the base URL".into());
        };
        let key = &after[..end];
        let value = settings
            .get(key)
            .ok_or_else(|| format!("the base URL needs the setting {key:?}"))?;
        if authority_end.is_some_and(|authority_end| at < authority_end) {
            let label = !value.is_empty()
                && value.len() <= 63
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !label {
                return Err(format!(
                    "the setting {key:?} names part of the base URL's host, so it may hold only \
                     letters, digits and '-', not {value:?}"
                ));
            }
            out.push_str(value);
        } else {
            out.push_str(&crate::scim_client::percent_encode(value));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The application's base URL with its placeholders filled.
pub fn resolved_base_url(app: &AppRecord) -> Result<String, String> {
    let settings: BTreeMap<String, String> = app.settings.iter().cloned().collect();
    fill_placeholders(&app.base_url, &settings)
}

/// A change of an application's origin (scheme, host, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginMove {
    /// `https://host[:port]`, or `(unresolved)`.
    pub from: String,
    pub to: String,
}

/// Whether the application would move to another origin if its base URL
/// and settings became `base_url_then` and `settings_then`. A base URL that
/// does not resolve counts as an origin of its own (`(unresolved)`), so a
/// change to or from one is a move.
pub fn origin_move(
    base_url_now: &str,
    settings_now: &BTreeMap<String, String>,
    base_url_then: &str,
    settings_then: &BTreeMap<String, String>,
) -> Option<OriginMove> {
    let now = resolved_origin(base_url_now, settings_now);
    let then = resolved_origin(base_url_then, settings_then);
    let shown = |origin: Option<String>| origin.unwrap_or_else(|| "(unresolved)".into());
    (now != then).then(|| OriginMove {
        from: shown(now),
        to: shown(then),
    })
}

/// The origin a base URL template resolves to with these settings, as
/// `https://host[:port]`; `None` when it does not resolve to an http(s) URL.
fn resolved_origin(base_url: &str, settings: &BTreeMap<String, String>) -> Option<String> {
    let resolved = fill_placeholders(base_url, settings).ok()?;
    let origin = reqwest::Url::parse(&resolved).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// A connection test that passed: what the application supports, and a
/// summary for the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Tested {
    pub capabilities: Value,
    pub summary: String,
    pub http_status: u16,
}

/// A connection test that failed, with what the event should say.
#[derive(Debug, Clone, PartialEq)]
pub struct Untested {
    pub summary: String,
    pub http_status: Option<u16>,
}

fn test_settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(15),
        max_attempts: 2,
        max_retry_after: Duration::from_secs(5),
        breaker_threshold: u32::MAX,
        ..ClientSettings::default()
    }
}

/// Tests the connection to `app` with a `token` it does not hold yet.
pub async fn test_connection(app: &AppRecord, token: &Secret) -> Result<Tested, Untested> {
    let base = resolved_base_url(app).map_err(|reason| Untested {
        summary: reason,
        http_status: None,
    })?;
    let client = ScimClient::new(&base, token, test_settings()).map_err(|error| Untested {
        summary: error.to_string(),
        http_status: None,
    })?;
    test_with(&client).await
}

/// Tests the connection through `client`.
pub async fn test_with(client: &ScimClient) -> Result<Tested, Untested> {
    let base = client.base_url().to_string();
    // What the application supports. Some applications (and RFC 7644
    // §4) answer discovery without authentication, so this proves nothing
    // about the token.
    let (capabilities, discovery) = match client
        .probe(&ScimRequest::get("/ServiceProviderConfig"))
        .await
    {
        Ok(answer) => {
            let supported = |feature: &str| {
                answer
                    .body()
                    .pointer(&format!("/{feature}/supported"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            };
            let features: Vec<&str> = ["patch", "filter", "sort", "etag", "bulk"]
                .into_iter()
                .filter(|feature| supported(feature))
                .collect();
            let capabilities = json!({
                "source": "ServiceProviderConfig",
                "patch": supported("patch"),
                "bulk": supported("bulk"),
                "filter": supported("filter"),
                "sort": supported("sort"),
                "etag": supported("etag"),
                "changePassword": supported("changePassword"),
                "maxResults": answer.body().pointer("/filter/maxResults").cloned().unwrap_or(Value::Null),
            });
            let declared = if features.is_empty() {
                "nothing declared".to_string()
            } else {
                features.join(", ")
            };
            (
                capabilities,
                format!(
                    "GET /ServiceProviderConfig → {}, supports {declared}",
                    answer.status.as_u16()
                ),
            )
        }
        Err(error) if matches!(error.status(), Some(404 | 405 | 501)) => (
            json!({ "source": "none" }),
            format!(
                "GET /ServiceProviderConfig → {} (no discovery)",
                error.status().unwrap_or_default()
            ),
        ),
        Err(error) => return Err(untested(&base, &error)),
    };
    // A one-result query proves the token.
    let answer = client
        .probe(&ScimRequest::get("/Users?count=1"))
        .await
        .map_err(|error| untested(&base, &error))?;
    Ok(Tested {
        summary: format!(
            "{base}: {discovery}; GET /Users?count=1 → {}",
            answer.status.as_u16()
        ),
        http_status: answer.status.as_u16(),
        capabilities,
    })
}

fn untested(base: &str, error: &ScimClientError) -> Untested {
    let hint = match error.status() {
        Some(401 | 403) => "; the application refused the token",
        _ => "",
    };
    Untested {
        summary: format!("{base}: {error}{hint}"),
        http_status: error.status(),
    }
}

/// An event about an application as a whole.
pub fn event(
    app: &AppRecord,
    operation: &str,
    outcome: Outcome,
    http_status: Option<u16>,
    summary: impl Into<String>,
) -> Event {
    Event {
        id: String::new(),
        at: Timestamp::now(),
        app_id: Some(app.id.clone()),
        app_name: Some(app.name.clone()),
        object_kind: Some("app".into()),
        object_id: Some(app.id.clone()),
        operation: operation.to_string(),
        outcome,
        rule: None,
        http_status,
        summary: summary.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_cannot_move_the_base_url_elsewhere() {
        let settings = |value: &str| BTreeMap::from([("tenant".to_string(), value.to_string())]);
        // In the host: a DNS label only.
        assert_eq!(
            fill_placeholders("https://{tenant}.app.example/scim", &settings("acme-1")).unwrap(),
            "https://acme-1.app.example/scim"
        );
        for hostile in [
            "evil.example/#",
            "evil.example#",
            "x@evil.example",
            "a:1",
            "",
        ] {
            let error = fill_placeholders("https://{tenant}.app.example/scim", &settings(hostile))
                .unwrap_err();
            assert!(error.contains("letters, digits and '-'"), "{error}");
        }
        // In the path: one segment, encoded.
        assert_eq!(
            fill_placeholders("https://app.example/{tenant}/v2", &settings("../other?x#y"))
                .unwrap(),
            "https://app.example/..%2Fother%3Fx%23y/v2"
        );
    }

    #[test]
    fn placeholders_are_filled_from_settings() {
        let settings = BTreeMap::from([("tenantId".to_string(), "42".to_string())]);
        assert_eq!(
            fill_placeholders("https://x.example/org-{tenantId}/v2", &settings).unwrap(),
            "https://x.example/org-42/v2"
        );
        assert!(fill_placeholders("https://x.example/{missing}", &settings).is_err());
        assert!(fill_placeholders("https://x.example/{open", &settings).is_err());
    }
}
