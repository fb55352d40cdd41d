//! Replies from the gateways: an SMS answered `1` or `接`, a key pressed
//! on a call. What the reply means, whether the gateway really sent it
//! (an HMAC-SHA256 signature of the raw body), which fields hold the
//! sender and the text, and whose phone number it is.

use std::collections::HashMap;

use base64ct::{Base64, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What a steward answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyCode {
    Accept,
    Decline,
}

/// A reply's meaning: its first word, so "1 on my way" accepts and a
/// keypad's `1#` too. `None` for anything else.
pub fn parse_code(text: &str) -> Option<ReplyCode> {
    let word: String = text
        .trim()
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '#' | '*' | ',' | '，' | '.' | '。'))
        .collect::<String>()
        .to_lowercase();
    match word.as_str() {
        "1" | "y" | "yes" | "ok" | "accept" | "接" | "接受" | "是" | "好" => {
            Some(ReplyCode::Accept)
        }
        "2" | "n" | "no" | "decline" | "拒" | "拒绝" | "否" | "不" => Some(ReplyCode::Decline),
        _ => None,
    }
}

/// Whether `header` is the HMAC-SHA256 of `body` under `secret`, written
/// as `sha256=<hex>`, `<hex>` or base64 (providers differ). Constant
/// time.
pub fn signature_ok(secret: &[u8], body: &[u8], header: &str) -> bool {
    let value = header.trim();
    let value = value.strip_prefix("sha256=").unwrap_or(value);
    let tag = if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&value[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .ok()
    } else {
        Base64::decode_vec(value).ok()
    };
    let Some(tag) = tag else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// The fields of a reply's body: a JSON object (values as text) or a
/// form. `Err` says why it could not be read.
pub fn fields(body: &[u8], content_type: &str) -> Result<HashMap<String, String>, String> {
    if content_type
        .to_ascii_lowercase()
        .contains("x-www-form-urlencoded")
    {
        return Ok(url::form_urlencoded::parse(body).into_owned().collect());
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON or a form: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("the body is JSON but not an object".into());
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((k, text))
        })
        .collect())
}

/// A phone number's digits.
pub fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// Whether a steward's phone field holds a number a gateway could text
/// or call (five digits at least).
pub fn is_number(phone: &str) -> bool {
    digits(phone).len() >= 5
}

/// Whether two numbers are one phone: the same digits, or one is the
/// other with a country code in front (`+86 139…` and `139…`), the
/// shorter having at least seven digits.
pub fn same_phone(a: &str, b: &str) -> bool {
    let (a, b) = (digits(a), digits(b));
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.len() >= 7 && long.ends_with(&short) && long.len() - short.len() <= 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_in_both_languages_and_from_a_keypad() {
        for yes in ["1", " 1 ", "1#", "接", "接受", "Yes", "1 on my way", "ok"] {
            assert_eq!(parse_code(yes), Some(ReplyCode::Accept), "{yes}");
        }
        for no in ["2", "2#", "拒", "拒绝", "no", "N"] {
            assert_eq!(parse_code(no), Some(ReplyCode::Decline), "{no}");
        }
        for other in ["", "3", "12", "maybe", "接不了", "#"] {
            assert_eq!(parse_code(other), None, "{other}");
        }
    }

    #[test]
    fn signatures_in_hex_or_base64_are_checked() {
        let body = br#"{"from":"13900000101","text":"1"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert!(signature_ok(b"k", body, &format!("sha256={hex}")));
        assert!(signature_ok(b"k", body, &hex.to_uppercase()));
        assert!(signature_ok(b"k", body, &Base64::encode_string(&tag)));
        assert!(!signature_ok(b"other", body, &hex));
        assert!(!signature_ok(b"k", b"{}", &hex));
        assert!(!signature_ok(b"k", body, ""));
        assert!(!signature_ok(b"k", body, "sha256=zz"));
    }

    #[test]
    fn fields_come_from_json_or_a_form() {
        let f = fields(
            br#"{"from": "+8613900000101", "text": "1", "n": 5, "x": {}}"#,
            "application/json",
        )
        .unwrap();
        assert_eq!(f["from"], "+8613900000101");
        assert_eq!(f["n"], "5");
        assert!(!f.contains_key("x"));
        let f = fields(
            b"From=%2B8613900000101&Body=%E6%8E%A5",
            "application/x-www-form-urlencoded",
        )
        .unwrap();
        assert_eq!(f["Body"], "接");
        assert!(fields(b"[1]", "application/json").is_err());
        assert!(fields(b"\xff", "application/json").is_err());
    }

    #[test]
    fn phone_numbers_match_with_or_without_a_country_code() {
        assert!(same_phone("+86 139-0000-0101", "13900000101"));
        assert!(same_phone("13900000101", "13900000101"));
        assert!(!same_phone("13900000102", "13900000101"));
        assert!(!same_phone("0101", "13900000101"), "too short to trust");
        assert!(!same_phone("", ""));
    }
}
