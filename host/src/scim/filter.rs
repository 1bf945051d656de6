//! SCIM 2.0 filters (RFC 7644 §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2):
//! parsing into a typed tree, and evaluation of that tree against a resource
//! in its JSON form.
//!
//! # Grammar accepted
//!
//! ```text
//! filter       = or-expr
//! or-expr      = and-expr *( "or" and-expr )        ; left-associative
//! and-expr     = unary *( "and" unary )             ; left-associative
//! unary        = "not" "(" filter ")"
//!              / "(" filter ")"
//!              / attr-path "pr"
//!              / attr-path compare-op value
//!              / attr-name-path "[" value-filter "]"  ; a value path
//! value-filter = filter whose attr-paths are a bare attr-name (no URN,
//!                no "."), and which holds no value path of its own
//! compare-op   = "eq" / "ne" / "co" / "sw" / "ew" / "gt" / "ge" / "lt" / "le"
//! value        = json-string / json-number / "true" / "false" / "null"
//! attr-path    = [ schema-urn ":" ] attr-name [ "." attr-name ]
//! attr-name-path = [ schema-urn ":" ] attr-name
//! attr-name    = ( ALPHA / "$" ) *( ALPHA / DIGIT / "-" / "_" / "$" )
//!
//! patch-path   = extension-urn                      ; parse_patch_path_with only
//!              / attr-path
//!              / attr-name-path "[" value-filter "]" [ "." attr-name ]
//! ```
//!
//! - Keywords (`and`, `or`, `not`, `pr`), operators and `true`/`false`/`null`
//!   are case-insensitive. Precedence: `not (...)` and parentheses, then
//!   `and`, then `or`.
//! - Tokens are separated by any amount of whitespace; none is needed next
//!   to a parenthesis, a bracket or a quote.
//! - A string is a JSON string: the JSON escapes including `\uXXXX`, where a
//!   surrogate must be half of a pair and a control character must be
//!   escaped.
//! - A number is a JSON number, `-? int frac? exp?` (so not `+1`, `01`,
//!   `.5` or `1.`).
//! - A path starting with `urn:` (any case) names its schema first. When it
//!   starts with one of the caller's extension URNs followed by `:`, the URN
//!   is that one, in the caller's spelling; otherwise the URN is everything
//!   before the last `:`. Without the caller's list a bare extension URN
//!   therefore reads as URN `...:2.0` with attribute `User`: that is why
//!   [`parse_patch_path_with`] exists.
//!
//! # Evaluation ([`matches()`])
//!
//! - Attribute names and schema URNs match JSON keys case-insensitively. A
//!   core schema URN (`urn:ietf:params:scim:schemas:core:2.0:*`) names the
//!   resource root; any other URN names the object under that key.
//! - A path denotes a set of values: arrays are flattened, and `attr.sub`
//!   collects `sub` from every element of `attr`. A comparison holds when
//!   any value satisfies it. A complex value compared without a
//!   sub-attribute stands for its `value` sub-attribute (`emails eq "x"`
//!   compares each email's `value`).
//! - `ne` is the negation of `eq`: it holds when the attribute is absent,
//!   and `emails ne "x"` holds only when no email is `x`.
//! - Strings compare case-insensitively unless [`AttributeRules::case_exact`]
//!   says otherwise. When both sides are RFC 3339 date-times, `eq` and the
//!   ordering operators compare instants; otherwise ordering is
//!   lexicographic by code point.
//! - Numbers compare by value (exactly when both are integers). Booleans
//!   support `eq` only (and so `ne`). `eq null` holds when the attribute is
//!   absent or null.
//! - `pr` holds when some value is not null, not `""`, not `[]` and not `{}`.
//! - A value path holds when some element satisfies the inner filter, whose
//!   paths name members of that element; in a value filter over simple
//!   values (`schemas[value sw "urn:"]`) `value` names the element itself.
//! - A type mismatch (a string literal against a number, `co` on a boolean)
//!   is no match, never an error.
//!
//! # Invariants
//!
//! - No input makes parsing or evaluation panic. Every rejection is a
//!   [`FilterError`] whose `position` is the 0-based index, in characters
//!   (not bytes), where the problem was found.
//! - Parentheses, `not (...)` and value-path brackets nest at most
//!   [`MAX_NESTING_DEPTH`] deep, and a filter holds at most
//!   [`MAX_COMPARISONS`] attribute expressions. So the parser's recursion is
//!   bounded, and so is the depth of a parsed tree, which the derived (and
//!   recursive) drop, clone, comparison and debug output rely on.
//! - `and`/`or` chains are left-associative (`a or b or c` is
//!   `Or(Or(a, b), c)`), and evaluation walks a chain with a loop, so a long
//!   chain costs no stack. Evaluation recurses only through `not`, value
//!   paths and changes between `and` and `or`: for a parsed filter, a few
//!   frames per nesting level.
//! - In a parsed [`Filter::ValuePath`], the inner filter's paths have
//!   `urn: None` and `sub: None`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// The deepest nesting of parentheses, `not (...)` and value-path brackets
/// a filter may have.
pub const MAX_NESTING_DEPTH: usize = 64;

/// The most attribute expressions (comparisons and `pr`) a filter may have.
///
/// This bounds the depth of a left-associative `and`/`or` chain, whatever
/// length of input the caller allows.
pub const MAX_COMPARISONS: usize = 1000;

/// Schema URNs with this prefix name the resource root, not an extension
/// object.
const CORE_SCHEMA_PREFIX: &str = "urn:ietf:params:scim:schemas:core:2.0:";

/// An attribute path: optional schema URN, attribute name, optional sub-attribute.
/// e.g. `name.givenName`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`,
/// `urn:ietf:params:scim:schemas:core:2.0:User:name.familyName`, `meta.lastModified`.
///
/// `attr` is empty only in the [`PatchPath`] for a bare extension URN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl fmt::Display for AttrPath {
    /// The path as a client would write it: `[urn:]attr[.sub]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.urn {
            Some(urn) if self.attr.is_empty() => f.write_str(urn)?,
            Some(urn) => write!(f, "{urn}:{}", self.attr)?,
            None => f.write_str(&self.attr)?,
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A comparison operator of RFC 7644 §3.4.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    /// The operator a keyword names, in any case.
    fn from_keyword(keyword: &str) -> Option<Self> {
        let op = match keyword.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        };
        Some(op)
    }

    /// Whether `actual <op> expected` holds, given how `actual` orders
    /// against `expected`.
    fn accepts(self, ordering: Ordering) -> bool {
        match self {
            CompareOp::Eq => ordering == Ordering::Equal,
            CompareOp::Ne => ordering != Ordering::Equal,
            CompareOp::Gt => ordering == Ordering::Greater,
            CompareOp::Ge => ordering != Ordering::Less,
            CompareOp::Lt => ordering == Ordering::Less,
            CompareOp::Le => ordering != Ordering::Greater,
            // Substring operators say nothing about order.
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
        }
    }
}

/// A literal in a comparison: JSON string, number, true/false, null.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
    Null,
}

/// A parsed filter. See the module documentation for its grammar and
/// meaning.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Literal,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work" and value co "@example.com"]` — the inner filter's paths are relative to the attribute's values (inner AttrPath has urn None and attr = the sub-attribute name, sub None).
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// Why a filter or PATCH path was rejected, and where: `position` is the
/// 0-based index, in characters, of the offending token (the input's
/// length when the input ended too soon).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {position})")]
pub struct FilterError {
    pub message: String,
    pub position: usize,
}

/// Parses a filter (the `filter` query parameter or the `filter` of a
/// search request). Equivalent to [`parse_filter_with`] with no extension
/// URNs.
pub fn parse_filter(input: &str) -> Result<Filter, FilterError> {
    parse_filter_with(input, &[])
}

/// Parses a filter, reading a path that starts with one of
/// `extension_urns` (any case) as that URN followed by `:attr[.sub]`. The
/// path then carries the URN as spelled in `extension_urns`.
pub fn parse_filter_with(input: &str, extension_urns: &[&str]) -> Result<Filter, FilterError> {
    let mut parser = Parser::new(input, extension_urns)?;
    if parser.peek().is_none() {
        return Err(parser.error(0, "empty filter"));
    }
    let filter = parser.parse_or(Nesting::TOP)?;
    parser.expect_end("a complete filter (join expressions with 'and' or 'or')")?;
    Ok(filter)
}

/// A PATCH operation's path: `attr`, `attr.sub`, `attr[filter]`,
/// `attr[filter].sub`, each optionally URN-prefixed.
///
/// A bare extension URN (recognised only by [`parse_patch_path_with`])
/// means the whole extension object: `attr` is then
/// `AttrPath { urn: Some(urn), attr: "", sub: None }`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub_after_filter: Option<String>,
}

/// Parses a PATCH path. Equivalent to [`parse_patch_path_with`] with no
/// extension URNs, so a bare extension URN reads as URN `...:2.0` with
/// attribute `User`.
pub fn parse_patch_path(input: &str) -> Result<PatchPath, FilterError> {
    parse_patch_path_with(input, &[])
}

/// Parses a PATCH path knowing the resource type's extension URNs: the
/// input equal to one of them (any case) is the whole extension object, and
/// a path starting with one of them followed by `:` is split there.
pub fn parse_patch_path_with(
    input: &str,
    extension_urns: &[&str],
) -> Result<PatchPath, FilterError> {
    let trimmed = input.trim();
    if let Some(urn) = extension_urns
        .iter()
        .find(|urn| !urn.is_empty() && urn.eq_ignore_ascii_case(trimmed))
    {
        return Ok(PatchPath {
            attr: AttrPath {
                urn: Some(String::from(*urn)),
                attr: String::new(),
                sub: None,
            },
            filter: None,
            sub_after_filter: None,
        });
    }

    let mut parser = Parser::new(input, extension_urns)?;
    let (word, word_offset) = match parser.peek() {
        Some(Lexeme {
            token: Token::Word(word),
            offset,
        }) => (word, offset),
        None => return Err(parser.error(0, "empty PATCH path")),
        other => {
            let message = format!("expected an attribute path, found {}", describe(other));
            return Err(parser.error(parser.offset_of(other), message));
        }
    };
    parser.advance();
    let attr = parser.attr_path(word, word_offset, false)?;

    let mut filter = None;
    let mut sub_after_filter = None;
    if let Some(Lexeme {
        token: Token::OpenBracket,
        offset: open_offset,
    }) = parser.peek()
    {
        parser.advance();
        filter = Some(parser.parse_value_filter(&attr, word_offset, open_offset, Nesting::TOP)?);
        if let Some(Lexeme {
            token: Token::Word(word),
            offset,
        }) = parser.peek()
        {
            let Some(name) = word.strip_prefix('.') else {
                let message = format!(
                    "expected '.' and a sub-attribute, or the end of the path, after ']', found '{word}'"
                );
                return Err(parser.error(offset, message));
            };
            // The name starts one byte (the '.') after the token.
            let name_offset = offset + 1;
            if let Some(dot) = name.find('.') {
                return Err(
                    parser.error(name_offset + dot, "a path names at most one sub-attribute")
                );
            }
            check_attr_name(name)
                .map_err(|(relative, message)| parser.error(name_offset + relative, message))?;
            sub_after_filter = Some(name.to_owned());
            parser.advance();
        }
    }
    parser.expect_end("the path")?;
    Ok(PatchPath {
        attr,
        filter,
        sub_after_filter,
    })
}

/// What the evaluator needs to know about attributes (from the schema).
pub trait AttributeRules {
    /// Whether string comparisons on this attribute are case-sensitive (SCIM caseExact).
    /// `path` is resolved from the resource root: for a value-path inner filter, the outer path's attr with sub = inner attr.
    /// A complex attribute compared without a sub-attribute is asked about as `attr.value`.
    fn case_exact(&self, path: &AttrPath) -> bool;
}

/// Evaluates the filter against a SCIM resource as JSON (the resource as returned to clients: with id, meta, schemas, extension objects under their URN keys).
pub fn matches(filter: &Filter, resource: &Value, rules: &dyn AttributeRules) -> bool {
    evaluate(filter, Scope::Resource(resource), rules)
}

/// For a store to narrow candidates before evaluating: if the filter is (or is an `and` with, at top level on either side) `ATTR eq "string"` where ATTR (no urn or core urn, no sub) equals one of `indexed` case-insensitively, return (canonical name from `indexed`, the string). Only such a top-level conjunct; never under `or`/`not`.
///
/// Every conjunct of the top-level `and` chain is considered, however it is
/// grouped; the first usable one, left to right, wins. The string is
/// returned as written: whether the store must match it case-insensitively
/// is the attribute's `caseExact`.
pub fn equality_key<'a>(
    filter: &'a Filter,
    indexed: &[&'static str],
) -> Option<(&'static str, &'a str)> {
    // A work list rather than recursion: a long `and` chain is deep.
    let mut pending = vec![filter];
    while let Some(node) = pending.pop() {
        match node {
            Filter::And(left, right) => {
                pending.push(right);
                pending.push(left);
            }
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: Literal::String(value),
            } if path.sub.is_none() && path.urn.as_deref().is_none_or(is_core_schema_urn) => {
                if let Some(name) = indexed
                    .iter()
                    .copied()
                    .find(|name| name.eq_ignore_ascii_case(&path.attr))
                {
                    return Some((name, value.as_str()));
                }
            }
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/// A token. Strings are decoded while tokenizing and kept aside, so that a
/// token is `Copy` and the parser can look ahead without borrowing itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'s> {
    OpenParen,
    CloseParen,
    OpenBracket,
    CloseBracket,
    /// A run of anything else: an attribute path, a keyword, an operator, a
    /// number, `true`/`false`/`null`. Which one is up to the parser.
    Word(&'s str),
    /// A string literal: the index of its decoded text in `Lexed::strings`.
    Quoted(usize),
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, Copy)]
struct Lexeme<'s> {
    token: Token<'s>,
    offset: usize,
}

struct Lexed<'s> {
    lexemes: Vec<Lexeme<'s>>,
    strings: Vec<String>,
}

/// Bytes that end a word. All are ASCII, so a word always starts and ends
/// on a character boundary.
fn is_delimiter(byte: u8) -> bool {
    matches!(
        byte,
        b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b'[' | b']' | b'"'
    )
}

fn tokenize(input: &str) -> Result<Lexed<'_>, FilterError> {
    let bytes = input.as_bytes();
    let mut lexed = Lexed {
        lexemes: Vec::new(),
        strings: Vec::new(),
    };
    let mut offset = 0;
    while let Some(&byte) = bytes.get(offset) {
        let punctuation = match byte {
            b' ' | b'\t' | b'\r' | b'\n' => {
                offset += 1;
                continue;
            }
            b'(' => Some(Token::OpenParen),
            b')' => Some(Token::CloseParen),
            b'[' => Some(Token::OpenBracket),
            b']' => Some(Token::CloseBracket),
            _ => None,
        };
        if let Some(token) = punctuation {
            lexed.lexemes.push(Lexeme { token, offset });
            offset += 1;
        } else if byte == b'"' {
            let (text, end) = read_string_literal(input, offset)?;
            lexed.lexemes.push(Lexeme {
                token: Token::Quoted(lexed.strings.len()),
                offset,
            });
            lexed.strings.push(text);
            offset = end;
        } else {
            let start = offset;
            while bytes.get(offset).is_some_and(|&byte| !is_delimiter(byte)) {
                offset += 1;
            }
            let word = input.get(start..offset).ok_or_else(|| {
                error_at(input, start, "a word does not end on a character boundary")
            })?;
            lexed.lexemes.push(Lexeme {
                token: Token::Word(word),
                offset: start,
            });
        }
    }
    Ok(lexed)
}

/// Decodes the JSON string whose opening quote is at `quote_offset`;
/// returns its text and the offset just past the closing quote.
fn read_string_literal(input: &str, quote_offset: usize) -> Result<(String, usize), FilterError> {
    let body_offset = quote_offset + 1;
    // The quote is ASCII, so the body starts on a character boundary.
    let body = input.get(body_offset..).unwrap_or_default();
    let unterminated = || error_at(input, quote_offset, "unterminated string literal");
    let mut text = String::new();
    let mut chars = body.char_indices();
    while let Some((index, c)) = chars.next() {
        let at = body_offset + index;
        match c {
            '"' => return Ok((text, at + 1)),
            '\\' => {
                let Some((_, escape)) = chars.next() else {
                    return Err(unterminated());
                };
                let decoded = match escape {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'u' => decode_unicode_escape(&mut chars, input, at)?,
                    other => {
                        return Err(error_at(
                            input,
                            at,
                            format!("invalid escape '\\{other}' in a string literal"),
                        ));
                    }
                };
                text.push(decoded);
            }
            c if c < '\u{20}' => {
                return Err(error_at(
                    input,
                    at,
                    "a control character in a string literal must be escaped",
                ));
            }
            c => text.push(c),
        }
    }
    Err(unterminated())
}

/// Decodes what follows `\u` (the escape starts at `escape_offset`),
/// including the second half of a surrogate pair.
fn decode_unicode_escape(
    chars: &mut std::str::CharIndices<'_>,
    input: &str,
    escape_offset: usize,
) -> Result<char, FilterError> {
    let invalid = |message: &str| error_at(input, escape_offset, message);
    let first = read_hex4(chars)
        .ok_or_else(|| invalid("'\\u' must be followed by four hexadecimal digits"))?;
    let code = match first {
        0xD800..=0xDBFF => {
            // A high surrogate means nothing alone: it must be followed by a
            // `\u` escape of a low surrogate, the two making one character.
            let escape_follows =
                matches!(chars.next(), Some((_, '\\'))) && matches!(chars.next(), Some((_, 'u')));
            let second = if escape_follows {
                read_hex4(chars)
            } else {
                None
            };
            match second {
                Some(low @ 0xDC00..=0xDFFF) => 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00),
                _ => {
                    return Err(invalid(
                        "a high surrogate escape must be followed by a low surrogate escape",
                    ));
                }
            }
        }
        0xDC00..=0xDFFF => {
            return Err(invalid(
                "a low surrogate escape must follow a high surrogate escape",
            ));
        }
        scalar => scalar,
    };
    char::from_u32(code).ok_or_else(|| invalid("invalid Unicode escape"))
}

fn read_hex4(chars: &mut std::str::CharIndices<'_>) -> Option<u32> {
    let mut value = 0;
    for _ in 0..4 {
        let (_, c) = chars.next()?;
        value = value * 16 + c.to_digit(16)?;
    }
    Some(value)
}

/// An error at a byte offset of `input`, reported as a character position.
fn error_at(input: &str, byte_offset: usize, message: impl Into<String>) -> FilterError {
    let position = input
        .char_indices()
        .take_while(|&(index, _)| index < byte_offset)
        .count();
    FilterError {
        message: message.into(),
        position,
    }
}

/// How a token reads in an error message.
fn describe(lexeme: Option<Lexeme<'_>>) -> String {
    match lexeme.map(|lexeme| lexeme.token) {
        None => "the end of the input".to_owned(),
        Some(Token::OpenParen) => "'('".to_owned(),
        Some(Token::CloseParen) => "')'".to_owned(),
        Some(Token::OpenBracket) => "'['".to_owned(),
        Some(Token::CloseBracket) => "']'".to_owned(),
        Some(Token::Word(word)) => format!("'{word}'"),
        Some(Token::Quoted(_)) => "a string".to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// Where the parser is: how many groups are open, and whether inside a
/// value filter (whose paths are bare sub-attribute names, and which cannot
/// hold another value path).
#[derive(Debug, Clone, Copy)]
struct Nesting {
    depth: usize,
    in_value_filter: bool,
}

impl Nesting {
    const TOP: Nesting = Nesting {
        depth: 0,
        in_value_filter: false,
    };
}

/// A recursive-descent parser over the whole input's tokens.
struct Parser<'s, 'u> {
    input: &'s str,
    lexemes: Vec<Lexeme<'s>>,
    strings: Vec<String>,
    /// Index of the next lexeme; `lexemes.len()` at the end of the input.
    cursor: usize,
    extension_urns: &'u [&'u str],
    comparisons: usize,
}

impl<'s, 'u> Parser<'s, 'u> {
    fn new(input: &'s str, extension_urns: &'u [&'u str]) -> Result<Self, FilterError> {
        let Lexed { lexemes, strings } = tokenize(input)?;
        Ok(Parser {
            input,
            lexemes,
            strings,
            cursor: 0,
            extension_urns,
            comparisons: 0,
        })
    }

    fn peek(&self) -> Option<Lexeme<'s>> {
        self.lexemes.get(self.cursor).copied()
    }

    fn advance(&mut self) {
        self.cursor += 1;
    }

    fn next_is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Lexeme { token: Token::Word(word), .. }) if word.eq_ignore_ascii_case(keyword))
    }

    /// Where `lexeme` starts; the end of the input when there is none.
    fn offset_of(&self, lexeme: Option<Lexeme<'s>>) -> usize {
        lexeme.map_or(self.input.len(), |lexeme| lexeme.offset)
    }

    fn error(&self, byte_offset: usize, message: impl Into<String>) -> FilterError {
        error_at(self.input, byte_offset, message)
    }

    fn parse_or(&mut self, nesting: Nesting) -> Result<Filter, FilterError> {
        let mut filter = self.parse_and(nesting)?;
        while self.next_is_keyword("or") {
            self.advance();
            let right = self.parse_and(nesting)?;
            filter = Filter::Or(Box::new(filter), Box::new(right));
        }
        Ok(filter)
    }

    fn parse_and(&mut self, nesting: Nesting) -> Result<Filter, FilterError> {
        let mut filter = self.parse_unary(nesting)?;
        while self.next_is_keyword("and") {
            self.advance();
            let right = self.parse_unary(nesting)?;
            filter = Filter::And(Box::new(filter), Box::new(right));
        }
        Ok(filter)
    }

    fn parse_unary(&mut self, nesting: Nesting) -> Result<Filter, FilterError> {
        let next = self.peek();
        match next {
            Some(Lexeme {
                token: Token::OpenParen,
                offset,
            }) => {
                self.advance();
                self.parse_group(nesting, offset)
            }
            Some(Lexeme {
                token: Token::Word(word),
                ..
            }) if word.eq_ignore_ascii_case("not") => {
                self.advance();
                match self.peek() {
                    Some(Lexeme {
                        token: Token::OpenParen,
                        offset,
                    }) => {
                        self.advance();
                        let inner = self.parse_group(nesting, offset)?;
                        Ok(Filter::Not(Box::new(inner)))
                    }
                    other => {
                        let message =
                            format!("'not' must be followed by '(', found {}", describe(other));
                        Err(self.error(self.offset_of(other), message))
                    }
                }
            }
            // Read as attribute names, these would only turn a misplaced
            // keyword into a confusing "unknown operator" error.
            Some(Lexeme {
                token: Token::Word(word),
                offset,
            }) if word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or") => {
                Err(self.error(offset, format!("expected an expression before '{word}'")))
            }
            Some(Lexeme {
                token: Token::Word(word),
                offset,
            }) => {
                self.advance();
                self.parse_attribute_expression(word, offset, nesting)
            }
            _ => {
                let message = format!(
                    "expected an attribute path, '(' or 'not', found {}",
                    describe(next)
                );
                Err(self.error(self.offset_of(next), message))
            }
        }
    }

    /// The rest of a parenthesised filter, its `(` (at `open_offset`)
    /// consumed.
    fn parse_group(&mut self, nesting: Nesting, open_offset: usize) -> Result<Filter, FilterError> {
        let inner = self.nested(nesting, open_offset)?;
        let filter = self.parse_or(inner)?;
        self.expect_closing(Token::CloseParen, open_offset)?;
        Ok(filter)
    }

    /// One level deeper, for the group opened at `open_offset`.
    fn nested(&self, nesting: Nesting, open_offset: usize) -> Result<Nesting, FilterError> {
        let depth = nesting.depth + 1;
        if depth > MAX_NESTING_DEPTH {
            let message = format!("the filter is nested more than {MAX_NESTING_DEPTH} levels deep");
            return Err(self.error(open_offset, message));
        }
        Ok(Nesting { depth, ..nesting })
    }

    fn expect_closing(&mut self, closer: Token<'s>, open_offset: usize) -> Result<(), FilterError> {
        let (opener_text, closer_text) = match closer {
            Token::CloseBracket => ("[", "]"),
            _ => ("(", ")"),
        };
        let next = self.peek();
        match next {
            Some(lexeme) if lexeme.token == closer => {
                self.advance();
                Ok(())
            }
            // Pointing at the opener says more than pointing at the end.
            None => Err(self.error(open_offset, format!("'{opener_text}' is never closed"))),
            Some(_) => {
                let message = format!(
                    "expected 'and', 'or' or '{closer_text}', found {}",
                    describe(next)
                );
                Err(self.error(self.offset_of(next), message))
            }
        }
    }

    /// Fails unless the input is used up; `what` names what was parsed.
    fn expect_end(&self, what: &str) -> Result<(), FilterError> {
        let next = self.peek();
        let message = match next.map(|lexeme| lexeme.token) {
            None => return Ok(()),
            Some(Token::CloseParen) => "unmatched ')'".to_owned(),
            Some(Token::CloseBracket) => "unmatched ']'".to_owned(),
            Some(_) => format!("unexpected {} after {what}", describe(next)),
        };
        Err(self.error(self.offset_of(next), message))
    }

    /// An attribute expression or a value path, its path `word` (at
    /// `word_offset`) consumed.
    fn parse_attribute_expression(
        &mut self,
        word: &'s str,
        word_offset: usize,
        nesting: Nesting,
    ) -> Result<Filter, FilterError> {
        let path = self.attr_path(word, word_offset, nesting.in_value_filter)?;
        let next = self.peek();
        match next {
            Some(Lexeme {
                token: Token::OpenBracket,
                offset,
            }) => {
                self.advance();
                let filter = self.parse_value_filter(&path, word_offset, offset, nesting)?;
                Ok(Filter::ValuePath {
                    path,
                    filter: Box::new(filter),
                })
            }
            Some(Lexeme {
                token: Token::Word(operator),
                offset,
            }) => {
                self.advance();
                if operator.eq_ignore_ascii_case("pr") {
                    self.count_comparison(offset)?;
                    if let Some(Lexeme {
                        token: Token::Quoted(_),
                        offset: value_offset,
                    }) = self.peek()
                    {
                        return Err(self.error(value_offset, "'pr' takes no value"));
                    }
                    return Ok(Filter::Present(path));
                }
                let Some(op) = CompareOp::from_keyword(operator) else {
                    let message = format!(
                        "unknown operator '{operator}' (expected eq, ne, co, sw, ew, gt, ge, lt, le or pr)"
                    );
                    return Err(self.error(offset, message));
                };
                let value = self.parse_literal(operator)?;
                self.count_comparison(offset)?;
                Ok(Filter::Compare { path, op, value })
            }
            _ => {
                let message = format!(
                    "expected an operator after '{word}', found {}",
                    describe(next)
                );
                Err(self.error(self.offset_of(next), message))
            }
        }
    }

    /// The inside of `path[...]`, its `[` (at `open_offset`) consumed, up to
    /// and including the `]`.
    fn parse_value_filter(
        &mut self,
        path: &AttrPath,
        path_offset: usize,
        open_offset: usize,
        nesting: Nesting,
    ) -> Result<Filter, FilterError> {
        if nesting.in_value_filter {
            return Err(self.error(
                open_offset,
                "a value filter cannot contain another value filter",
            ));
        }
        if path.sub.is_some() {
            return Err(self.error(
                path_offset,
                "a value filter follows an attribute name, not a sub-attribute",
            ));
        }
        let inner = Nesting {
            in_value_filter: true,
            ..self.nested(nesting, open_offset)?
        };
        let filter = self.parse_or(inner)?;
        self.expect_closing(Token::CloseBracket, open_offset)?;
        Ok(filter)
    }

    fn parse_literal(&mut self, operator: &str) -> Result<Literal, FilterError> {
        let next = self.peek();
        let literal = match next {
            Some(Lexeme {
                token: Token::Quoted(index),
                ..
            }) => {
                // Each string token is read once, so its text can be moved out.
                Literal::String(
                    self.strings
                        .get_mut(index)
                        .map(std::mem::take)
                        .unwrap_or_default(),
                )
            }
            Some(Lexeme {
                token: Token::Word(word),
                offset,
            }) => literal_from_word(word).map_err(|message| self.error(offset, message))?,
            _ => {
                let message = format!(
                    "expected a value (a quoted string, a number, true, false or null) after '{operator}', found {}",
                    describe(next)
                );
                return Err(self.error(self.offset_of(next), message));
            }
        };
        self.advance();
        Ok(literal)
    }

    fn count_comparison(&mut self, offset: usize) -> Result<(), FilterError> {
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            let message = format!("the filter has more than {MAX_COMPARISONS} comparisons");
            return Err(self.error(offset, message));
        }
        Ok(())
    }

    /// The attribute path `text` (at `offset`), checked against where it
    /// stands.
    fn attr_path(
        &self,
        text: &str,
        offset: usize,
        in_value_filter: bool,
    ) -> Result<AttrPath, FilterError> {
        let path = split_attr_path(text, self.extension_urns)
            .map_err(|(relative, message)| self.error(offset + relative, message))?;
        if in_value_filter && (path.urn.is_some() || path.sub.is_some()) {
            return Err(self.error(
                offset,
                "inside a value filter, name a sub-attribute alone (no schema URN, no '.')",
            ));
        }
        Ok(path)
    }
}

/// A true/false/null keyword or a JSON number; the message on failure.
fn literal_from_word(word: &str) -> Result<Literal, String> {
    if word.eq_ignore_ascii_case("true") {
        return Ok(Literal::Bool(true));
    }
    if word.eq_ignore_ascii_case("false") {
        return Ok(Literal::Bool(false));
    }
    if word.eq_ignore_ascii_case("null") {
        return Ok(Literal::Null);
    }
    if !word.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(format!(
            "expected a value (a quoted string, a number, true, false or null), found '{word}'"
        ));
    }
    if !is_json_number(word) {
        return Err(format!("invalid number '{word}'"));
    }
    match serde_json::from_str::<Value>(word) {
        Ok(Value::Number(number)) => Ok(Literal::Number(number)),
        _ => Err(format!("number '{word}' is out of range")),
    }
}

/// Whether `text` is exactly a JSON number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_json_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits_from = |start: usize| {
        bytes.get(start..).map_or(0, |rest| {
            rest.iter().take_while(|byte| byte.is_ascii_digit()).count()
        })
    };
    let mut at = 0;
    if bytes.get(at) == Some(&b'-') {
        at += 1;
    }
    match bytes.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => at += digits_from(at),
        _ => return false,
    }
    if bytes.get(at) == Some(&b'.') {
        let fraction = digits_from(at + 1);
        if fraction == 0 {
            return false;
        }
        at += 1 + fraction;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let exponent = digits_from(at);
        if exponent == 0 {
            return false;
        }
        at += exponent;
    }
    at == bytes.len()
}

/// Splits `[urn:]attr[.sub]`. On failure: the byte offset within `text`
/// and the message.
fn split_attr_path(text: &str, extension_urns: &[&str]) -> Result<AttrPath, (usize, String)> {
    let (urn, name_offset) = if starts_with_ignore_ascii_case(text, "urn:") {
        if extension_urns
            .iter()
            .any(|urn| urn.eq_ignore_ascii_case(text))
        {
            return Err((
                0,
                "a schema URN must be followed by ':' and an attribute name".to_owned(),
            ));
        }
        match known_urn_prefix(text, extension_urns) {
            Some(urn) => (Some(urn.to_owned()), urn.len() + 1),
            None => {
                // Attribute names hold no ':', so the last one ends the URN.
                let Some(colon) = text.rfind(':') else {
                    return Err((
                        0,
                        "a schema URN must be followed by ':' and an attribute name".to_owned(),
                    ));
                };
                let urn = text.get(..colon).unwrap_or_default();
                // `urn:` NID `:` NSS at the least, before the attribute's ':'.
                if urn.matches(':').count() < 2 {
                    return Err((0, format!("incomplete schema URN in '{text}'")));
                }
                (Some(urn.to_owned()), colon + 1)
            }
        }
    } else {
        (None, 0)
    };

    let name_part = text.get(name_offset..).unwrap_or_default();
    let (attr, sub) = match name_part.split_once('.') {
        Some((attr, sub)) => (attr, Some(sub)),
        None => (name_part, None),
    };
    check_attr_name(attr).map_err(|(relative, message)| (name_offset + relative, message))?;
    if let Some(sub) = sub {
        let sub_offset = name_offset + attr.len() + 1;
        if let Some(dot) = sub.find('.') {
            return Err((
                sub_offset + dot,
                "a path names at most one sub-attribute".to_owned(),
            ));
        }
        check_attr_name(sub).map_err(|(relative, message)| (sub_offset + relative, message))?;
    }
    Ok(AttrPath {
        urn,
        attr: attr.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

/// The longest of `extension_urns` that `text` starts with (any case),
/// followed by ':'.
fn known_urn_prefix<'u>(text: &str, extension_urns: &[&'u str]) -> Option<&'u str> {
    extension_urns
        .iter()
        .copied()
        .filter(|urn| {
            !urn.is_empty()
                && text.as_bytes().get(urn.len()) == Some(&b':')
                && starts_with_ignore_ascii_case(text, urn)
        })
        .max_by_key(|urn| urn.len())
}

/// `ALPHA / "$"` then `*(ALPHA / DIGIT / "-" / "_" / "$")`; on failure, the
/// byte offset within `name` and the message.
fn check_attr_name(name: &str) -> Result<(), (usize, String)> {
    let mut chars = name.char_indices();
    match chars.next() {
        None => return Err((0, "expected an attribute name".to_owned())),
        Some((_, first)) if first.is_ascii_alphabetic() || first == '$' => {}
        Some((_, first)) => {
            return Err((
                0,
                format!("an attribute name must start with a letter, not '{first}'"),
            ));
        }
    }
    for (index, c) in chars {
        let allowed = c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '$');
        if !allowed {
            return Err((
                index,
                format!("invalid character '{c}' in attribute name '{name}'"),
            ));
        }
    }
    Ok(())
}

fn starts_with_ignore_ascii_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn is_core_schema_urn(urn: &str) -> bool {
    starts_with_ignore_ascii_case(urn, CORE_SCHEMA_PREFIX)
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

/// What paths are resolved against.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// The resource.
    Resource(&'a Value),
    /// One value of `outer`, inside `outer[...]`.
    Element {
        outer: &'a AttrPath,
        element: &'a Value,
    },
}

fn evaluate(filter: &Filter, scope: Scope<'_>, rules: &dyn AttributeRules) -> bool {
    match filter {
        Filter::Compare { path, op, value } => compare(scope, path, *op, value, rules),
        Filter::Present(path) => resolve(scope, path).into_iter().any(is_present),
        Filter::And(..) => evaluate_chain(filter, true, scope, rules),
        Filter::Or(..) => evaluate_chain(filter, false, scope, rules),
        Filter::Not(inner) => !evaluate(inner, scope, rules),
        Filter::ValuePath {
            path,
            filter: inner,
        } => resolve(scope, path).into_iter().any(|element| {
            evaluate(
                inner,
                Scope::Element {
                    outer: path,
                    element,
                },
                rules,
            )
        }),
    }
}

/// Evaluates a chain of `and` (`conjunction`) or of `or` with a work list,
/// so that a long chain, which is a deep tree, costs no stack; operands are
/// tried left to right and the first decisive one ends the walk.
fn evaluate_chain(
    chain: &Filter,
    conjunction: bool,
    scope: Scope<'_>,
    rules: &dyn AttributeRules,
) -> bool {
    let mut pending = vec![chain];
    while let Some(node) = pending.pop() {
        match (conjunction, node) {
            (true, Filter::And(left, right)) | (false, Filter::Or(left, right)) => {
                pending.push(right);
                pending.push(left);
            }
            _ => {
                // A false operand decides an `and`, a true one an `or`.
                let holds = evaluate(node, scope, rules);
                if holds != conjunction {
                    return holds;
                }
            }
        }
    }
    conjunction
}

/// The values `path` denotes in `scope`, arrays flattened.
fn resolve<'a>(scope: Scope<'a>, path: &AttrPath) -> Vec<&'a Value> {
    let container = match scope {
        Scope::Resource(resource) => match path.urn.as_deref() {
            None => Some(resource),
            Some(urn) if is_core_schema_urn(urn) => Some(resource),
            Some(urn) => member(resource, urn),
        },
        // Inside a value filter, paths name members of one element: a
        // schema URN selects nothing there.
        Scope::Element { element, .. } => match path.urn {
            None => Some(element),
            Some(_) => None,
        },
    };
    let mut values: Vec<&'a Value> = Vec::new();
    let Some(container) = container else {
        return values;
    };
    let attribute = match member(container, &path.attr) {
        Some(attribute) => attribute,
        // An element of a multi-valued simple attribute has no members;
        // `value` is how a value filter names the element itself.
        None if matches!(scope, Scope::Element { .. })
            && !container.is_object()
            && path.attr.eq_ignore_ascii_case("value") =>
        {
            container
        }
        None => return values,
    };
    match &path.sub {
        None => values.extend(each(attribute)),
        Some(sub) => {
            for item in each(attribute) {
                if let Some(sub_value) = member(item, sub) {
                    values.extend(each(sub_value));
                }
            }
        }
    }
    values
}

/// The values of a multi-valued attribute, or a single value alone.
fn each(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    }
}

/// The member `name` of an object: the exact key if there is one, else the
/// first key equal to it ignoring case (attribute names are
/// case-insensitive).
fn member<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    let object = value.as_object()?;
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, member)| member)
    })
}

/// Whether a value counts for `pr`.
fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare(
    scope: Scope<'_>,
    path: &AttrPath,
    op: CompareOp,
    literal: &Literal,
    rules: &dyn AttributeRules,
) -> bool {
    if op == CompareOp::Ne {
        // Negating `eq` over the whole attribute makes an absent attribute
        // "not equal", and `emails ne "x"` mean "no email is x".
        return !compare(scope, path, CompareOp::Eq, literal, rules);
    }
    match literal {
        Literal::Null => {
            // Complex values are not replaced by `value` here: a complex
            // value without `value` is still not null.
            let values = resolve(scope, path);
            op == CompareOp::Eq && (values.is_empty() || values.iter().any(|value| value.is_null()))
        }
        Literal::Bool(expected) => {
            let (values, _) = comparable_values(scope, path);
            op == CompareOp::Eq
                && values
                    .iter()
                    .any(|value| value.as_bool() == Some(*expected))
        }
        Literal::Number(expected) => {
            let (values, _) = comparable_values(scope, path);
            values
                .iter()
                .filter_map(|value| value.as_number())
                .any(|actual| {
                    compare_numbers(actual, expected).is_some_and(|ordering| op.accepts(ordering))
                })
        }
        Literal::String(expected) => {
            let (values, implied_value) = comparable_values(scope, path);
            let actual_strings: Vec<&str> =
                values.iter().filter_map(|value| value.as_str()).collect();
            if actual_strings.is_empty() {
                // No need to ask the rules about an attribute with no strings.
                return false;
            }
            let case_exact = rules.case_exact(&case_rule_path(scope, path, implied_value));
            let expected = ExpectedString::new(expected, case_exact);
            actual_strings
                .into_iter()
                .any(|actual| expected.matched_by(actual, op))
        }
    }
}

/// The values a comparison looks at: `path`'s values, where a complex value
/// stands for its `value` sub-attribute (RFC 7644 §3.4.2.2: a complex
/// multi-valued attribute compared without a sub-attribute compares
/// `value`). The flag says whether such a replacement happened, so that the
/// case rule asked about is `attr.value`.
fn comparable_values<'a>(scope: Scope<'a>, path: &AttrPath) -> (Vec<&'a Value>, bool) {
    let mut implied_value = false;
    let mut values: Vec<&'a Value> = Vec::new();
    for value in resolve(scope, path) {
        if value.is_object() {
            implied_value = true;
            values.extend(member(value, "value"));
        } else {
            values.push(value);
        }
    }
    (values, implied_value)
}

/// The path, from the resource root, whose `caseExact` governs a string
/// comparison on `path` in `scope`.
fn case_rule_path(scope: Scope<'_>, path: &AttrPath, implied_value: bool) -> AttrPath {
    match scope {
        Scope::Element { outer, .. } => AttrPath {
            urn: outer.urn.clone(),
            attr: outer.attr.clone(),
            sub: Some(path.attr.clone()),
        },
        Scope::Resource(_) if implied_value && path.sub.is_none() => AttrPath {
            sub: Some("value".to_owned()),
            ..path.clone()
        },
        Scope::Resource(_) => path.clone(),
    }
}

/// Orders two JSON numbers: exactly when both are integers, as `f64`
/// otherwise.
fn compare_numbers(actual: &serde_json::Number, expected: &serde_json::Number) -> Option<Ordering> {
    if let (Some(actual), Some(expected)) = (exact_integer(actual), exact_integer(expected)) {
        return Some(actual.cmp(&expected));
    }
    actual.as_f64()?.partial_cmp(&expected.as_f64()?)
}

fn exact_integer(number: &serde_json::Number) -> Option<i128> {
    number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
}

/// A string literal prepared once for comparing with many values.
struct ExpectedString<'e> {
    /// Lower-cased unless the comparison is case-exact.
    text: Cow<'e, str>,
    /// The literal's instant, when it is an RFC 3339 date-time.
    instant: Option<Timestamp>,
    case_exact: bool,
}

impl<'e> ExpectedString<'e> {
    fn new(text: &'e str, case_exact: bool) -> Self {
        ExpectedString {
            text: fold_case(text, case_exact),
            instant: parse_date_time(text),
            case_exact,
        }
    }

    /// Whether `actual <op> self` holds.
    fn matched_by(&self, actual: &str, op: CompareOp) -> bool {
        let compares_as_whole = !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
        // The same instant has many spellings (offsets, fractions).
        if compares_as_whole
            && let (Some(expected), Some(actual)) = (self.instant, parse_date_time(actual))
        {
            return op.accepts(actual.cmp(&expected));
        }
        let folded = fold_case(actual, self.case_exact);
        let actual: &str = &folded;
        let expected: &str = &self.text;
        match op {
            CompareOp::Co => actual.contains(expected),
            CompareOp::Sw => actual.starts_with(expected),
            CompareOp::Ew => actual.ends_with(expected),
            _ => op.accepts(actual.cmp(expected)),
        }
    }
}

fn fold_case(text: &str, case_exact: bool) -> Cow<'_, str> {
    if case_exact {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

/// An instant: seconds since 1970-01-01T00:00:00Z and nanoseconds. Field
/// order makes the derived ordering chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timestamp {
    seconds: i64,
    nanos: u32,
}

/// Parses an RFC 3339 date-time, `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`,
/// with `T` and `Z` in either case. Fractions beyond nanoseconds are
/// truncated; a leap second counts as the next minute's first.
fn parse_date_time(text: &str) -> Option<Timestamp> {
    let bytes = text.as_bytes();
    let year = fixed_digits(bytes, 0, 4)?;
    expect_byte(bytes, 4, b'-')?;
    let month = fixed_digits(bytes, 5, 2)?;
    expect_byte(bytes, 7, b'-')?;
    let day = fixed_digits(bytes, 8, 2)?;
    if !matches!(bytes.get(10), Some(b'T' | b't')) {
        return None;
    }
    let hour = fixed_digits(bytes, 11, 2)?;
    expect_byte(bytes, 13, b':')?;
    let minute = fixed_digits(bytes, 14, 2)?;
    expect_byte(bytes, 16, b':')?;
    let second = fixed_digits(bytes, 17, 2)?;

    let mut at = 19;
    let mut nanos: u32 = 0;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let fraction_start = at;
        let mut kept_digits = 0;
        while let Some(&digit) = bytes.get(at) {
            if !digit.is_ascii_digit() {
                break;
            }
            if kept_digits < 9 {
                nanos = nanos * 10 + u32::from(digit - b'0');
                kept_digits += 1;
            }
            at += 1;
        }
        if at == fraction_start {
            return None;
        }
        for _ in kept_digits..9 {
            nanos *= 10;
        }
    }

    let offset_seconds: i64 = match bytes.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(b'+' | b'-') => {
            let west_of_utc = bytes.get(at) == Some(&b'-');
            let offset_hours = fixed_digits(bytes, at + 1, 2)?;
            expect_byte(bytes, at + 3, b':')?;
            let offset_minutes = fixed_digits(bytes, at + 4, 2)?;
            if offset_hours > 23 || offset_minutes > 59 {
                return None;
            }
            at += 6;
            let magnitude = i64::from(offset_hours * 3600 + offset_minutes * 60);
            if west_of_utc { -magnitude } else { magnitude }
        }
        _ => return None,
    };
    if at != bytes.len() {
        return None;
    }

    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 60;
    if !valid {
        return None;
    }
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    Some(Timestamp { seconds, nanos })
}

/// The number written by exactly `count` ASCII digits at `start`.
fn fixed_digits(bytes: &[u8], start: usize, count: usize) -> Option<u32> {
    let digits = bytes.get(start..start.checked_add(count)?)?;
    let mut value = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(digit - b'0');
    }
    Some(value)
}

fn expect_byte(bytes: &[u8], index: usize, expected: u8) -> Option<()> {
    (bytes.get(index) == Some(&expected)).then_some(())
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Counting years from March puts the leap day at the end of a year.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::{Value, json};

    use super::*;

    const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    const INDEXED: &[&str] = &["id", "userName", "externalId"];

    // --- builders -----------------------------------------------------------

    fn path(attr: &str) -> AttrPath {
        AttrPath {
            urn: None,
            attr: attr.to_owned(),
            sub: None,
        }
    }

    fn sub_path(attr: &str, sub: &str) -> AttrPath {
        AttrPath {
            urn: None,
            attr: attr.to_owned(),
            sub: Some(sub.to_owned()),
        }
    }

    fn urn_path(urn: &str, attr: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            urn: Some(urn.to_owned()),
            attr: attr.to_owned(),
            sub: sub.map(str::to_owned),
        }
    }

    fn string(text: &str) -> Literal {
        Literal::String(text.to_owned())
    }

    fn number(text: &str) -> Literal {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Number(number)) => Literal::Number(number),
            other => panic!("{text} is not a number: {other:?}"),
        }
    }

    fn comparison(attr: &str, op: CompareOp, value: Literal) -> Filter {
        Filter::Compare {
            path: path(attr),
            op,
            value,
        }
    }

    fn presence(attr: &str) -> Filter {
        Filter::Present(path(attr))
    }

    fn both(left: Filter, right: Filter) -> Filter {
        Filter::And(Box::new(left), Box::new(right))
    }

    fn either(left: Filter, right: Filter) -> Filter {
        Filter::Or(Box::new(left), Box::new(right))
    }

    fn negation(inner: Filter) -> Filter {
        Filter::Not(Box::new(inner))
    }

    fn parse(input: &str) -> Filter {
        parse_filter(input).unwrap_or_else(|error| panic!("{input:?} should parse: {error}"))
    }

    fn parse_error(input: &str) -> FilterError {
        match parse_filter(input) {
            Ok(filter) => panic!("{input:?} should be rejected, parsed as {filter:?}"),
            Err(error) => error,
        }
    }

    fn patch(input: &str) -> PatchPath {
        parse_patch_path(input).unwrap_or_else(|error| panic!("{input:?} should parse: {error}"))
    }

    fn patch_error(input: &str) -> FilterError {
        match parse_patch_path(input) {
            Ok(parsed) => panic!("{input:?} should be rejected, parsed as {parsed:?}"),
            Err(error) => error,
        }
    }

    /// `id` and `externalId` are caseExact, as in the core User schema.
    struct ScimRules;

    impl AttributeRules for ScimRules {
        fn case_exact(&self, path: &AttrPath) -> bool {
            path.sub.is_none()
                && ["id", "externalId"]
                    .iter()
                    .any(|name| name.eq_ignore_ascii_case(&path.attr))
        }
    }

    /// Records which paths the evaluator asks about.
    #[derive(Default)]
    struct RecordingRules {
        asked: RefCell<Vec<AttrPath>>,
    }

    impl AttributeRules for RecordingRules {
        fn case_exact(&self, path: &AttrPath) -> bool {
            self.asked.borrow_mut().push(path.clone());
            false
        }
    }

    fn sample_user() -> Value {
        json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "bjensen",
            "userName": "Bjensen@Example.com",
            "name": { "givenName": "Barbara", "familyName": "Jensen" },
            "title": "",
            "nickName": null,
            "active": true,
            "loginCount": 42,
            "score": 4.5,
            "emails": [
                { "value": "bjensen@example.com", "type": "work", "primary": true },
                { "value": "babs@jensen.org", "type": "home" }
            ],
            "phoneNumbers": [],
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34Z"
            },
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984",
                "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d" }
            }
        })
    }

    fn eval(input: &str) -> bool {
        matches(&parse(input), &sample_user(), &ScimRules)
    }

    fn key(input: &str) -> Option<(&'static str, String)> {
        let filter = parse(input);
        equality_key(&filter, INDEXED).map(|(name, value)| (name, value.to_owned()))
    }

    // --- parsing ------------------------------------------------------------

    #[test]
    fn parses_every_comparison_operator_in_any_case() {
        let operators = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ];
        for (keyword, op) in operators {
            for spelled in [keyword.to_owned(), keyword.to_ascii_uppercase()] {
                assert_eq!(
                    parse(&format!(r#"userName {spelled} "x""#)),
                    comparison("userName", op, string("x"))
                );
            }
        }
    }

    #[test]
    fn parses_present() {
        assert_eq!(parse("title pr"), presence("title"));
        assert_eq!(parse("title PR"), presence("title"));
        assert_eq!(
            parse("name.givenName pr"),
            Filter::Present(sub_path("name", "givenName"))
        );
    }

    #[test]
    fn parses_literals() {
        assert_eq!(
            parse("a eq 42"),
            comparison("a", CompareOp::Eq, number("42"))
        );
        assert_eq!(
            parse("a eq -1.5e3"),
            comparison("a", CompareOp::Eq, number("-1.5e3"))
        );
        assert_eq!(
            parse("a eq 0.25"),
            comparison("a", CompareOp::Eq, number("0.25"))
        );
        assert_eq!(
            parse("a eq 1E+2"),
            comparison("a", CompareOp::Eq, number("1E+2"))
        );
        assert_eq!(
            parse("a eq TRUE"),
            comparison("a", CompareOp::Eq, Literal::Bool(true))
        );
        assert_eq!(
            parse("a eq False"),
            comparison("a", CompareOp::Eq, Literal::Bool(false))
        );
        assert_eq!(
            parse("a eq nUll"),
            comparison("a", CompareOp::Eq, Literal::Null)
        );
        assert_eq!(
            parse(r#"a eq """#),
            comparison("a", CompareOp::Eq, string(""))
        );
        for invalid in [
            "a eq 01",
            "a eq 1.",
            "a eq -",
            "a eq 1e",
            "a eq 1e+",
            "a eq 1.5.2",
            "a eq -x",
        ] {
            assert!(
                parse_error(invalid).message.contains("invalid number"),
                "{invalid}"
            );
        }
        assert!(parse_error("a eq .5").message.contains("expected a value"));
        assert!(parse_error("a eq +1").message.contains("expected a value"));
        let unquoted = parse_error("userName eq bjensen");
        assert!(unquoted.message.contains("found 'bjensen'"), "{unquoted}");
        assert_eq!(unquoted.position, 12);
    }

    #[test]
    fn decodes_string_escapes() {
        let parsed = parse(r#"displayName eq "q\"b\\s\/n\n\t\r\b\f\u00e9\uD83D\uDE00 ok""#);
        let expected = "q\"b\\s/n\n\t\r\u{8}\u{c}\u{e9}\u{1F600} ok";
        assert_eq!(
            parsed,
            comparison("displayName", CompareOp::Eq, string(expected))
        );
        assert_eq!(
            parse(r#"a eq "ünïcödé""#),
            comparison("a", CompareOp::Eq, string("ünïcödé"))
        );
        assert_eq!(
            parse(r#"a eq "(not) [and] or""#),
            comparison("a", CompareOp::Eq, string("(not) [and] or"))
        );
    }

    #[test]
    fn rejects_invalid_strings() {
        for invalid in [
            r#"a eq "\x""#,
            r#"a eq "\uD83D""#,
            r#"a eq "\uD83D\u0041""#,
            r#"a eq "\uDE00""#,
            r#"a eq "\u12""#,
            r#"a eq "\u12G4""#,
            "a eq \"tab\there\"",
            "a eq \"new\nline\"",
        ] {
            parse_error(invalid);
        }
        let unterminated = parse_error(r#"a eq "abc"#);
        assert!(
            unterminated.message.contains("unterminated"),
            "{unterminated}"
        );
        assert_eq!(unterminated.position, 5);
        assert!(
            parse_error(r#"a eq "abc\"#)
                .message
                .contains("unterminated")
        );
        assert!(
            parse_error(r#"a eq "abc\""#)
                .message
                .contains("unterminated")
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let expected = either(
            comparison("a", CompareOp::Eq, number("1")),
            both(
                comparison("b", CompareOp::Eq, number("2")),
                comparison("c", CompareOp::Eq, number("3")),
            ),
        );
        assert_eq!(parse("a eq 1 or b eq 2 and c eq 3"), expected);
        let expected = either(
            both(
                comparison("a", CompareOp::Eq, number("1")),
                comparison("b", CompareOp::Eq, number("2")),
            ),
            comparison("c", CompareOp::Eq, number("3")),
        );
        assert_eq!(parse("a eq 1 AND b eq 2 OR c eq 3"), expected);
    }

    #[test]
    fn chains_are_left_associative() {
        assert_eq!(
            parse("a pr and b pr and c pr"),
            both(both(presence("a"), presence("b")), presence("c"))
        );
        assert_eq!(
            parse("a pr or b pr or c pr"),
            either(either(presence("a"), presence("b")), presence("c"))
        );
    }

    #[test]
    fn parentheses_group() {
        let expected = both(
            either(
                comparison("a", CompareOp::Eq, number("1")),
                comparison("b", CompareOp::Eq, number("2")),
            ),
            comparison("c", CompareOp::Eq, number("3")),
        );
        assert_eq!(parse("(a eq 1 or b eq 2) and c eq 3"), expected);
        assert_eq!(
            parse("  (  a  pr  )   and   b pr  "),
            both(presence("a"), presence("b"))
        );
        assert_eq!(parse("((a pr))"), presence("a"));
        assert_eq!(parse("(a pr)and(b pr)"), both(presence("a"), presence("b")));
    }

    #[test]
    fn parses_not() {
        assert_eq!(parse("not (a pr)"), negation(presence("a")));
        assert_eq!(parse("NOT(a pr)"), negation(presence("a")));
        assert_eq!(
            parse("not (a pr) and b pr"),
            both(negation(presence("a")), presence("b"))
        );
        assert_eq!(
            parse("not (a pr or b pr)"),
            negation(either(presence("a"), presence("b")))
        );
        assert_eq!(parse("not (not (a pr))"), negation(negation(presence("a"))));
        let error = parse_error("not a pr");
        assert!(
            error.message.contains("'not' must be followed by '('"),
            "{error}"
        );
        assert_eq!(error.position, 4);
    }

    #[test]
    fn parses_urn_paths() {
        assert_eq!(
            parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName eq "O'Malley""#),
            Filter::Compare {
                path: urn_path(CORE_USER, "name", Some("familyName")),
                op: CompareOp::Eq,
                value: string("O'Malley"),
            }
        );
        assert_eq!(
            parse(
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#
            ),
            Filter::Compare {
                path: urn_path(ENTERPRISE, "employeeNumber", None),
                op: CompareOp::Eq,
                value: string("701984"),
            }
        );
        // A known URN is reported in the caller's spelling.
        let filter = parse_filter_with(
            r#"URN:IETF:params:scim:schemas:extension:enterprise:2.0:user:manager.value eq "x""#,
            &[ENTERPRISE],
        )
        .unwrap();
        assert_eq!(
            filter,
            Filter::Compare {
                path: urn_path(ENTERPRISE, "manager", Some("value")),
                op: CompareOp::Eq,
                value: string("x"),
            }
        );
        // A bare URN is not an attribute path in a filter.
        assert!(parse_filter_with(&format!("{ENTERPRISE} pr"), &[ENTERPRISE]).is_err());
        assert!(
            parse_error("urn:foo pr")
                .message
                .contains("incomplete schema URN")
        );
        assert!(
            parse_error("urn:a:b pr")
                .message
                .contains("incomplete schema URN")
        );
        parse_error("urn:a:b:c: pr");
    }

    #[test]
    fn checks_attribute_names() {
        assert_eq!(parse("$ref pr"), presence("$ref"));
        assert_eq!(
            parse("members.$ref pr"),
            Filter::Present(sub_path("members", "$ref"))
        );
        assert_eq!(parse("x-custom_attr2 pr"), presence("x-custom_attr2"));
        let error = parse_error("a.b.c pr");
        assert!(
            error.message.contains("at most one sub-attribute"),
            "{error}"
        );
        assert_eq!(error.position, 3);
        for invalid in [
            "1abc pr",
            "_x pr",
            "foo:bar pr",
            "a. pr",
            ".a pr",
            "na%me pr",
            "nämе pr",
        ] {
            parse_error(invalid);
        }
    }

    #[test]
    fn parses_value_paths() {
        let inner = both(
            comparison("type", CompareOp::Eq, string("work")),
            comparison("value", CompareOp::Co, string("@example.com")),
        );
        assert_eq!(
            parse(r#"emails[type eq "work" and value co "@example.com"]"#),
            Filter::ValuePath {
                path: path("emails"),
                filter: Box::new(inner)
            }
        );
        assert_eq!(
            parse(r#"userType eq "Employee" and emails[type eq "work"]"#),
            both(
                comparison("userType", CompareOp::Eq, string("Employee")),
                Filter::ValuePath {
                    path: path("emails"),
                    filter: Box::new(comparison("type", CompareOp::Eq, string("work"))),
                }
            )
        );
        assert_eq!(
            parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[not (type eq "work")]"#),
            Filter::ValuePath {
                path: urn_path(CORE_USER, "emails", None),
                filter: Box::new(negation(comparison("type", CompareOp::Eq, string("work")))),
            }
        );
    }

    #[test]
    fn rejects_malformed_value_paths() {
        let nested = parse_error(r#"emails[type eq "work" and addresses[type pr]]"#);
        assert!(
            nested
                .message
                .contains("cannot contain another value filter"),
            "{nested}"
        );
        parse_error(r#"emails[urn:ietf:params:scim:schemas:core:2.0:User:type eq "work"]"#);
        parse_error(r#"emails[type.x eq "work"]"#);
        parse_error("name.givenName[type pr]");
        parse_error("emails[]");
        let unclosed = parse_error(r#"emails[type eq "work""#);
        assert!(unclosed.message.contains("never closed"), "{unclosed}");
        assert_eq!(unclosed.position, 6);
        // A filter's value path has no trailing sub-attribute (a PATCH path's does).
        parse_error(r#"emails[type eq "work"].value eq "x""#);
    }

    #[test]
    fn reports_errors_with_character_positions() {
        let unknown = parse_error(r#"userName xx "a""#);
        assert!(
            unknown.message.contains("unknown operator 'xx'"),
            "{unknown}"
        );
        assert_eq!(unknown.position, 9);
        assert_eq!(
            unknown.to_string(),
            format!("{} (at character 9)", unknown.message)
        );

        let missing_value = parse_error("userName eq");
        assert!(
            missing_value.message.contains("expected a value"),
            "{missing_value}"
        );
        assert_eq!(missing_value.position, 11);

        let missing_operator = parse_error("userName");
        assert!(
            missing_operator.message.contains("expected an operator"),
            "{missing_operator}"
        );

        let trailing = parse_error(r#"userName eq "a" extra"#);
        assert!(
            trailing.message.contains("unexpected 'extra'"),
            "{trailing}"
        );
        assert_eq!(trailing.position, 16);
        assert!(
            parse_error(r#"userName eq "a")"#)
                .message
                .contains("unmatched ')'")
        );
        assert!(
            parse_error(r#"userName eq "a"]"#)
                .message
                .contains("unmatched ']'")
        );

        // Characters, not bytes: "é" is two bytes.
        assert_eq!(parse_error(r#"displayName eq "é" zz"#).position, 19);

        assert!(
            parse_error("title pr \"x\"")
                .message
                .contains("'pr' takes no value")
        );
        assert!(parse_error("").message.contains("empty"));
        assert!(parse_error("   ").message.contains("empty"));
        parse_error("userName pr and");
        parse_error("and userName pr");
        parse_error("userName pr or or title pr");
        parse_error("(userName pr");
        parse_error("()");
        parse_error("userName eq \"a\" title pr");
    }

    #[test]
    fn nesting_is_bounded() {
        let parenthesised =
            |depth: usize| format!("{}a pr{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(parse(&parenthesised(MAX_NESTING_DEPTH)), presence("a"));
        let too_deep = parse_error(&parenthesised(MAX_NESTING_DEPTH + 1));
        assert!(too_deep.message.contains("nested"), "{too_deep}");
        assert_eq!(too_deep.position, MAX_NESTING_DEPTH);
        // Far too deep is rejected just as early, not by exhausting the stack.
        assert!(parse_error(&"(".repeat(100_000)).message.contains("nested"));

        let negated = |depth: usize| format!("{}a pr{}", "not (".repeat(depth), ")".repeat(depth));
        assert!(parse_filter(&negated(MAX_NESTING_DEPTH)).is_ok());
        parse_error(&negated(MAX_NESTING_DEPTH + 1));

        // A value path's brackets are a level too.
        let in_value_path =
            |depth: usize| format!("{}emails[type pr]{}", "(".repeat(depth), ")".repeat(depth));
        assert!(parse_filter(&in_value_path(MAX_NESTING_DEPTH - 1)).is_ok());
        parse_error(&in_value_path(MAX_NESTING_DEPTH));
    }

    #[test]
    fn comparisons_are_bounded() {
        let chain = |terms: usize| {
            (0..terms)
                .map(|i| format!("a{i} pr"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        assert!(parse_filter(&chain(MAX_COMPARISONS)).is_ok());
        let error = parse_error(&chain(MAX_COMPARISONS + 1));
        assert!(error.message.contains("more than"), "{error}");
    }

    #[test]
    fn displays_paths_as_written() {
        assert_eq!(
            urn_path(CORE_USER, "name", Some("familyName")).to_string(),
            format!("{CORE_USER}:name.familyName")
        );
        assert_eq!(
            sub_path("meta", "lastModified").to_string(),
            "meta.lastModified"
        );
        assert_eq!(urn_path(ENTERPRISE, "", None).to_string(), ENTERPRISE);
    }

    // --- PATCH paths --------------------------------------------------------

    #[test]
    fn parses_patch_paths() {
        assert_eq!(
            patch(r#"emails[type eq "work"].value"#),
            PatchPath {
                attr: path("emails"),
                filter: Some(comparison("type", CompareOp::Eq, string("work"))),
                sub_after_filter: Some("value".to_owned()),
            }
        );
        assert_eq!(
            patch("name.givenName"),
            PatchPath {
                attr: sub_path("name", "givenName"),
                filter: None,
                sub_after_filter: None,
            }
        );
        assert_eq!(
            patch(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#),
            PatchPath {
                attr: path("members"),
                filter: Some(comparison(
                    "value",
                    CompareOp::Eq,
                    string("2819c223-7f76-453a-919d-413861904646")
                )),
                sub_after_filter: None,
            }
        );
        assert_eq!(
            patch(r#"emails[value eq "a]b"].display"#).filter,
            Some(comparison("value", CompareOp::Eq, string("a]b")))
        );
        assert_eq!(
            patch("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager").attr,
            urn_path(ENTERPRISE, "manager", None)
        );
        assert_eq!(
            patch(r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "work"].display"#),
            PatchPath {
                attr: urn_path(CORE_USER, "emails", None),
                filter: Some(comparison("type", CompareOp::Eq, string("work"))),
                sub_after_filter: Some("display".to_owned()),
            }
        );
    }

    #[test]
    fn bare_extension_urn_needs_the_extension_list() {
        let whole_extension = PatchPath {
            attr: urn_path(ENTERPRISE, "", None),
            filter: None,
            sub_after_filter: None,
        };
        let spelled_differently = "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER";
        assert_eq!(
            parse_patch_path_with(spelled_differently, &[ENTERPRISE]),
            Ok(whole_extension)
        );
        // Without the list, the last ':' splits.
        assert_eq!(
            patch(ENTERPRISE).attr,
            urn_path(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0",
                "User",
                None
            )
        );
        assert_eq!(
            parse_patch_path_with(&format!("{ENTERPRISE}:employeeNumber"), &[ENTERPRISE])
                .map(|parsed| parsed.attr),
            Ok(urn_path(ENTERPRISE, "employeeNumber", None))
        );
    }

    #[test]
    fn rejects_malformed_patch_paths() {
        assert!(patch_error("").message.contains("empty"));
        assert!(patch_error("  ").message.contains("empty"));
        let two_subs = patch_error(r#"emails[type eq "work"].a.b"#);
        assert!(
            two_subs.message.contains("at most one sub-attribute"),
            "{two_subs}"
        );
        assert_eq!(two_subs.position, 24);
        patch_error(r#"emails[type eq "work"] extra"#);
        patch_error(r#"emails[type eq "work"]value"#);
        patch_error(r#"emails[type eq "work"]."#);
        patch_error(r#"emails[type eq "work"][value pr]"#);
        patch_error(r#"emails[type eq "work"]]"#);
        patch_error(r#"emails[type eq "work""#);
        patch_error("emails[]");
        patch_error("name.givenName extra");
        patch_error("name.givenName[value pr]");
        patch_error("emails[addresses[type pr]]");
        patch_error("[type pr]");
        patch_error(r#""name""#);
    }

    // --- evaluation ---------------------------------------------------------

    #[test]
    fn strings_compare_case_insensitively_unless_case_exact() {
        assert!(eval(r#"username eq "bjensen@example.com""#));
        assert!(eval(r#"userName eq "BJENSEN@EXAMPLE.COM""#));
        assert!(eval(r#"userName sw "BJENSEN""#));
        assert!(eval(r#"userName ew ".COM""#));
        assert!(eval(r#"userName co "@ExAmPlE""#));
        assert!(!eval(r#"userName co "nobody""#));
        assert!(eval(r#"id eq "2819c223-7f76-453a-919d-413861904646""#));
        assert!(eval(r#"ID eq "2819c223-7f76-453a-919d-413861904646""#));
        assert!(!eval(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
        assert!(!eval(r#"externalId sw "B""#));
        assert!(eval(r#"externalId sw "b""#));
    }

    #[test]
    fn strings_order_lexicographically() {
        assert!(eval(r#"name.familyName gt "j""#));
        assert!(!eval(r#"name.familyName lt "JENSEN""#));
        assert!(eval(r#"name.familyName le "JENSEN""#));
        assert!(eval(r#"name.familyName ge "JENSEN""#));
        assert!(eval(r#"name.familyName lt "k""#));
    }

    #[test]
    fn multi_valued_attributes_match_any_value() {
        assert!(eval(r#"emails.value eq "babs@jensen.org""#));
        assert!(eval(r#"emails.type eq "work""#));
        assert!(!eval(r#"emails.type eq "other""#));
        assert!(eval(
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#
        ));
        assert!(eval(
            r#"schemas[value sw "urn:ietf:params:scim:schemas:extension"]"#
        ));
    }

    #[test]
    fn complex_attributes_without_sub_attribute_compare_value() {
        assert!(eval(r#"emails eq "BABS@jensen.org""#));
        assert!(eval(r#"emails co "example.com""#));
        assert!(!eval(r#"emails eq "work""#));
        assert!(eval(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#
        ));
    }

    #[test]
    fn value_paths_need_one_element_to_match_the_whole_inner_filter() {
        assert!(eval(
            r#"emails[type eq "work" and value co "@example.com"]"#
        ));
        assert!(!eval(
            r#"emails[type eq "home" and value co "@example.com"]"#
        ));
        assert!(eval(r#"emails[primary eq true and type eq "work"]"#));
        assert!(eval(r#"emails[not (type eq "work")]"#));
        assert!(!eval(r#"phoneNumbers[type eq "work"]"#));
        assert!(!eval(r#"missing[type eq "work"]"#));
        assert!(eval(r#"name[givenName eq "barbara"]"#));
        assert!(eval(r#"schemas[value ew "enterprise:2.0:user"]"#));
    }

    #[test]
    fn date_times_compare_as_instants() {
        assert!(!eval(r#"meta.lastModified gt "2011-05-13T04:42:34.000Z""#));
        assert!(eval(r#"meta.lastModified ge "2011-05-13T04:42:34Z""#));
        // Textually "...T04" < "...T06", but 06:00+02:00 is 04:00Z.
        assert!(eval(r#"meta.lastModified gt "2011-05-13T06:00:00+02:00""#));
        assert!(eval(r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#));
        assert!(eval(r#"meta.lastModified lt "2011-05-13T04:42:34.5Z""#));
        assert!(eval(r#"meta.created lt "2011-01-01T00:00:00Z""#));
        assert!(!eval(r#"meta.created gt "2011-01-01T00:00:00Z""#));
    }

    #[test]
    fn parses_rfc3339_date_times() {
        let at = |seconds: i64, nanos: u32| Some(Timestamp { seconds, nanos });
        assert_eq!(parse_date_time("1970-01-01T00:00:00Z"), at(0, 0));
        assert_eq!(parse_date_time("1970-01-01t01:00:00+01:00"), at(0, 0));
        assert_eq!(
            parse_date_time("1969-12-31T23:59:59.25z"),
            at(-1, 250_000_000)
        );
        assert_eq!(parse_date_time("2000-03-01T00:00:00Z"), at(951_868_800, 0));
        assert_eq!(
            parse_date_time("2000-03-01T00:00:00.1234567891-00:00"),
            at(951_868_800, 123_456_789)
        );
        assert!(parse_date_time("2012-02-29T00:00:00Z").is_some());
        for invalid in [
            "2011-02-29T00:00:00Z",
            "2011-13-01T00:00:00Z",
            "2011-05-13",
            "2011-05-13T04:42:34",
            "2011-05-13T04:42:34.Z",
            "2011-05-13T24:00:00Z",
            "2011-05-13T04:42:34+0200",
            "2011-05-13T04:42:34Zjunk",
            "2011-05-13 04:42:34Z",
            "２０１１-05-13T04:42:34Z",
        ] {
            assert_eq!(parse_date_time(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(eval("loginCount gt 41"));
        assert!(eval("loginCount eq 42.0"));
        assert!(eval("loginCount le 42"));
        assert!(!eval("loginCount lt 42"));
        assert!(eval("score lt 5"));
        assert!(eval("score eq 4.5"));
        assert!(eval("score gt -1e3"));
        assert!(!eval("loginCount co 4"));
    }

    #[test]
    fn booleans_support_equality_only() {
        assert!(eval("active eq true"));
        assert!(!eval("active eq false"));
        assert!(eval("active ne false"));
        assert!(!eval("active gt false"));
        assert!(eval("emails.primary eq true"));
    }

    #[test]
    fn mismatched_types_do_not_match() {
        assert!(!eval(r#"loginCount eq "42""#));
        assert!(eval(r#"loginCount ne "42""#));
        assert!(!eval("userName eq 1"));
        assert!(!eval("loginCount eq true"));
        assert!(!eval(r#"active co "t""#));
        assert!(!eval(r#"name eq "Barbara""#));
    }

    #[test]
    fn present_needs_a_non_empty_value() {
        assert!(eval("userName pr"));
        assert!(eval("emails pr"));
        assert!(eval("emails.value pr"));
        assert!(eval("name.givenName pr"));
        assert!(eval("active pr"));
        assert!(!eval("title pr"));
        assert!(!eval("phoneNumbers pr"));
        assert!(!eval("nickName pr"));
        assert!(!eval("missing pr"));
        assert!(!eval("name.middleName pr"));
    }

    #[test]
    fn null_and_ne_treat_absence_as_a_value() {
        assert!(eval("nickName eq null"));
        assert!(eval("missing eq null"));
        assert!(eval("phoneNumbers eq null"));
        assert!(!eval("userName eq null"));
        assert!(!eval("name eq null"));
        assert!(eval("userName ne null"));
        assert!(!eval("missing ne null"));
        assert!(!eval("userName gt null"));
        assert!(eval(r#"missing ne "x""#));
        assert!(!eval(r#"title ne """#));
        assert!(!eval(r#"userName ne "bjensen@example.com""#));
        // `ne` on a multi-valued attribute: no value equals.
        assert!(!eval(r#"emails.type ne "work""#));
        assert!(eval(r#"emails.type ne "other""#));
    }

    #[test]
    fn urn_paths_select_the_root_or_the_extension() {
        assert!(eval(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName eq "jensen""#
        ));
        assert!(eval(
            "urn:ietf:params:scim:schemas:core:2.0:User:userName pr"
        ));
        assert!(eval(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#
        ));
        assert!(eval(
            r#"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:EMPLOYEENUMBER eq "701984""#
        ));
        assert!(eval(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#
        ));
        assert!(!eval(
            "urn:ietf:params:scim:schemas:extension:other:2.0:User:employeeNumber pr"
        ));
        assert!(!eval(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName pr"
        ));
    }

    #[test]
    fn logical_operators_combine() {
        assert!(eval(r#"not (userName eq "nobody")"#));
        assert!(!eval("not (userName pr)"));
        assert!(eval("userName pr and (title pr or active eq true)"));
        assert!(!eval("userName pr and (title pr or active eq false)"));
        assert!(eval(
            r#"missing pr or meta.lastModified ge "2011-01-01T00:00:00Z""#
        ));
    }

    #[test]
    fn long_chains_evaluate_without_deep_recursion() {
        let mut terms: Vec<String> = (0..MAX_COMPARISONS - 1)
            .map(|i| format!(r#"externalId eq "n{i}""#))
            .collect();
        terms.push(r#"externalId eq "bjensen""#.to_owned());
        assert!(eval(&terms.join(" or ")));
        let conjuncts = ["userName pr"; MAX_COMPARISONS];
        assert!(eval(&conjuncts.join(" and ")));
        assert!(!eval(&format!(
            "{} and missing pr",
            conjuncts[1..].join(" and ")
        )));
    }

    #[test]
    fn case_rules_are_asked_about_paths_from_the_root() {
        let asked_about = |input: &str| {
            let rules = RecordingRules::default();
            let _ = matches(&parse(input), &sample_user(), &rules);
            rules.asked.into_inner()
        };
        let emails_value = sub_path("emails", "value");
        for input in [
            r#"emails[value eq "x"]"#,
            r#"emails eq "x""#,
            r#"emails.value eq "x""#,
        ] {
            let asked = asked_about(input);
            assert!(!asked.is_empty(), "{input}");
            assert!(
                asked.iter().all(|path| *path == emails_value),
                "{input}: {asked:?}"
            );
        }
        assert_eq!(
            asked_about(
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "x""#
            ),
            vec![urn_path(ENTERPRISE, "manager", Some("value"))]
        );
        assert_eq!(asked_about(r#"userName eq "x""#), vec![path("userName")]);
        // Nothing to compare, nothing to ask.
        assert_eq!(asked_about(r#"loginCount eq "x""#), Vec::<AttrPath>::new());
    }

    #[test]
    fn evaluation_tolerates_any_resource_shape() {
        for resource in [
            json!(null),
            json!(42),
            json!("text"),
            json!([1, {"a": 2}]),
            json!({"a": [[1], {"b": []}]}),
        ] {
            for filter in ["a pr", "a eq 1", "a.b eq null", "a[b pr]", r#"a ne "x""#] {
                let _ = matches(&parse(filter), &resource, &ScimRules);
            }
        }
        // Trees the parser never builds still evaluate.
        let hand_made = Filter::ValuePath {
            path: path("emails"),
            filter: Box::new(Filter::ValuePath {
                path: urn_path(CORE_USER, "x", Some("y")),
                filter: Box::new(presence("z")),
            }),
        };
        assert!(!matches(&hand_made, &sample_user(), &ScimRules));
    }

    // --- equality_key -------------------------------------------------------

    #[test]
    fn equality_key_finds_a_top_level_indexed_equality() {
        assert_eq!(
            key(r#"userName eq "bjensen""#),
            Some(("userName", "bjensen".to_owned()))
        );
        assert_eq!(
            key(r#"USERNAME eq "Bjensen""#),
            Some(("userName", "Bjensen".to_owned()))
        );
        assert_eq!(
            key(r#"active eq true and userName eq "x""#),
            Some(("userName", "x".to_owned()))
        );
        assert_eq!(
            key(r#"title pr and (externalId eq "e" and active eq true)"#),
            Some(("externalId", "e".to_owned()))
        );
        assert_eq!(
            key(r#"id eq "1" and userName eq "x""#),
            Some(("id", "1".to_owned()))
        );
        assert_eq!(
            key(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#),
            Some(("userName", "x".to_owned()))
        );
    }

    #[test]
    fn equality_key_ignores_anything_else() {
        assert_eq!(key(r#"userName eq "x" or id eq "y""#), None);
        assert_eq!(key(r#"title pr and (userName eq "x" or id eq "y")"#), None);
        assert_eq!(key(r#"not (userName eq "x")"#), None);
        assert_eq!(key(r#"userName ne "x""#), None);
        assert_eq!(key(r#"userName co "x""#), None);
        assert_eq!(key("userName eq 1"), None);
        assert_eq!(key("userName eq null"), None);
        assert_eq!(key(r#"userName.sub eq "x""#), None);
        assert_eq!(key(r#"displayName eq "x""#), None);
        assert_eq!(
            key(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "x""#),
            None
        );
        assert_eq!(key(r#"emails[value eq "x"]"#), None);
        assert_eq!(
            equality_key(&parse(r#"emails[value eq "x"]"#), &["value", "emails"]),
            None
        );
    }
}
