//! Reading a directory import file: CSV or JSON, checked whole before
//! anything is sent, with errors that name the row and the column.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::api::directory::{ImportGroupInput, UserFields};

/// CSV columns and the user fields they fill.
const COLUMNS: &[(&str, &str)] = &[
    ("username", "userName"),
    ("email", "email"),
    ("givenname", "givenName"),
    ("firstname", "givenName"),
    ("middlename", "middleName"),
    ("familyname", "familyName"),
    ("lastname", "familyName"),
    ("displayname", "displayName"),
    ("active", "active"),
    ("passwordexpired", "passwordExpired"),
    ("title", "title"),
    ("jobtitle", "title"),
    ("department", "department"),
    ("employeenumber", "employeeNumber"),
    ("employeeid", "employeeNumber"),
    ("organization", "organization"),
    ("company", "organization"),
    ("location", "location"),
    ("phone", "phone"),
    ("externalid", "externalId"),
];

/// Users (as admin API user objects) and groups of an import file.
pub fn read_file(path: &Path) -> anyhow::Result<(Vec<Value>, Vec<ImportGroupInput>)> {
    let text = std::fs::read_to_string(path).context("cannot read the file")?;
    let named_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    read_text(&text, named_json)
}

/// Users and groups of an import file's text: JSON when `named_json` (the
/// file's name ends in `.json`) or when it starts with `{`, else CSV.
pub fn read_text(
    text: &str,
    named_json: bool,
) -> anyhow::Result<(Vec<Value>, Vec<ImportGroupInput>)> {
    let is_json = named_json || text.trim_start().starts_with('{');
    let (users, groups) = if is_json {
        read_json(text)?
    } else {
        read_csv(text)?
    };
    let mut seen = HashSet::new();
    for (index, user) in users.iter().enumerate() {
        let fields: UserFields = serde_json::from_value(user.clone())
            .with_context(|| format!("user {}: not a valid user", index + 1))?;
        if fields.user_name.trim().is_empty() {
            bail!("user {}: userName is empty", index + 1);
        }
        if !seen.insert(fields.user_name.to_lowercase()) {
            bail!(
                "user {}: userName {:?} appears twice",
                index + 1,
                fields.user_name
            );
        }
    }
    for group in &groups {
        if group.name.trim().is_empty() {
            bail!("a group has an empty name");
        }
    }
    Ok((users, groups))
}

fn read_json(text: &str) -> anyhow::Result<(Vec<Value>, Vec<ImportGroupInput>)> {
    let document: Value = serde_json::from_str(text).context("not valid JSON")?;
    let Value::Object(mut document) = document else {
        bail!("the JSON must be an object with \"users\" and optionally \"groups\"");
    };
    let users = match document.remove("users") {
        None => Vec::new(),
        Some(Value::Array(users)) => users,
        Some(_) => bail!("\"users\" must be a list"),
    };
    let groups = match document.remove("groups") {
        None => Vec::new(),
        Some(groups) => serde_json::from_value(groups)
            .context("\"groups\" must be a list of {name, members}")?,
    };
    if let Some(key) = document.keys().next() {
        bail!("unknown key {key:?}: expected \"users\" and \"groups\"");
    }
    Ok((users, groups))
}

fn read_csv(text: &str) -> anyhow::Result<(Vec<Value>, Vec<ImportGroupInput>)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .context("cannot read the header row")?
        .clone();
    let mut columns = Vec::with_capacity(headers.len());
    for header in &headers {
        let key: String = header
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
            .to_lowercase();
        if key == "groups" {
            columns.push(Some("groups"));
            continue;
        }
        match COLUMNS.iter().find(|(name, _)| *name == key) {
            Some((_, field)) => columns.push(Some(*field)),
            None => bail!("unknown column {header:?}"),
        }
    }
    if !columns.contains(&Some("userName")) {
        bail!("the header row has no userName column");
    }
    let mut users = Vec::new();
    let mut memberships: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.with_context(|| format!("line {line}"))?;
        let mut user = Map::new();
        let mut user_name = String::new();
        for (value, column) in record.iter().zip(&columns) {
            let Some(field) = column else { continue };
            if value.is_empty() {
                continue;
            }
            match *field {
                "groups" => {
                    for group in value.split(';').map(str::trim).filter(|g| !g.is_empty()) {
                        memberships
                            .entry(group.to_string())
                            .or_default()
                            .push(String::new());
                    }
                    user.insert("__groups".into(), json!(value));
                }
                "active" | "passwordExpired" => {
                    let flag = match value.to_ascii_lowercase().as_str() {
                        "true" | "yes" | "1" => true,
                        "false" | "no" | "0" => false,
                        _ => bail!("line {line}: {field} must be true or false, not {value:?}"),
                    };
                    user.insert((*field).into(), json!(flag));
                }
                _ => {
                    if *field == "userName" {
                        user_name = value.to_string();
                    }
                    user.insert((*field).into(), json!(value));
                }
            }
        }
        if user_name.is_empty() {
            bail!("line {line}: userName is empty");
        }
        if let Some(Value::String(groups)) = user.remove("__groups") {
            for group in groups.split(';').map(str::trim).filter(|g| !g.is_empty()) {
                if let Some(members) = memberships.get_mut(group) {
                    members.retain(|m| !m.is_empty());
                    members.push(user_name.clone());
                }
            }
        }
        users.push(Value::Object(user));
    }
    let groups = memberships
        .into_iter()
        .map(|(name, members)| ImportGroupInput {
            name,
            members: members.into_iter().filter(|m| !m.is_empty()).collect(),
        })
        .collect();
    Ok((users, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &str, name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn csv_rows_become_users_and_group_memberships() {
        let (_dir, path) = write(
            "userName,Email,First Name,Last Name,groups\nada,ada@example.com,Ada,Lovelace,Eng;Math\nbob,,Bob,,Eng\n",
            "people.csv",
        );
        let (users, groups) = read_file(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0]["givenName"], "Ada");
        assert_eq!(users[0]["email"], "ada@example.com");
        assert!(users[1].get("email").is_none());
        let eng = groups.iter().find(|g| g.name == "Eng").unwrap();
        assert_eq!(eng.members, ["ada", "bob"]);
    }

    /// The fuzz corpus's seeds for `directory_import` are valid files.
    #[test]
    fn the_fuzz_seeds_are_valid_import_files() {
        for (text, named_json, users) in [
            (
                include_str!("../../../fuzz/corpus/directory_import/people.csv"),
                false,
                3,
            ),
            (
                include_str!("../../../fuzz/corpus/directory_import/columns.csv"),
                false,
                1,
            ),
            (
                include_str!("../../../fuzz/corpus/directory_import/people.json"),
                true,
                2,
            ),
        ] {
            let (read, _) = read_text(text, named_json).unwrap();
            assert_eq!(read.len(), users);
        }
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        for (content, name, expected) in [
            ("email\nx@y\n", "a.csv", "no userName column"),
            ("userName,shoeSize\nada,9\n", "b.csv", "unknown column"),
            ("userName,active\nada,maybe\n", "c.csv", "line 2"),
            ("userName\nada\nADA\n", "d.csv", "appears twice"),
            (
                "{\"users\": [{\"userName\": \"a\", \"shoe\": 1}]}",
                "e.json",
                "user 1",
            ),
            ("{\"people\": []}", "f.json", "unknown key"),
            ("{not json", "g.json", "not valid JSON"),
        ] {
            let (_dir, path) = write(content, name);
            let error = format!("{:#}", read_file(&path).unwrap_err());
            assert!(error.contains(expected), "{name}: {error}");
        }
    }
}
