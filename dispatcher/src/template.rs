//! The template language of the SMS and voice gateways' settings.
//!
//! A placeholder is `{` + lower-case letters and `_` + `}`; every other
//! brace is text, so a JSON body template needs no escaping:
//! `{"to": "{phone}", "text": "{text}"}`. Values are escaped for where
//! they land: inside a JSON string when the content type is JSON,
//! form-encoded when it is `application/x-www-form-urlencoded`,
//! percent-encoded in the URL, as they are otherwise.

use std::collections::BTreeMap;

/// Every placeholder a template may use.
pub const PLACEHOLDERS: [&str; 15] = [
    "phone",
    "text",
    "link",
    "incident_id",
    "offer_id",
    "priority",
    "kind",
    "elder_name",
    "distance_m",
    "seconds_left",
    "expires_at",
    "steward_id",
    "steward_name",
    "lang",
    "reply_url",
];

/// How values are escaped where they land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Inside a JSON string: quotes, backslashes and control characters.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// A URL's path or query.
    Url,
    /// Plain text bodies (XML gateways escape their own way: use JSON or
    /// form where the provider allows).
    None,
}

/// A piece of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    /// `{name}`'s name.
    Placeholder(&'a str),
}

/// A template cut into its text and its placeholders, in order.
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
            .count();
        if name_len > 0 && after.as_bytes().get(name_len) == Some(&b'}') {
            out.push(Piece::Text(&rest[..start]));
            out.push(Piece::Placeholder(&after[..name_len]));
            rest = &after[name_len + 1..];
        } else {
            // Not a placeholder: the brace is text.
            out.push(Piece::Text(&rest[..=start]));
            rest = after;
        }
    }
    out.push(Piece::Text(rest));
    out
}

/// The placeholders of a template, in order.
pub fn placeholders(template: &str) -> Vec<&str> {
    pieces(template)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect()
}

/// Fills a template's placeholders from `values` (a missing value is
/// empty), escaped as `escape` says.
pub fn render(template: &str, values: &BTreeMap<&str, String>, escape: Escape) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    for piece in pieces(template) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Placeholder(name) => {
                let value = values.get(name).map_or("", String::as_str);
                push_escaped(&mut out, value, escape);
            }
        }
    }
    out
}

fn push_escaped(out: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::Json => {
            let quoted = serde_json::to_string(value).expect("a string serialises");
            out.push_str(&quoted[1..quoted.len() - 1]);
        }
        Escape::Form => out
            .push_str(&url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()),
        // Form encoding writes a space as `+`, which a URL path keeps as
        // a plus; `%20` means a space anywhere.
        Escape::Url => {
            for part in url::form_urlencoded::byte_serialize(value.as_bytes()) {
                out.push_str(&part.replace('+', "%20"));
            }
        }
        Escape::None => out.push_str(value),
    }
}

pub fn body_escape(content_type: &str) -> Escape {
    let ct = content_type.to_ascii_lowercase();
    if ct.contains("json") {
        Escape::Json
    } else if ct.contains("x-www-form-urlencoded") {
        Escape::Form
    } else {
        Escape::None
    }
}
