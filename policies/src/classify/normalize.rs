//! The detection view of a text: evasions undone before any detector runs.
//!
//! - Unicode compatibility forms (NFKC, per character): full-width digits and letters,
//!   ligatures, odd spaces (`４１１１`, `ｊ．ｄｏｅ＠ｘ．ｉｏ`).
//! - Format and zero-width characters removed (U+200B..U+200F, U+2060.., U+FEFF, soft
//!   hyphen, bidi controls, variation selectors, tag characters).
//! - Digits of other scripts (Arabic-Indic, Devanagari, Bengali, Thai, ...) as ASCII, and
//!   Unicode dashes as `-`.
//! - Confusable letters inside digit runs: `O`/`o` -> `0`, `I`/`l` -> `1`, only in a run of
//!   letters and digits that is otherwise all digits (`4l11 1lll` but not `ghp_a1l0...`,
//!   where the letters are part of a token).
//!
//! Every byte of the view maps back to the start of the original character that produced
//! it, so findings are reported on the original text's char boundaries (redaction and
//! restore cut the original). The per-character NFKC keeps that mapping exact; composition
//! across characters does not matter to the detectors.

use unicode_normalization::UnicodeNormalization;

/// A normalised copy of a text and, for each of its bytes, the byte offset of the original
/// character it came from.
#[derive(Debug, Clone)]
pub struct View {
    pub text: String,
    map: Vec<usize>,
}

impl View {
    /// Original span of the view span `s..e` (view byte offsets): from the start of the
    /// first character to the end of the last one. Both ends are char boundaries of `orig`.
    pub fn to_original(&self, orig: &str, s: usize, e: usize) -> (usize, usize) {
        let s = s.min(self.text.len());
        let e = e.min(self.text.len()).max(s);
        let os = self.map.get(s).copied().unwrap_or(orig.len());
        if e == s {
            return (os, os);
        }
        let last = self.map[e - 1];
        let len = orig[last..].chars().next().map_or(0, char::len_utf8);
        (os, (last + len).max(os))
    }
}

/// Characters that change nothing visible: dropped from the view.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}')
}

/// Zero code points of decimal-digit blocks that NFKC leaves alone.
const DIGIT_ZEROS: &[u32] = &[
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xAA50, 0xABF0,
];

fn script_digit(c: char) -> Option<char> {
    let u = c as u32;
    DIGIT_ZEROS
        .iter()
        .find(|&&z| (z..z + 10).contains(&u))
        .and_then(|&z| char::from_digit(u - z, 10))
}

fn is_dash(c: char) -> bool {
    matches!(
        c,
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' | '\u{30FC}'
    )
}

fn confusable(c: char) -> Option<char> {
    match c {
        'O' | 'o' => Some('0'),
        'I' | 'l' => Some('1'),
        _ => None,
    }
}

/// A run of ASCII letters and digits whose letters are all confusables, with at least two
/// real digits and no more confusables than digits.
fn confusable_run(run: &[char]) -> bool {
    let digits = run.iter().filter(|c| c.is_ascii_digit()).count();
    let conf = run.iter().filter(|&&c| confusable(c).is_some()).count();
    conf > 0 && digits >= 2 && conf <= digits && digits + conf == run.len()
}

/// Fast check: would [`normalize`] change anything?
fn needs_view(text: &str) -> bool {
    if !text.is_ascii() {
        return true;
    }
    // ASCII: only confusable digit runs matter.
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let s = i;
        let (mut digits, mut conf, mut other) = (0, 0, 0);
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            match b[i] {
                b'0'..=b'9' => digits += 1,
                b'O' | b'o' | b'I' | b'l' => conf += 1,
                _ => other += 1,
            }
            i += 1;
        }
        if other == 0 && conf > 0 && digits >= 2 && conf <= digits && i - s >= 3 {
            return true;
        }
    }
    false
}

/// The detection view of `text`, or `None` when it would equal `text`.
pub fn normalize(text: &str) -> Option<View> {
    if !needs_view(text) {
        return None;
    }
    // Pass 1: per-character mapping, remembering each output char's original offset.
    let mut chars: Vec<(char, usize)> = Vec::with_capacity(text.len());
    for (pos, c) in text.char_indices() {
        if c.is_ascii() {
            chars.push((c, pos));
        } else if is_format(c) {
            continue;
        } else if let Some(d) = script_digit(c) {
            chars.push((d, pos));
        } else if is_dash(c) {
            chars.push(('-', pos));
        } else if !c.is_whitespace() && std::iter::once(c).nfkc().any(char::is_whitespace) {
            // Spacing diacritics (`¨`, `´`) decompose to a space plus a combining mark; a
            // space inside a value would split it.
            chars.push((c, pos));
        } else {
            for n in std::iter::once(c).nfkc() {
                chars.push((if is_dash(n) { '-' } else { n }, pos));
            }
        }
    }
    // Pass 2: confusable letters inside digit runs.
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].0.is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let s = i;
        while i < chars.len() && chars[i].0.is_ascii_alphanumeric() {
            i += 1;
        }
        // A run glued to a non-ASCII letter is part of a word, not a number.
        let glued = (s > 0 && chars[s - 1].0.is_alphanumeric())
            || (i < chars.len() && chars[i].0.is_alphanumeric());
        let run: Vec<char> = chars[s..i].iter().map(|x| x.0).collect();
        if !glued && confusable_run(&run) {
            for x in &mut chars[s..i] {
                if let Some(d) = confusable(x.0) {
                    x.0 = d;
                }
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len() + 1);
    for (c, pos) in chars {
        out.push(c);
        map.extend(std::iter::repeat_n(pos, c.len_utf8()));
    }
    if out == text {
        return None;
    }
    map.push(text.len());
    Some(View { text: out, map })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(t: &str) -> String {
        normalize(t).map_or_else(|| t.to_string(), |v| v.text)
    }

    #[test]
    fn full_width_and_zero_width() {
        assert_eq!(view("２１９-０９-９９９９"), "219-09-9999");
        assert_eq!(
            view("4111\u{200B}1111\u{FEFF}1111\u{2060}1111"),
            "4111111111111111"
        );
        assert_eq!(view("ｊ．ｄｏｅ＠ｍａｉｌ．ｉｏ"), "j.doe@mail.io");
        assert_eq!(view("soft\u{00AD}hyphen"), "softhyphen");
        // A spacing diaeresis stays one non-space character.
        assert_eq!(view("A,.:-\u{00A8}@*"), "A,.:-\u{00A8}@*");
    }

    #[test]
    fn script_digits_and_dashes() {
        assert_eq!(view("٤١١١ ١١١١"), "4111 1111");
        assert_eq!(view("०१२३४५६७८९"), "0123456789");
        assert_eq!(view("123\u{2013}45\u{2212}6789"), "123-45-6789");
    }

    #[test]
    fn confusables_only_inside_digit_runs() {
        assert_eq!(view("card 4l11 1lI1 O111 1111"), "card 4111 1111 0111 1111");
        // Words and tokens keep their letters.
        assert!(normalize("hello world, call 911 now").is_none());
        assert!(normalize("ghp_a1l0b2").is_none());
        assert_eq!(view("lol 10l"), "lol 101");
    }

    #[test]
    fn spans_map_to_original_char_boundaries() {
        let orig = "SSN: ２１９-０９-９９９９ ok";
        let v = normalize(orig).expect("changed");
        let s = v.text.find("219").expect("digits");
        let e = s + "219-09-9999".len();
        let (os, oe) = v.to_original(orig, s, e);
        assert_eq!(&orig[os..oe], "２１９-０９-９９９９");
        let z = "a\u{200B}b";
        let v = normalize(z).expect("changed");
        assert_eq!(v.to_original(z, 0, 2), (0, z.len()));
    }
}
