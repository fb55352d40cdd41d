//! SMS and voice gateways, wired by settings: the request a provider
//! wants (`method url`, headers, a body) with its `{placeholder}`s filled
//! in ([`crate::template`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::settings::GatewaySettings;
pub use crate::template::PLACEHOLDERS;
use crate::template::{Escape, body_escape, render};

/// One gateway request, connection included, at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);

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
    use crate::template::{Escape, render};

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
        let (field, problem, _) = g.check().unwrap_err();
        assert_eq!(field, "body");
        assert!(problem.contains("{txt}"), "{problem}");
        let mut g = gateway("{text}", "text/plain");
        assert!(g.check().is_ok());
        g.url = "sms.example.com/send".into();
        assert_eq!(g.check().unwrap_err().0, "url");
        let mut g = gateway("{text}", "text/plain");
        g.method = "DELETE".into();
        assert_eq!(g.check().unwrap_err().0, "method");
        let mut g = gateway("{text}", "text/plain");
        g.headers.insert("Bad Header".into(), Secret::new("x"));
        assert_eq!(g.check().unwrap_err().0, "headers.Bad Header");
    }
}
