//! The console's pages and files, embedded in the binary.
//!
//! The script and the style sheet are referred to by a digest of their
//! content, so a browser may keep them for good: a new build names new
//! files. Pages are built here with every value escaped.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// The first 12 hex digits of the SHA-256 of `content`.
fn digest(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))[..12].to_string()
}

static SCRIPT_DIGEST: LazyLock<String> = LazyLock::new(|| digest(SCRIPT));
static STYLE_DIGEST: LazyLock<String> = LazyLock::new(|| digest(STYLE));

/// An embedded file.
pub struct Asset {
    pub content_type: &'static str,
    pub content: &'static str,
    /// What pages name it by (`?v=`).
    pub digest: &'static str,
}

/// An embedded file by name.
pub fn asset(name: &str) -> Option<Asset> {
    match name {
        "app.js" => Some(Asset {
            content_type: "text/javascript; charset=utf-8",
            content: SCRIPT,
            digest: SCRIPT_DIGEST.as_str(),
        }),
        "app.css" => Some(Asset {
            content_type: "text/css; charset=utf-8",
            content: STYLE,
            digest: STYLE_DIGEST.as_str(),
        }),
        _ => None,
    }
}

/// `text` safe inside an element or a quoted attribute.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<link rel=\"icon\" href=\"data:,\">\n\
         <link rel=\"stylesheet\" href=\"/console/assets/app.css?v={}\">\n",
        escape(title),
        *STYLE_DIGEST
    )
}

/// The console itself, for a signed-in session whose CSRF token is `csrf`.
pub fn index_page(csrf: &str) -> String {
    let csrf = escape(csrf);
    format!(
        "{head}<meta name=\"csrf-token\" content=\"{csrf}\">\n</head>\n<body>\n\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\n\
         <header class=\"top\">\n<a class=\"brand\" href=\"#/apps\">scimlink</a>\n\
         <nav aria-label=\"Main\"><ul>\n\
         <li><a href=\"#/apps\">Applications</a></li>\n\
         <li><a href=\"#/directory\">Directory</a></li>\n\
         <li><a href=\"#/events\">Events</a></li>\n\
         <li><a href=\"#/connectors\">Connectors</a></li>\n\
         <li><a href=\"#/status\">Status</a></li>\n</ul></nav>\n\
         <form class=\"sign-out\" method=\"post\" action=\"/console/sign-out\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\">Sign out</button></form>\n</header>\n\
         <main id=\"main\" tabindex=\"-1\"><p>Loading…</p></main>\n\
         <div id=\"notice\" class=\"notice\" role=\"status\" aria-live=\"polite\"></div>\n\
         <noscript><p>The console needs JavaScript; the admin API and the CLI do not.</p></noscript>\n\
         <script type=\"module\" src=\"/console/assets/app.js?v={script}\"></script>\n\
         </body>\n</html>\n",
        head = head("scimlink console"),
        script = *SCRIPT_DIGEST,
    )
}

/// The sign-in page, with what went wrong, if anything did.
pub fn sign_in_page(problem: Option<&str>) -> String {
    let problem = problem
        .map(|text| {
            format!(
                "<p class=\"error\" role=\"alert\" id=\"problem\">{}</p>\n",
                escape(text)
            )
        })
        .unwrap_or_default();
    let described = if problem.is_empty() {
        ""
    } else {
        " aria-describedby=\"problem\" aria-invalid=\"true\""
    };
    format!(
        "{head}</head>\n<body class=\"sign-in\">\n<main id=\"main\">\n\
         <h1>scimlink console</h1>\n{problem}\
         <form method=\"post\" action=\"/console/sign-in\">\n\
         <label for=\"token\">Admin token</label>\n\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" \
         required autofocus{described}>\n\
         <button type=\"submit\">Sign in</button>\n</form>\n\
         <p class=\"hint\">The token the host printed at its first start, or the one in \
         <code>SCIMLINK_ADMIN_TOKEN</code>. It is sent once, in this form; the console keeps \
         a session cookie, never the token.</p>\n</main>\n</body>\n</html>\n",
        head = head("Sign in · scimlink"),
    )
}

/// A page that only says `text`, with a way back.
pub fn message_page(text: &str) -> String {
    format!(
        "{head}</head>\n<body class=\"sign-in\">\n<main id=\"main\">\n<h1>scimlink console</h1>\n\
         <p role=\"alert\">{}</p>\n<p><a href=\"/console\">Back to the console</a></p>\n\
         </main>\n</body>\n</html>\n",
        escape(text),
        head = head("scimlink console"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_pages_are_escaped() {
        let page = sign_in_page(Some("<script>\"&'"));
        assert!(page.contains("&lt;script&gt;&quot;&amp;&#39;"));
        assert!(!page.contains("<script>\""));
        assert!(index_page("\"><x").contains("content=\"&quot;&gt;&lt;x\""));
    }

    #[test]
    fn pages_name_the_files_by_their_digest() {
        let page = index_page("t");
        assert!(page.contains(&format!("app.js?v={}", digest(SCRIPT))));
        assert!(page.contains(&format!("app.css?v={}", digest(STYLE))));
        assert_eq!(
            asset("app.js").map(|asset| asset.digest),
            Some(digest(SCRIPT).as_str())
        );
        assert!(asset("../Cargo.toml").is_none());
    }
}
