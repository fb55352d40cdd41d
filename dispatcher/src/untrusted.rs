//! Text from outside (device payloads and topics, gateway and webhook
//! replies) on its way into a log line. `tracing`'s `%` writes a string as
//! it is, so a `\n` in a payload would start a forged log line and an
//! escape code would repaint the operator's terminal. [`Untrusted`]
//! escapes every control character (`\n`, `\u{1b}`) and cuts the text to
//! [`LOG_CUT`] bytes, as PROTOCOL.md says of rejected payloads.

use std::fmt;

/// How much of an untrusted text a log line keeps (PROTOCOL.md: "payload
/// cut to 256 bytes").
pub const LOG_CUT: usize = 256;

/// Bytes or text from outside, shown escaped and cut: log it with `%`.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(&'a [u8]);

/// Text from outside, for a log line.
pub fn text(s: &str) -> Untrusted<'_> {
    Untrusted(s.as_bytes())
}

/// Bytes from outside (a payload that may not be UTF-8), for a log line.
pub fn bytes(b: &[u8]) -> Untrusted<'_> {
    Untrusted(b)
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = &self.0[..self.0.len().min(LOG_CUT)];
        // A character split by the cut shows as U+FFFD, never as a panic.
        for c in String::from_utf8_lossy(cut).chars() {
            write!(f, "{}", c.escape_debug())?;
        }
        if cut.len() < self.0.len() {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        let shown = text("ok\n2026-01-01T00:00:00Z  INFO forged\u{1b}[31m").to_string();
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown}"
        );
        assert!(
            shown.contains("\\n") && shown.contains("\\u{1b}"),
            "{shown}"
        );
        assert_eq!(text("Lhasa 拉萨").to_string(), "Lhasa 拉萨");

        let long = "x".repeat(1000);
        let shown = text(&long).to_string();
        assert!(shown.starts_with(&"x".repeat(LOG_CUT)), "{shown}");
        assert!(shown.ends_with("… (1000 bytes)"), "{shown}");

        // A cut through a character, and bytes that are not UTF-8.
        let shown = bytes(&[b'a', 0xff, b'\r']).to_string();
        assert_eq!(shown, "a\u{fffd}\\r");
        let chinese = "拉".repeat(200);
        assert!(text(&chinese).to_string().ends_with("(600 bytes)"));
    }
}
