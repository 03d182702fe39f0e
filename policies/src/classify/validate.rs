//! Check-digit and range validators for structured identifiers.

/// Luhn (mod 10) check over the ASCII digits of `s`; other characters are ignored.
/// Needs at least 2 digits.
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 2 {
        return false;
    }
    let mut sum = 0;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = *d;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Plausible payment card: 13-19 digits, a known issuer prefix, Luhn, not one repeated digit.
/// Card numbers that payment providers publish for testing (Stripe, Adyen, Braintree,
/// PayPal docs): Luhn-valid, but the same for everyone, so not a person's card.
pub fn public_test_card(s: &str) -> bool {
    const TEST_CARDS: &[&str] = &[
        "4111111111111111",
        "4242424242424242",
        "4000056655665556",
        "4012888888881881",
        "4222222222222",
        "4000000000000002",
        "4000000000009995",
        "4000002500003155",
        "5555555555554444",
        "5200828282828210",
        "5105105105105100",
        "2223003122003222",
        "378282246310005",
        "371449635398431",
        "378734493671000",
        "6011111111111117",
        "6011000990139424",
        "3056930009020004",
        "30569309025904",
        "38520000023237",
        "3566002020360505",
        "3530111333300000",
        "6200000000000005",
        "6759649826438453",
    ];
    let d: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    TEST_CARDS.contains(&d.as_str())
}

pub fn card_number(s: &str) -> bool {
    let d: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if !(13..=19).contains(&d.len()) || all_same(&d) {
        return false;
    }
    let b = d.as_bytes();
    let p2: u32 = d[..2].parse().unwrap_or(0);
    let p4: u32 = d[..4].parse().unwrap_or(0);
    let issuer = b[0] == b'4'
        || (51..=55).contains(&p2)
        || (2221..=2720).contains(&p4)
        || p2 == 34
        || p2 == 37
        || p2 == 36
        || p2 == 38
        || p2 == 39
        || p2 == 30
        || p2 == 35
        || p2 == 62
        || b[0] == b'6';
    issuer && luhn(&d)
}

/// IBAN: country code, 2 check digits, 11-30 alphanumerics, ISO 7064 mod 97 == 1.
/// Spaces are ignored.
pub fn iban(s: &str) -> bool {
    let t: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if t.len() < 15 || t.len() > 34 {
        return false;
    }
    if !t[0].is_ascii_uppercase() || !t[1].is_ascii_uppercase() {
        return false;
    }
    if !t[2].is_ascii_digit() || !t[3].is_ascii_digit() {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in t[4..].iter().chain(t[..4].iter()) {
        let v = match c {
            b'0'..=b'9' => (c - b'0') as u32,
            b'A'..=b'Z' => (c - b'A') as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// ABA routing number: 9 digits, weights 3-7-1, first two digits in a Federal Reserve range.
pub fn aba_routing(s: &str) -> bool {
    let d: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if d.len() != 9 || s.chars().filter(|c| c.is_ascii_digit()).count() != 9 {
        return false;
    }
    let prefix = d[0] * 10 + d[1];
    if !(prefix <= 12 || (21..=32).contains(&prefix) || (61..=72).contains(&prefix) || prefix == 80)
    {
        return false;
    }
    if d.iter().all(|&x| x == d[0]) {
        return false;
    }
    let sum = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8]);
    sum % 10 == 0
}

/// US SSN in `AAA-GG-SSSS` (any separator or none): area not 000, 666 or 9xx; group not 00;
/// serial not 0000; and not a well-known advertising/test number.
pub fn ssn(s: &str) -> bool {
    let d: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if d.len() != 9 {
        return false;
    }
    let area: u32 = d[..3].parse().unwrap_or(0);
    let group: u32 = d[3..5].parse().unwrap_or(0);
    let serial: u32 = d[5..].parse().unwrap_or(0);
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    // Woolworth wallet card and the 1962 advertising range, and sequential demo values.
    if d == "078051120" || d == "123456789" || (area == 987 && group == 65) {
        return false;
    }
    !all_same(&d)
}

/// True when every char of `s` is the same (ignoring separators).
pub fn all_same(s: &str) -> bool {
    let mut it = s.chars().filter(|c| c.is_alphanumeric());
    match it.next() {
        Some(first) => it.all(|c| c == first),
        None => true,
    }
}

/// IPv4 dotted quad with every octet 0..=255 and no leading zeros.
pub fn ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && !(p.len() > 1 && p.starts_with('0'))
                && p.parse::<u16>().map(|v| v <= 255).unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a Luhn-valid number from a prefix by computing the check digit.
    fn with_check_digit(body: &str) -> String {
        for d in 0..10 {
            let s = format!("{body}{d}");
            if luhn(&s) {
                return s;
            }
        }
        unreachable!()
    }

    #[test]
    fn luhn_and_cards() {
        let visa = with_check_digit("411111111111123");
        assert!(card_number(&visa));
        let spaced = format!(
            "{} {} {} {}",
            &visa[..4],
            &visa[4..8],
            &visa[8..12],
            &visa[12..]
        );
        assert!(card_number(&spaced));
        let mut bad = visa.clone().into_bytes();
        bad[15] = if bad[15] == b'9' { b'0' } else { bad[15] + 1 };
        assert!(!card_number(std::str::from_utf8(&bad).unwrap()));
        assert!(!card_number("0000000000000000"));
        assert!(!card_number("4444444444444444"));
        assert!(!card_number("1234"));
    }

    #[test]
    fn iban_mod97() {
        // Construct: country XX check digits computed for a synthetic BBAN.
        let bban = "NWBK60161331926819";
        let country = "GB";
        for cd in 2..99 {
            let s = format!("{country}{cd:02}{bban}");
            if iban(&s) {
                let spaced: String = s
                    .as_bytes()
                    .chunks(4)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join(" ");
                assert!(iban(&spaced));
                let wrong = format!("{country}{:02}{bban}", if cd == 98 { 2 } else { cd + 1 });
                assert!(!iban(&wrong));
                return;
            }
        }
        panic!("no check digits found");
    }

    #[test]
    fn aba() {
        // 3*(0+1+0)+7*(1+0+0)+(1+0+d) => choose d so the sum is 0 mod 10.
        let mut found = None;
        for last in 0..10 {
            let s = format!("01100001{last}");
            if aba_routing(&s) {
                found = Some(s);
            }
        }
        let s = found.expect("a valid check digit exists");
        assert!(aba_routing(&s));
        assert!(!aba_routing("999999999"));
        assert!(!aba_routing("12345678"));
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn("512-34-8765"));
        assert!(!ssn("000-12-3456"));
        assert!(!ssn("666-12-3456"));
        assert!(!ssn("912-34-5678"));
        assert!(!ssn("512-00-8765"));
        assert!(!ssn("512-34-0000"));
        assert!(!ssn("123-45-6789"));
    }

    #[test]
    fn ip() {
        assert!(ipv4("10.20.30.40"));
        assert!(!ipv4("1.2.3.04"));
        assert!(!ipv4("256.1.1.1"));
        assert!(!ipv4("1.2.3"));
    }
}
