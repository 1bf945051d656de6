//! An application's settings as a connector reads them.

use crate::{MappingError, Setting};

/// The settings the operator configured for one application (tenant ids,
/// feature switches). Never credentials: those stay in the host.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    entries: Vec<Setting>,
}

impl Settings {
    /// The value of `key`, if the operator set one. Keys match exactly.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    /// The value of `key`, or a mapping error naming it.
    pub fn require(&self, key: &str) -> Result<&str, MappingError> {
        self.get(key)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| MappingError::invalid(key, format!("the setting `{key}` is required")))
    }

    /// A boolean setting: "true", "yes", "1" and "on" (any case) are true.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "yes" | "1" | "on"
            )
        })
    }
}

impl From<Vec<Setting>> for Settings {
    fn from(entries: Vec<Setting>) -> Self {
        Settings { entries }
    }
}

impl<const N: usize> From<[(&str, &str); N]> for Settings {
    fn from(pairs: [(&str, &str); N]) -> Self {
        Settings {
            entries: pairs
                .iter()
                .map(|(key, value)| Setting {
                    key: (*key).to_owned(),
                    value: (*value).to_owned(),
                })
                .collect(),
        }
    }
}
