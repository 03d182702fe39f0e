//! Obvious encodings inside a text: base64 runs, hex runs and percent-encoded runs whose
//! decoded bytes are mostly printable text. The detectors scan the decoded text and a
//! finding there is reported over the encoded span, so `QUtJQV...` (a base64 AWS key) or
//! `%34%31%31%31...` (a URL-encoded card) is as sensitive as the plain value.
//!
//! "Obvious" keeps this cheap and quiet: a base64 run needs 16+ characters with upper and
//! lower case (identifiers and hex do not qualify), a hex run 16+ even digits with letters
//! and digits, a percent run 3+ `%XX` escapes; random bytes (hashes, real key material)
//! fail the printable test and are left to the token detectors.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);

/// An encoded span of the text and its decoded content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Decoded bytes that read as text: valid UTF-8, at least 6 characters, at least 90%
/// of them printable (or whitespace).
fn printable(bytes: Vec<u8>) -> Option<String> {
    let s = String::from_utf8(bytes).ok()?;
    let n = s.chars().count();
    if n < 6 {
        return None;
    }
    let ok = s
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
        .count();
    (ok * 10 >= n * 9).then_some(s)
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|v| v as u8)
}

/// Every obvious encoded span of `text`, decoded.
pub fn encoded_spans(text: &str) -> Vec<Decoded> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let has_percent = b.contains(&b'%');
    let mut i = 0;
    while i < b.len() {
        if !is_b64(b[i]) && b[i] != b'%' && b[i] != b'\\' {
            i += 1;
            continue;
        }
        let s = i;
        // Percent-encoded run: non-space bytes with at least three %XX escapes.
        if has_percent && (b[i] == b'%' || b[i].is_ascii_alphanumeric()) {
            let mut e = i;
            let mut escapes = 0;
            while e < b.len() && !b[e].is_ascii_whitespace() && b[e] != b'"' && b[e] != b'\'' {
                if b[e] == b'%'
                    && e + 2 < b.len()
                    && hex_val(b[e + 1]).is_some()
                    && hex_val(b[e + 2]).is_some()
                {
                    escapes += 1;
                }
                e += 1;
            }
            if escapes >= 3 {
                if let Some(t) = percent_decode(&text[s..e]) {
                    out.push(Decoded {
                        start: s,
                        end: e,
                        text: t,
                    });
                }
                i = e;
                continue;
            }
        }
        // `\x41\x4b...` escapes.
        if b[i] == b'\\' {
            let mut e = i;
            let mut bytes = Vec::new();
            while e + 3 < b.len() && b[e] == b'\\' && (b[e + 1] == b'x' || b[e + 1] == b'X') {
                match (hex_val(b[e + 2]), hex_val(b[e + 3])) {
                    (Some(h), Some(l)) => bytes.push(h << 4 | l),
                    _ => break,
                }
                e += 4;
            }
            if bytes.len() >= 6 {
                if let Some(t) = printable(bytes) {
                    out.push(Decoded {
                        start: s,
                        end: e,
                        text: t,
                    });
                }
                i = e;
                continue;
            }
            i += 1;
            continue;
        }
        let mut e = i;
        while e < b.len() && is_b64(b[e]) {
            e += 1;
        }
        let mut pad = e;
        while pad < b.len() && b[pad] == b'=' && pad - e < 2 {
            pad += 1;
        }
        let run = &text[s..e];
        let len = run.len();
        if len >= 16 {
            let hex = run.bytes().all(|c| c.is_ascii_hexdigit());
            let hex =
                hex || (run.starts_with("0x") && run[2..].bytes().all(|c| c.is_ascii_hexdigit()));
            if hex {
                let digits = run.trim_start_matches("0x");
                let has_letter = digits.bytes().any(|c| c.is_ascii_alphabetic());
                let has_digit = digits.bytes().any(|c| c.is_ascii_digit());
                if digits.len() % 2 == 0 && has_letter && has_digit {
                    let bytes: Option<Vec<u8>> = digits
                        .as_bytes()
                        .chunks(2)
                        .map(|p| Some(hex_val(p[0])? << 4 | hex_val(p[1])?))
                        .collect();
                    if let Some(t) = bytes.and_then(printable) {
                        out.push(Decoded {
                            start: s,
                            end: e,
                            text: t,
                        });
                    }
                }
            } else {
                // Base64 of text mixes at least two of upper case, lower case and digits
                // (digit strings encode to upper case and digits: `MTIzNDU2`); a
                // CONSTANT_NAME is not base64.
                let upper = run.bytes().any(|c| c.is_ascii_uppercase());
                let lower = run.bytes().any(|c| c.is_ascii_lowercase());
                let digit = run.bytes().any(|c| c.is_ascii_digit());
                let classes = upper as u8 + lower as u8 + digit as u8;
                if classes >= 2 && (lower || !run.contains('_')) {
                    let url = run.bytes().any(|c| c == b'-' || c == b'_');
                    let engine = if url { &URL_SAFE } else { &STANDARD };
                    // A length of 4k+1 cannot be base64: drop the last character.
                    let body = if len % 4 == 1 { &run[..len - 1] } else { run };
                    if let Some(t) = engine.decode(body).ok().and_then(printable) {
                        out.push(Decoded {
                            start: s,
                            end: pad,
                            text: t,
                        });
                    }
                }
            }
        }
        i = pad.max(s + 1);
    }
    out
}

/// `%XX` escapes (and `+` as space) decoded; `None` unless the result is text.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    printable(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_hex_and_percent() {
        let t = "see QUtJQVlKNFQ3UTJXTE01VkNHWEg= here";
        let d = encoded_spans(t);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].text, "AKIAYJ4T7Q2WLM5VCGXH");
        assert_eq!(&t[d[0].start..d[0].end], "QUtJQVlKNFQ3UTJXTE01VkNHWEg=");
        let h = encoded_spans("x 6d792070696e2069732034383231 y");
        assert_eq!(h[0].text, "my pin is 4821");
        let p = encoded_spans("q=%34%31%31%31%20%31%31 end");
        assert_eq!(p[0].text, "q=4111 11");
        let x = encoded_spans(r"s = '\x6d\x79\x20\x70\x69\x6e'");
        assert_eq!(x[0].text, "my pin");
    }

    #[test]
    fn ordinary_text_and_random_bytes_are_left_alone() {
        assert!(encoded_spans("the deployment_pipeline_should retry requests").is_empty());
        // A SHA-256 (hex) and random base64 key material decode to non-text.
        assert!(
            encoded_spans("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
                .is_empty()
        );
        assert!(encoded_spans("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzKEYabc12").is_empty());
        assert!(encoded_spans("100% sure, 50% off").is_empty());
    }
}
