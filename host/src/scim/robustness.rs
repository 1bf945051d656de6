//! Mutated filters and PATCH requests, thousands per test run: whatever the
//! input, the parsers answer with a value or an error, never a panic. The
//! fuzz targets in `fuzz/` search the same space without bounds; this keeps
//! a deterministic slice of it in every test run.

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use serde_json::{Value, json};

    use crate::scim::filter::{matches, parse_filter_with, parse_patch_path_with};
    use crate::scim::patch::{apply, parse_request};
    use crate::scim::schema::{EXTENSION_URNS, GROUP_TYPE, USER_TYPE, check_resource};

    const FILTER_SEEDS: &[&str] = &[
        r#"userName eq "ada" and (emails[type eq "work" and value co "@"] or not (title pr))"#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw "R\u0026D""#,
        r#"meta.lastModified ge "2020-01-01T00:00:00+01:00" or age lt 4.5e1"#,
        r#"members[value eq "u1"].display ne null"#,
    ];

    const ALPHABET: &[u8] = b" ()[]\".:\\aeqnotrpwsgl0123456789-+eE{}urn";

    fn mutate(rng: &mut StdRng, seed: &str) -> String {
        let mut bytes = seed.as_bytes().to_vec();
        for _ in 0..rng.random_range(1..6) {
            let at = rng.random_range(0..=bytes.len());
            match rng.random_range(0..3) {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, ALPHABET[rng.random_range(0..ALPHABET.len())]),
                _ => bytes.truncate(at),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn sample_user() -> Value {
        json!({
            "id": "u1", "userName": "ada", "title": "Engineer",
            "emails": [{ "value": "ada@work.example", "type": "work", "primary": true }],
            "meta": { "lastModified": "2024-05-01T10:00:00Z" },
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "R&D" }
        })
    }

    #[test]
    fn mutated_filters_never_panic() {
        let mut rng = StdRng::seed_from_u64(7);
        let user = sample_user();
        let mut parsed = 0;
        for round in 0..20_000 {
            let input = mutate(&mut rng, FILTER_SEEDS[round % FILTER_SEEDS.len()]);
            if let Ok(filter) = parse_filter_with(&input, EXTENSION_URNS) {
                parsed += 1;
                let _ = matches(&filter, &user, &USER_TYPE);
            }
            let _ = parse_patch_path_with(&input, EXTENSION_URNS);
        }
        // The mutations must reach both outcomes to mean anything.
        assert!(parsed > 100 && parsed < 20_000, "{parsed} parsed");
    }

    #[test]
    fn mutated_patch_requests_never_panic() {
        let seed = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@x" },
                { "op": "add", "value": { "title": "T", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "manager": { "value": "m" } } } },
                { "op": "remove", "path": "members", "value": [{ "value": "u1" }] },
                { "op": "add", "path": "name.givenName", "value": "Ada" }
            ]
        })
        .to_string();
        let mut rng = StdRng::seed_from_u64(11);
        let mut applied = 0;
        for _ in 0..20_000 {
            let text = mutate(&mut rng, &seed);
            let Ok(body) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let Ok(operations) = parse_request(&body) else {
                continue;
            };
            for resource_type in [&USER_TYPE, &GROUP_TYPE] {
                let Value::Object(mut resource) = sample_user() else {
                    continue;
                };
                if apply(resource_type, &mut resource, &operations).is_ok() {
                    applied += 1;
                    let _ = check_resource(resource_type, &Value::Object(resource));
                }
            }
        }
        assert!(applied > 100, "{applied} applied");
    }
}
