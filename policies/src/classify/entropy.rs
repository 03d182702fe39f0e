//! Shannon entropy and placeholder heuristics for secret-like strings.

/// Shannon entropy in bits per character.
pub fn shannon(s: &str) -> f32 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let nf = n as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f32 / nf;
            -p * p.log2()
        })
        .sum()
}

/// Obvious placeholder values that must never be reported as secrets or identifiers:
/// template variables, angle-bracket hints, `xxxx`/`0000` runs, documented example keys,
/// sequential runs and repeated short units.
pub fn is_placeholder(v: &str) -> bool {
    let t = v.trim_matches(|c: char| c == '"' || c == '\'' || c == '`');
    if t.len() < 4 {
        return true;
    }
    let lower = t.to_ascii_lowercase();
    if t.starts_with('$')
        || t.starts_with('<')
        || t.starts_with('%')
        || t.starts_with('{')
        || t.contains("{{")
        || t.contains("<%")
    {
        return true;
    }
    const WORDS: [&str; 16] = [
        "example",
        "placeholder",
        "changeme",
        "change_me",
        "your_",
        "your-",
        "yourkey",
        "dummy",
        "fake",
        "redacted",
        "sample",
        "notapassword",
        "not_secret",
        "xxxx",
        "****",
        "todo",
    ];
    if WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    if lower.starts_with("test") || lower.ends_with("test") || lower == "password" {
        return true;
    }
    // Long runs of one character.
    let bytes = lower.as_bytes();
    let mut run = 1;
    for i in 1..bytes.len() {
        if bytes[i] == bytes[i - 1] && bytes[i].is_ascii_alphanumeric() {
            run += 1;
            if run >= 5 {
                return true;
            }
        } else {
            run = 1;
        }
    }
    let alnum: String = lower
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    if alnum.len() >= 4 && super::validate::all_same(&alnum) {
        return true;
    }
    // Sequential runs like 1234567 or abcdefg.
    let ab = alnum.as_bytes();
    let mut seq = 1;
    for i in 1..ab.len() {
        if ab[i] == ab[i - 1].wrapping_add(1) {
            seq += 1;
            if seq >= 8 {
                return true;
            }
        } else {
            seq = 1;
        }
    }
    // A short unit repeated 3+ times covering the value (abcd1234abcd1234abcd1234).
    for unit in 2..=8 {
        if ab.len() >= unit * 3 && ab.len() % unit == 0 {
            let u = &ab[..unit];
            if ab.chunks(unit).all(|c| c == u) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_bounds() {
        assert_eq!(shannon(""), 0.0);
        assert_eq!(shannon("aaaa"), 0.0);
        assert!((shannon("abcd") - 2.0).abs() < 1e-6);
        assert!(shannon("q8Zr2LmX9vT4kPw7sN1c") > 4.0);
    }

    #[test]
    fn placeholders() {
        for p in [
            "${API_KEY}",
            "<your-key>",
            "xxxxxxxx",
            "AKIAIOSFODNN7EXAMPLE",
            "changeme",
            "abcd1234abcd1234abcd1234",
            "1234567890ab",
            "%s",
            "000000",
        ] {
            assert!(is_placeholder(p), "{p}");
        }
        for real in ["q8Zr2LmX9vT4kPw7", "Z5vqs%MfuMnxU", "Winter2031!"] {
            assert!(!is_placeholder(real), "{real}");
        }
    }
}
