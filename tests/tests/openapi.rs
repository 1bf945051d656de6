//! The admin API against its own OpenAPI document: schemathesis (PyPI)
//! generates requests for every operation — valid, invalid, without the
//! token — and checks each answer: no server error, no status the
//! document does not declare, no body that breaks its schema.

use std::process::Command;

use scimlink_e2e::{ADMIN_TOKEN, Host, peer_python};

#[test]
fn the_admin_api_answers_as_its_openapi_document_says() {
    let host = Host::start();
    let schemathesis = peer_python().with_file_name("schemathesis");
    assert!(
        schemathesis.is_file(),
        "{} is missing: scripts/test.sh installs the test peers (tests/peers/requirements.txt)",
        schemathesis.display()
    );
    // Hypothesis keeps its example database in the working folder.
    let folder = tempfile::tempdir().unwrap();
    let output = Command::new(schemathesis)
        .current_dir(folder.path())
        .env("NO_COLOR", "1")
        .args([
            "run",
            &format!("{}/openapi.json", host.base),
            "--url",
            &host.base,
            "--header",
            &format!("Authorization: Bearer {ADMIN_TOKEN}"),
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance",
            "--max-examples",
            "10",
            // The same cases every run: a failure is reproducible.
            "--seed",
            "20261201",
            "--request-timeout",
            "10",
        ])
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found answers the document does not allow:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // "Selected: 43/43" then "Tested: 43": every operation was exercised.
    let figure = |label: &str| {
        report
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .map(|rest| {
                rest.trim()
                    .split('/')
                    .next_back()
                    .unwrap_or_default()
                    .to_string()
            })
    };
    let operations = figure("Selected:").expect("a Selected line");
    assert_eq!(
        figure("Tested:").as_deref(),
        Some(operations.as_str()),
        "every operation ran:\n{report}"
    );
}
