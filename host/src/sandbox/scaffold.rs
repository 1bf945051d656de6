//! `scimlink plugin new NAME`: a connector crate that builds to a component
//! with one command and passes `scimlink plugin test` unchanged.
//!
//! Invariants:
//! - nothing is overwritten: the crate's folder must not exist or be empty;
//! - a crate made inside a Cargo workspace is added to its `members` (a
//!   crate under a workspace root that is not a member does not build),
//!   one made elsewhere declares an empty workspace of its own, so a
//!   workspace further up cannot claim it;
//! - the SDK is a path dependency when its sources are found (given, or
//!   the source tree this `scimlink` was built from, if it still exists),
//!   else the project's git repository at this `scimlink`'s version tag;
//! - the workspace manifest is checked before anything is written, so a
//!   crate that could not become a member is not left half made.

use std::path::{Component, Path, PathBuf};

/// The repository the SDK comes from when no local copy is found.
pub const SDK_GIT: &str = "https://github.com/scimlink/scimlink";

/// What the scaffold made.
#[derive(Debug, Clone)]
pub struct Scaffolded {
    pub folder: PathBuf,
    /// The workspace manifest it was added to, if any.
    pub workspace: Option<PathBuf>,
    /// The file `cargo build --release --target wasm32-wasip2` writes,
    /// relative to the cargo target folder.
    pub component: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "{0:?} is not a connector name: lower-case letters, digits and dashes, starting with a letter"
    )]
    Name(String),
    #[error("{0} exists and is not empty: choose another --path")]
    Exists(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Whether `name` can name a connector (and a crate).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// The SDK sources beside the `scimlink` that runs, when it was built from
/// a source tree that still exists.
pub fn local_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    sdk.join("Cargo.toml").is_file().then(|| normalize(&sdk))
}

/// Writes the crate `name` into `folder`.
pub fn scaffold(
    name: &str,
    folder: &Path,
    sdk: Option<&Path>,
) -> Result<Scaffolded, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::Name(name.to_string()));
    }
    let write_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| ScaffoldError::Write { path, source }
    };
    if folder.exists()
        && std::fs::read_dir(folder)
            .map_err(write_error(folder))?
            .next()
            .is_some()
    {
        return Err(ScaffoldError::Exists(folder.display().to_string()));
    }
    std::fs::create_dir_all(folder.join("src")).map_err(write_error(folder))?;
    let folder = normalize(&absolute(folder));
    let workspace = enclosing_workspace(&folder);
    // The member entry, worked out before anything is written.
    let membership = match &workspace {
        Some(manifest) => with_member(manifest, &folder).map_err(write_error(manifest))?,
        None => None,
    };

    let sdk_dependency = match sdk {
        Some(sdk) => format!(
            "{{ path = \"{}\" }}",
            toml_path(&relative(&folder, &normalize(&absolute(sdk))))
        ),
        None => format!(
            "{{ git = \"{SDK_GIT}\", tag = \"v{}\", package = \"scimlink-sdk\" }}",
            env!("CARGO_PKG_VERSION")
        ),
    };
    // A workspace member takes its profiles from the workspace; a crate of
    // its own says how its component is built, and that it is a workspace.
    let own_workspace = if workspace.is_some() {
        String::new()
    } else {
        OWN_PROFILE_AND_WORKSPACE.to_string()
    };
    let target = if workspace.is_some() {
        "the workspace's `target/wasm32-wasip2/release/{crate}.wasm`"
    } else {
        "`target/wasm32-wasip2/release/{crate}.wasm`"
    };
    let crate_name = name.replace('-', "_");
    let files = [
        (
            "Cargo.toml",
            CARGO_TOML
                .replace("{name}", name)
                .replace("{sdk}", &sdk_dependency)
                .replace("{workspace}", &own_workspace),
        ),
        (
            "src/lib.rs",
            LIB_RS
                .replace("{name}", name)
                .replace("{Type}", &type_name(name)),
        ),
        (
            "README.md",
            README
                .replace("{component}", target)
                .replace("{name}", name)
                .replace("{crate}", &crate_name),
        ),
        (".gitignore", "/target\n".to_string()),
    ];
    for (file, text) in files {
        let path = folder.join(file);
        std::fs::write(&path, text).map_err(write_error(&path))?;
    }
    if let (Some(manifest), Some(updated)) = (&workspace, membership) {
        std::fs::write(manifest, updated).map_err(write_error(manifest))?;
    }
    Ok(Scaffolded {
        folder,
        workspace,
        component: format!("wasm32-wasip2/release/{crate_name}.wasm"),
    })
}

/// `acme-hr` → `AcmeHr`.
fn type_name(name: &str) -> String {
    name.split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `to` as seen from `from` (both absolute and normalized).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    // Sharing only the root: the absolute path says more than `../../..`.
    if common <= 1 {
        return to.iter().collect();
    }
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to[common..] {
        out.push(part);
    }
    out
}

fn toml_path(path: &Path) -> String {
    path.to_string_lossy()
        .replace('\\', "/")
        .replace('"', "\\\"")
}

/// The manifest of the nearest Cargo workspace above `folder`.
fn enclosing_workspace(folder: &Path) -> Option<PathBuf> {
    folder.ancestors().skip(1).find_map(|dir| {
        let manifest = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).ok()?;
        text.lines()
            .any(|line| line.trim() == "[workspace]")
            .then_some(manifest)
    })
}

/// The workspace manifest with `folder` added to its `members` list, or
/// `None` when an entry (or a glob such as `plugins/*`) covers it already.
fn with_member(manifest: &Path, folder: &Path) -> std::io::Result<Option<String>> {
    let root = manifest.parent().unwrap_or(Path::new("."));
    let member = toml_path(&relative(root, folder));
    let text = std::fs::read_to_string(manifest)?;
    // The `members` key itself, not `default-members`.
    let mut offset = 0;
    let mut list_start = None;
    for line in text.split_inclusive('\n') {
        let key = line.trim_start();
        if let Some(rest) = key.strip_prefix("members")
            && let Some(rest) = rest.trim_start().strip_prefix('=')
            && rest.trim_start().starts_with('[')
            && let Some(bracket) = line.find('[')
        {
            list_start = Some(offset + bracket + 1);
            break;
        }
        offset += line.len();
    }
    let Some(list_start) = list_start else {
        return Err(std::io::Error::other(format!(
            "it has no `members = [` list; add \"{member}\" to it by hand"
        )));
    };
    let list_end = text[list_start..]
        .find(']')
        .map(|end| list_start + end)
        .unwrap_or(text.len());
    let covered = text[list_start..list_end]
        .split(',')
        .map(|entry| entry.trim().trim_matches('"'))
        .any(|entry| {
            entry == member
                || entry
                    .strip_suffix("/*")
                    .is_some_and(|parent| Path::new(&member).parent() == Some(Path::new(parent)))
        });
    if covered {
        return Ok(None);
    }
    let mut updated = text.clone();
    updated.insert_str(list_start, &format!("\n    \"{member}\","));
    Ok(Some(updated))
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# A WebAssembly component, and a native library for the unit tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
scimlink-sdk = {sdk}
{workspace}"#;

const OWN_PROFILE_AND_WORKSPACE: &str = r#"
[profile.release]
# Small, fast components.
opt-level = 3
lto = true
codegen-units = 1
strip = "debuginfo"

# A crate of its own, whatever workspace is above it.
[workspace]
"#;

const LIB_RS: &str = r#"//! The {name} connector for scimlink.
//!
//! Start with `manifest`: it says what the application can do. Every other
//! method of `Connector` has a default that speaks plain SCIM 2.0; override
//! the ones your application does differently (see README.md).

use scimlink_sdk::prelude::*;

pub struct {Type};

impl Connector for {Type} {
    fn manifest() -> Manifest {
        Manifest::new("{name}", env!("CARGO_PKG_VERSION"))
            .description("{name}: provisioning over SCIM 2.0")
            // EDIT: the application's SCIM base URL, with {placeholders}
            // filled from settings, e.g. "https://api.example.com/scim/v2".
            // Without one, operators pass --base-url.
            // .base_url("https://{tenantId}.example.com/scim/v2")
            // .setting("tenantId", "Your tenant's id", true)
            .groups(true)
            .direct_assignment(true)
            .offboarding(Offboarding::Deactivate)
    }

    /// The SCIM User the application gets for a directory user.
    fn map_user(user: &DirectoryUser, _settings: &Settings) -> Result<ScimJson, MappingError> {
        // EDIT: send what the application understands. The default sends
        // the core User and the enterprise extension:
        defaults::scim_user(user)
        // For a leaner mapping:
        // Ok(ScimResource::user()
        //     .set("userName", user.username.as_str())
        //     .set("active", defaults::is_active(user))
        //     .set_opt("name.givenName", user.first_name.as_deref())
        //     .set_opt("name.familyName", user.last_name.as_deref())
        //     .build()
        //     .into())
    }
}

scimlink_sdk::export_connector!({Type});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_sample_user() {
        let user = defaults::sample_user();
        let document = {Type}::map_user(&user, &Settings::default()).unwrap().value();
        assert_eq!(document["userName"], user.username.as_str());
    }
}
"#;

const README: &str = r#"# {name}: a scimlink connector

A WebAssembly component that tells scimlink how to provision users and
groups into {name} over SCIM 2.0.

## Build

    rustup target add wasm32-wasip2   # once
    cargo build --release --target wasm32-wasip2

The component is {component}.

## Test

    cargo test                                           # unit tests, natively
    scimlink plugin test target/wasm32-wasip2/release/{crate}.wasm

`plugin test` runs the connector through the whole provisioning lifecycle
(takeover, create, update, deactivate, delete, groups, import) against a
simulated SCIM application and reports every step. Against your own
endpoint:

    scimlink plugin test target/wasm32-wasip2/release/{crate}.wasm \
        --against https://api.example.com/scim/v2 --token "$TOKEN"

It only touches users and groups it makes up, and deletes what it created.
Add `--format junit` in CI, `--record fixtures/` once and `--replay
fixtures/` offline afterwards.

## What to edit (src/lib.rs)

- `manifest`: name, description, base URL, settings, and what the
  application supports (groups, direct assignment, deactivate or delete,
  PATCH or PUT, members per PATCH, required attributes).
- `map_user` / `map_group`: the SCIM documents the application gets.
- `lookup_filters`: how an existing account is found before one is created
  (default: userName, then email).
- `on_group_event`: what happens to groups and accounts when a user leaves a
  group, a group is unbound or deleted, or group management is turned off.
- `read_user`: a SCIM User of the application as a directory user (import).

## Ship

Drop the `.wasm` into the host's plugins folder: the host validates it and
swaps it in while it runs; `scimlink plugin rollback {name}` puts the
previous version back.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("acme-hr"));
        assert!(valid_name("a1"));
        for bad in ["", "Acme", "1acme", "acme_hr", "acme-", "acme hr"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("acme-hr-2"), "AcmeHr2");
    }

    #[test]
    fn relative_paths_climb_and_descend() {
        assert_eq!(
            relative(Path::new("/a/b/c"), Path::new("/a/d")),
            PathBuf::from("../../d")
        );
    }

    #[test]
    fn a_crate_inside_a_workspace_becomes_a_member() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("Cargo.toml"),
            "[workspace]\nresolver = \"3\"\ndefault-members = [\"plugins/*\"]\nmembers = [\n    \"plugins/*\",\n]\n",
        )
        .unwrap();
        let made = scaffold("acme", &root.path().join("connectors/acme"), None).unwrap();
        assert!(made.workspace.is_some());
        let manifest = std::fs::read_to_string(root.path().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("\"connectors/acme\","), "{manifest}");
        assert!(
            !manifest.contains("default-members = [\n    \"connectors"),
            "{manifest}"
        );
        let own = std::fs::read_to_string(made.folder.join("Cargo.toml")).unwrap();
        assert!(!own.contains("[workspace]"));
        // A glob that covers the folder already adds nothing.
        scaffold("beta", &root.path().join("plugins/beta"), None).unwrap();
        let after = std::fs::read_to_string(root.path().join("Cargo.toml")).unwrap();
        assert!(!after.contains("plugins/beta"), "{after}");
    }

    #[test]
    fn nothing_is_overwritten() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("keep.txt"), "mine").unwrap();
        assert!(matches!(
            scaffold("acme", root.path(), None),
            Err(ScaffoldError::Exists(_))
        ));
    }
}
