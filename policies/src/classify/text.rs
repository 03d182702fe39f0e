//! Text utilities shared by the detectors: tokens, sentences, vowel skeletons and the
//! "de-spacing" normalisation that undoes `4 9 1 6 ...` style obfuscation.

/// A word token: byte span into the scanned text plus its lowercase form.
#[derive(Debug, Clone)]
pub struct Token {
    pub start: usize,
    pub end: usize,
    pub lower: String,
}

/// Split into word tokens: runs of alphanumerics plus inner `'`, `-`, `_`, `.`, `@`
/// (so `e-mail`, `I'm`, `j.doe@x.com` stay whole); trailing punctuation is dropped.
pub fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::with_capacity(text.len() / 5 + 1);
    let mut start: Option<usize> = None;
    let mut last_alnum_end = 0;
    for (i, c) in text.char_indices() {
        let alnum = c.is_alphanumeric();
        let inner = matches!(c, '\'' | '’' | '-' | '_' | '.' | '@' | '/' | ':');
        match start {
            None if alnum => {
                start = Some(i);
                last_alnum_end = i + c.len_utf8();
            }
            Some(_) if alnum => last_alnum_end = i + c.len_utf8(),
            Some(s) if !inner => {
                push(&mut out, text, s, last_alnum_end);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        push(&mut out, text, s, last_alnum_end);
    }
    out
}

fn push(out: &mut Vec<Token>, text: &str, s: usize, e: usize) {
    if e > s {
        out.push(Token {
            start: s,
            end: e,
            lower: text[s..e].to_lowercase(),
        });
    }
}

/// Lowercase consonant skeleton (`address` -> `ddrss`), used to match vowel-dropped typos.
pub fn skeleton(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric() && !matches!(c, 'a' | 'e' | 'i' | 'o' | 'u'))
        .flat_map(|c| c.to_lowercase())
        .collect()
}

/// Byte span of the sentence around `pos`: boundaries are newlines and `.?!;` followed by
/// whitespace or the end of text.
pub fn sentence_at(text: &str, pos: usize) -> (usize, usize) {
    let b = text.as_bytes();
    let pos = pos.min(b.len());
    let mut s = pos;
    while s > 0 {
        let c = b[s - 1];
        if c == b'\n' {
            break;
        }
        if matches!(c, b'.' | b'?' | b'!' | b';')
            && (s >= b.len() || b[s].is_ascii_whitespace())
            && s < pos
        {
            break;
        }
        s -= 1;
    }
    let mut e = pos;
    while e < b.len() {
        let c = b[e];
        if c == b'\n' {
            break;
        }
        if matches!(c, b'.' | b'?' | b'!' | b';')
            && (e + 1 >= b.len() || b[e + 1].is_ascii_whitespace())
        {
            e += 1;
            break;
        }
        e += 1;
    }
    (s, e)
}

/// De-spaced copy of `text` and, for each byte of it, the byte offset in `text`.
/// Runs of at least three space-separated short pieces (`4 9 1 6`, `u s e r 1 6`,
/// `1 9 2 .1 6 8`) are joined; a piece of two letters ends a run so words stay apart.
/// Returns `None` when nothing was joined.
pub fn despace(text: &str) -> Option<(String, Vec<usize>)> {
    // Pieces separated by single spaces.
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    let b = text.as_bytes();
    while i < b.len() {
        if b[i] == b' ' {
            i += 1;
            continue;
        }
        let s = i;
        while i < b.len() && b[i] != b' ' {
            i += 1;
        }
        pieces.push((s, i));
    }
    let joinable = |(s, e): (usize, usize)| -> bool {
        let p = &text[s..e];
        let n = p.chars().count();
        n == 1 || (n == 2 && !p.chars().all(|c| c.is_alphabetic()))
    };
    let single = |(s, e): (usize, usize)| text[s..e].chars().count() == 1;
    let mut join_after = vec![false; pieces.len()];
    let mut k = 0;
    let mut any = false;
    while k < pieces.len() {
        if !joinable(pieces[k]) {
            k += 1;
            continue;
        }
        let mut j = k;
        let mut singles = 0;
        while j < pieces.len()
            && joinable(pieces[j])
            && (j == k || pieces[j].0 == pieces[j - 1].1 + 1)
        {
            if single(pieces[j]) {
                singles += 1;
            }
            j += 1;
        }
        // A following longer piece directly glued (e.g. `S t` then `Street`) is left alone.
        if j - k >= 3 && singles >= 2 {
            for flag in join_after.iter_mut().take(j - 1).skip(k) {
                *flag = true;
            }
            any = true;
        }
        k = j.max(k + 1);
    }
    if !any {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len() + 1);
    let mut last = 0;
    for (idx, &(s, e)) in pieces.iter().enumerate() {
        // Copy separators between the previous piece and this one unless joined.
        let joined = idx > 0 && join_after[idx - 1];
        if !joined {
            for (o, ch) in text[last..s].char_indices() {
                for k2 in 0..ch.len_utf8() {
                    map.push(last + o + k2);
                }
                out.push(ch);
            }
        }
        for (o, ch) in text[s..e].char_indices() {
            for k2 in 0..ch.len_utf8() {
                map.push(s + o + k2);
            }
            out.push(ch);
        }
        last = e;
    }
    for (o, ch) in text[last..].char_indices() {
        for k2 in 0..ch.len_utf8() {
            map.push(last + o + k2);
        }
        out.push(ch);
    }
    map.push(text.len());
    Some((out, map))
}

/// Copy of `text` with digit groups joined where they were broken irregularly
/// (`41 11 1111 11 11 1111`, `219.09.99 99`, `+1 41 5 555 01 99`), and the byte map back.
/// A run is three or more groups of 1-6 digits separated by single spaces, dots or
/// dashes, 9-19 digits in all, with a group of one or two digits or mixed separators
/// (regular formats like `4111 1111 1111 1111` are left to the detectors as they are).
/// Returns `None` when nothing was joined.
pub fn join_digit_groups(text: &str) -> Option<(String, Vec<usize>)> {
    let b = text.as_bytes();
    // (start, end) of each joined run's separators to drop.
    let mut drop: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut seps: Vec<u8> = Vec::new();
        let mut j = i;
        loop {
            let s = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j - s > 6 {
                break;
            }
            groups.push((s, j));
            if j + 1 < b.len() && matches!(b[j], b' ' | b'.' | b'-') && b[j + 1].is_ascii_digit() {
                seps.push(b[j]);
                j += 1;
            } else {
                break;
            }
        }
        let digits: usize = groups.iter().map(|(s, e)| e - s).sum();
        let glued_after = j < b.len() && b[j].is_ascii_alphanumeric();
        // A country code after '+' is short by nature ("+1 415 555 0199" is regular).
        let cc = usize::from(i > 0 && b[i - 1] == b'+');
        let short = groups.iter().skip(cc).any(|(s, e)| e - s <= 2);
        let mixed = seps.windows(2).any(|w| w[0] != w[1]);
        if groups.len() >= 3 && (9..=19).contains(&digits) && !glued_after && (short || mixed) {
            drop.extend(groups.iter().skip(1).map(|(s, _)| s - 1));
        }
        i = j.max(i + 1);
    }
    if drop.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len() + 1);
    let mut k = 0;
    for (pos, ch) in text.char_indices() {
        if k < drop.len() && drop[k] == pos {
            k += 1;
            continue;
        }
        out.push(ch);
        // Byte for byte, as `despace` does: callers map `end - 1` and add one.
        map.extend(pos..pos + ch.len_utf8());
    }
    map.push(text.len());
    Some((out, map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes() {
        let t = tokens("Hi, I'm Ann (ann.x@y.io)!");
        let words: Vec<&str> = t.iter().map(|t| t.lower.as_str()).collect();
        assert_eq!(words, vec!["hi", "i'm", "ann", "ann.x@y.io"]);
    }

    #[test]
    fn skeletons() {
        assert_eq!(skeleton("address"), skeleton("addrss"));
        assert_eq!(skeleton("Gender"), "gndr");
    }

    #[test]
    fn despaces_digits() {
        let (s, map) = despace("card 5 1 2 3 4 x").expect("joined");
        assert_eq!(s, "card 51234x");
        assert_eq!(map.len(), s.len() + 1);
        assert_eq!(map[5], 5);
        assert!(despace("a normal sentence here").is_none());
    }

    #[test]
    fn joins_irregular_digit_groups() {
        let (s, map) = join_digit_groups("card 41 11 1111 11 11 1111 ok").expect("joined");
        assert_eq!(s, "card 4111111111111111 ok");
        assert_eq!(map.len(), s.len() + 1);
        assert_eq!(
            join_digit_groups("+1 41 5 555 01 99")
                .map(|x| x.0)
                .as_deref(),
            Some("+14155550199")
        );
        assert_eq!(
            join_digit_groups("ssn 219.09-99 99")
                .map(|x| x.0)
                .as_deref(),
            Some("ssn 219099999")
        );
        // Regular formats, dates, short numbers and versions stay.
        assert!(join_digit_groups("4111 1111 1111 1111").is_none());
        assert!(join_digit_groups("on 2024-01-15 at 10 30").is_none());
        assert!(join_digit_groups("v1.2.3 and 12 34").is_none());
    }

    #[test]
    fn sentences() {
        let t = "First one. Second one? Third";
        let (s, e) = sentence_at(t, 13);
        assert_eq!(&t[s..e], " Second one?");
    }
}
