//! JSON text written straight into a `String`, for documents whose shape is
//! known when the connector is compiled: the default SCIM User and Group.
//!
//! Every user a connector maps goes through here, so it does the least a
//! correct writer can: keys are written as they are (they are the SDK's own
//! attribute names), values are scanned once and copied a run at a time,
//! and nothing is allocated beyond the output.
//!
//! Invariants:
//! - keys are `'static` attribute names that need no escaping; debug builds
//!   check it;
//! - a value string is escaped as RFC 8259 §7 requires and as `serde_json`
//!   escapes it (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control
//!   characters as `\u00XX`); everything else, UTF-8 included, is copied;
//! - the output is compact (no whitespace), so the text the host receives
//!   is the same as `serde_json::to_string` of the same document.

/// An object being written. Close it with [`JsonObject::close`].
pub(crate) struct JsonObject<'o> {
    out: &'o mut String,
    empty: bool,
}

impl<'o> JsonObject<'o> {
    /// Starts an object at the end of `out`.
    pub(crate) fn open(out: &'o mut String) -> Self {
        out.push('{');
        JsonObject { out, empty: true }
    }

    // Inlined, so that a key's length is known where it is written and its
    // copy needs no call.
    #[inline(always)]
    fn key(&mut self, key: &'static str) {
        debug_assert!(
            !key.bytes().any(|byte| escape_of(byte).is_some()),
            "{key:?} needs escaping"
        );
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    #[inline(always)]
    pub(crate) fn string(&mut self, key: &'static str, value: &str) {
        self.key(key);
        push_string(self.out, value);
    }

    /// Writes the member only when there is a value.
    #[inline(always)]
    pub(crate) fn optional_string(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.string(key, value);
        }
    }

    #[inline(always)]
    pub(crate) fn bool(&mut self, key: &'static str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    /// An array of the SDK's own constants (schema URIs), which need no
    /// escaping.
    pub(crate) fn static_strings(&mut self, key: &'static str, values: &[&'static str]) {
        self.key(key);
        self.out.push('[');
        for (index, value) in values.iter().enumerate() {
            debug_assert!(!value.bytes().any(|byte| escape_of(byte).is_some()));
            if index > 0 {
                self.out.push(',');
            }
            self.out.push('"');
            self.out.push_str(value);
            self.out.push('"');
        }
        self.out.push(']');
    }

    /// Starts a member whose value is an object.
    pub(crate) fn object(&mut self, key: &'static str) -> JsonObject<'_> {
        self.key(key);
        JsonObject::open(self.out)
    }

    /// Starts a member whose value is an array of objects.
    pub(crate) fn objects(&mut self, key: &'static str) -> JsonObjects<'_> {
        self.key(key);
        self.out.push('[');
        JsonObjects {
            out: self.out,
            empty: true,
        }
    }

    pub(crate) fn close(self) {
        self.out.push('}');
    }
}

/// An array of objects being written. Close it with [`JsonObjects::close`].
pub(crate) struct JsonObjects<'o> {
    out: &'o mut String,
    empty: bool,
}

impl JsonObjects<'_> {
    /// Starts the next element.
    pub(crate) fn object(&mut self) -> JsonObject<'_> {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        JsonObject::open(self.out)
    }

    pub(crate) fn close(self) {
        self.out.push(']');
    }
}

/// `value` as a JSON string, quoted and escaped. Eight bytes are checked
/// at a time, and a run that needs no escaping is copied in one piece.
pub(crate) fn push_string(out: &mut String, value: &str) {
    out.push('"');
    let bytes = value.as_bytes();
    let mut copied = 0;
    let mut index = 0;
    while let Some(word) = bytes.get(index..).and_then(<[u8]>::first_chunk::<8>) {
        if any_needs_escape(u64::from_le_bytes(*word)) {
            for at in index..index + 8 {
                escape_at(out, value, at, &mut copied);
            }
        }
        index += 8;
    }
    for at in index..bytes.len() {
        escape_at(out, value, at, &mut copied);
    }
    out.push_str(&value[copied..]);
    out.push('"');
}

/// Writes what is not yet copied before `at` and the escape of the byte
/// at `at`, when it needs one.
#[inline(always)]
fn escape_at(out: &mut String, value: &str, at: usize, copied: &mut usize) {
    let byte = value.as_bytes()[at];
    let Some(escape) = escape_of(byte) else {
        return;
    };
    // The byte at `at` is ASCII, so both slices end on a character
    // boundary.
    out.push_str(&value[*copied..at]);
    match escape {
        Escape::Short(text) => out.push_str(text),
        Escape::Unicode => {
            out.push_str("\\u00");
            out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(HEX_DIGITS[usize::from(byte & 0xf)]));
        }
    }
    *copied = at + 1;
}

/// Whether any of the eight bytes of `word` is a control character, `"`
/// or `\`. Exact, for any eight bytes: the identities (borrowing from a
/// byte only when it is below the one subtracted) report a byte below
/// 0x20, or one equal to `"` or `\`, and never one that is not there.
#[inline(always)]
fn any_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGH_BITS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    below_space | quote | backslash != 0
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

enum Escape {
    Short(&'static str),
    Unicode,
}

#[inline(always)]
fn escape_of(byte: u8) -> Option<Escape> {
    match byte {
        b'"' => Some(Escape::Short("\\\"")),
        b'\\' => Some(Escape::Short("\\\\")),
        0x08 => Some(Escape::Short("\\b")),
        0x0c => Some(Escape::Short("\\f")),
        b'\n' => Some(Escape::Short("\\n")),
        b'\r' => Some(Escape::Short("\\r")),
        b'\t' => Some(Escape::Short("\\t")),
        0x00..=0x1f => Some(Escape::Unicode),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(value: &str) -> String {
        let mut out = String::new();
        push_string(&mut out, value);
        out
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        for value in [
            "",
            "plain",
            "a \"quoted\" name",
            "back\\slash",
            "Zoë Ångström 山田 🚀",
            "tab\tnew\nline\rfeed\u{8}\u{c}",
            "\u{0}\u{1f}\u{7f}",
            "eight by\"eight by\\tes and a tail\u{1}",
            "ascii, then \u{1F680}, then a quote at the end\"",
            "\"",
            "\\",
            every_ascii.as_str(),
        ] {
            let expected = serde_json::to_string(value).unwrap();
            assert_eq!(written(value), expected, "for {value:?}");
            let back: String = serde_json::from_str(&written(value)).unwrap();
            assert_eq!(back, value);
        }
    }

    #[test]
    fn the_word_test_finds_exactly_the_bytes_that_need_escaping() {
        let byte_wise = |word: u64| {
            word.to_le_bytes()
                .iter()
                .any(|&byte| escape_of(byte).is_some())
        };
        // Every byte value at every position, among neighbours that sit at
        // the edges of the tests (and would expose a borrow).
        for fill in [b'a', b' ', 0x21, 0x1f, 0x00, 0x5b, 0x5d, 0x7f, 0x80, 0xff] {
            for position in 0..8 {
                for byte in 0..=255u8 {
                    let mut bytes = [fill; 8];
                    bytes[position] = byte;
                    let word = u64::from_le_bytes(bytes);
                    assert_eq!(any_needs_escape(word), byte_wise(word), "{bytes:?}");
                }
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            assert_eq!(any_needs_escape(state), byte_wise(state), "{state:#x}");
        }
    }

    #[test]
    fn objects_and_arrays_nest_with_commas_only_between_members() {
        let mut out = String::new();
        let mut document = JsonObject::open(&mut out);
        document.static_strings("schemas", &["a", "b"]);
        document.optional_string("absent", None);
        document.bool("active", false);
        let mut name = document.object("name");
        name.string("givenName", "Ada");
        name.close();
        let mut list = document.objects("emails");
        for value in ["x@example.com", "y@example.com"] {
            let mut entry = list.object();
            entry.string("value", value);
            entry.bool("primary", true);
            entry.close();
        }
        list.close();
        let empty = document.objects("none");
        empty.close();
        document.close();
        assert_eq!(
            out,
            r#"{"schemas":["a","b"],"active":false,"name":{"givenName":"Ada"},"emails":[{"value":"x@example.com","primary":true},{"value":"y@example.com","primary":true}],"none":[]}"#
        );
        assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
    }
}
