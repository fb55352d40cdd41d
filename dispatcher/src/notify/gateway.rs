//! SMS and voice gateways, wired by settings: the request a provider
//! wants (`method url`, headers, a body) with `{placeholder}`s filled in.
//!
//! A placeholder is `{` + lower-case letters and `_` + `}`; every other
//! brace is text, so a JSON body template needs no escaping:
//! `{"to": "{phone}", "text": "{text}"}`. Values are escaped for where
//! they land: inside a JSON string when the content type is JSON,
//! form-encoded when it is `application/x-www-form-urlencoded`,
//! percent-encoded in the URL, as they are otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::settings::GatewaySettings;

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

/// One gateway request, connection included, at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How values are escaped where they land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
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
fn placeholders(template: &str) -> Vec<&str> {
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
fn render(template: &str, values: &BTreeMap<&str, String>, escape: Escape) -> String {
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

fn body_escape(content_type: &str) -> Escape {
    let ct = content_type.to_ascii_lowercase();
    if ct.contains("json") {
        Escape::Json
    } else if ct.contains("x-www-form-urlencoded") {
        Escape::Form
    } else {
        Escape::None
    }
}

/// Checks a gateway's settings at start-up: `Err((field, problem, fix))`.
pub fn check(g: &GatewaySettings) -> Result<(), (String, String, &'static str)> {
    let url_ok = reqwest::Url::parse(&g.url.replace(['{', '}'], ""))
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    if !url_ok {
        return Err((
            "url".into(),
            format!("{:?} is not an http(s) URL", g.url),
            "give the gateway's full address, e.g. https://sms.example.com/send",
        ));
    }
    if !matches!(g.method.as_str(), "GET" | "POST" | "PUT") {
        return Err((
            "method".into(),
            format!("{:?} is not GET, POST or PUT", g.method),
            "use POST unless the gateway's documentation says otherwise",
        ));
    }
    for (name, value) in &g.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value.expose()).is_err()
        {
            return Err((
                format!("headers.{name}"),
                "is not a valid HTTP header".into(),
                "use a plain header name and a value without line breaks",
            ));
        }
    }
    if http::HeaderValue::from_str(&g.content_type).is_err() {
        return Err((
            "content_type".into(),
            format!("{:?} is not a header value", g.content_type),
            "e.g. application/json",
        ));
    }
    for (field, template) in [("url", &g.url), ("body", &g.body)] {
        if let Some(unknown) = placeholders(template)
            .into_iter()
            .find(|p| !PLACEHOLDERS.contains(p))
        {
            return Err((
                field.into(),
                format!("names {{{unknown}}}, which is not a placeholder"),
                "use {phone}, {text}, {link}, {incident_id}, {offer_id}, {priority}, {kind}, \
                 {elder_name}, {distance_m}, {seconds_left}, {expires_at}, {steward_id}, \
                 {steward_name}, {lang} or {reply_url}",
            ));
        }
    }
    if g.max_attempts == 0 {
        return Err((
            "max_attempts".into(),
            "is 0".into(),
            "set 1 or more (3 is usual)",
        ));
    }
    if let Some(i) = &g.inbound {
        if http::HeaderName::from_bytes(i.signature_header.as_bytes()).is_err() {
            return Err((
                "inbound.signature_header".into(),
                format!("{:?} is not a header name", i.signature_header),
                "e.g. X-Eldercare-Signature",
            ));
        }
        // Anyone can sign with an empty or short key.
        if i.secret.expose().len() < 16 {
            return Err((
                "inbound.secret".into(),
                "is shorter than 16 characters".into(),
                "use a long random secret, the same the gateway signs with",
            ));
        }
    }
    Ok(())
}

/// The request a gateway is sent, built from its settings and the values.
pub fn request(
    http: &reqwest::Client,
    g: &GatewaySettings,
    values: &BTreeMap<&str, String>,
) -> reqwest::RequestBuilder {
    let url = render(&g.url, values, Escape::Url);
    let method = reqwest::Method::from_bytes(g.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut req = http.request(method.clone(), url).timeout(TIMEOUT);
    for (name, value) in &g.headers {
        req = req.header(name.as_str(), value.expose());
    }
    if method != reqwest::Method::GET {
        req = req
            .header(reqwest::header::CONTENT_TYPE, g.content_type.as_str())
            .body(render(&g.body, values, body_escape(&g.content_type)));
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Secret;

    fn values() -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("phone", "+86 139 0000 0101".to_owned()),
            ("text", "危急 \"跌倒\"\n回复 1 & 2".to_owned()),
            ("seconds_left", "25".to_owned()),
        ])
    }

    fn gateway(body: &str, content_type: &str) -> GatewaySettings {
        GatewaySettings {
            url: "http://127.0.0.1:9/send?to={phone}".into(),
            method: "POST".into(),
            headers: BTreeMap::from([("Authorization".to_owned(), Secret::new("Bearer k"))]),
            content_type: content_type.into(),
            body: body.into(),
            max_attempts: 3,
            inbound: None,
        }
    }

    #[test]
    fn json_bodies_keep_their_braces_and_escape_the_values() {
        let body = render(
            r#"{"to": "{phone}", "text": "{text}", "x": {"y": 1}, "left": {seconds_left}}"#,
            &values(),
            Escape::Json,
        );
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(v["left"], 25);
        assert_eq!(v["to"], "+86 139 0000 0101");
        assert_eq!(v["text"], "危急 \"跌倒\"\n回复 1 & 2");
        assert_eq!(v["x"]["y"], 1);
    }

    #[test]
    fn form_bodies_and_urls_are_percent_encoded() {
        let body = render("to={phone}&msg={text}", &values(), Escape::Form);
        let back: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(back[0], ("to".into(), "+86 139 0000 0101".into()));
        assert_eq!(back[1].1, "危急 \"跌倒\"\n回复 1 & 2");
        let req = request(
            &reqwest::Client::new(),
            &gateway("{text}", "text/plain"),
            &values(),
        )
        .build()
        .unwrap();
        assert_eq!(req.url().query(), Some("to=%2B86%20139%200000%200101"));
        assert_eq!(req.headers()["authorization"], "Bearer k");
        assert_eq!(req.headers()["content-type"], "text/plain");
    }

    #[test]
    fn settings_name_an_unknown_placeholder_and_a_bad_url() {
        let g = gateway(r#"{"to": "{phone}", "t": "{txt}"}"#, "application/json");
        let (field, problem, _) = check(&g).unwrap_err();
        assert_eq!(field, "body");
        assert!(problem.contains("{txt}"), "{problem}");
        let mut g = gateway("{text}", "text/plain");
        assert!(check(&g).is_ok());
        g.url = "sms.example.com/send".into();
        assert_eq!(check(&g).unwrap_err().0, "url");
        let mut g = gateway("{text}", "text/plain");
        g.method = "DELETE".into();
        assert_eq!(check(&g).unwrap_err().0, "method");
        let mut g = gateway("{text}", "text/plain");
        g.headers.insert("Bad Header".into(), Secret::new("x"));
        assert_eq!(check(&g).unwrap_err().0, "headers.Bad Header");
    }
}
