//! Regex detectors with validators: structured identifiers, provider key formats,
//! credentials in assignments and URLs, confidentiality markers.

use super::super::Category;

/// What to check on a regex match before it becomes a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    None,
    Card,
    Iban,
    Aba,
    Ssn,
    Jwt,
    Ipv4,
    Mac,
    Phone,
    Luhn,
    /// The value must not be a placeholder.
    NotPlaceholder,
    /// An assigned credential value (quoted or bare) that is not a placeholder or a
    /// variable reference and looks like a secret.
    KeywordValue,
    /// A value asserted in prose (`my pin is 4821`): must carry a digit or mixed case.
    ProseValue,
    /// High-entropy string (>= 3.0 bits/char, length >= 16).
    Entropy,
    Email,
}

/// A compiled detector spec; `group` selects the capture group that is the span.
pub struct Spec {
    pub kind: &'static str,
    pub category: Category,
    pub pattern: &'static str,
    pub group: usize,
    pub validator: Validator,
    pub confidence: f32,
    /// Weak detectors are dropped when their sentence reads as test/demo/example text.
    pub weak: bool,
    /// Pre-filter: the regex runs only if one of these literals occurs (ASCII
    /// case-insensitive); empty means no literal gate.
    pub triggers: &'static [&'static str],
    /// Pre-filter: minimum number of ASCII digits in the text.
    pub min_digits: u8,
    /// Pre-filter: minimum length of the longest `[A-Za-z0-9_-]` run in the text.
    pub min_run: u8,
}

impl Spec {
    const fn on(mut self, triggers: &'static [&'static str]) -> Spec {
        self.triggers = triggers;
        self
    }
    const fn digits(mut self, n: u8) -> Spec {
        self.min_digits = n;
        self
    }
    const fn run(mut self, n: u8) -> Spec {
        self.min_run = n;
        self
    }
}

const fn spec(
    kind: &'static str,
    category: Category,
    pattern: &'static str,
    group: usize,
    validator: Validator,
    confidence: f32,
    weak: bool,
) -> Spec {
    Spec {
        kind,
        category,
        pattern,
        group,
        validator,
        confidence,
        weak,
        triggers: &[],
        min_digits: 0,
        min_run: 0,
    }
}

use Category::*;
use Validator as V;

const DATE: &str = r"(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}-\d{2}-\d{2}|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?,? \d{4}|\d{1,2}(?:st|nd|rd|th)? (?i:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?,? \d{4})";

/// Builds the date-of-birth pattern (needs the shared DATE fragment).
pub fn dob_pattern() -> String {
    format!(
        r"(?i:\b(?:dob|d\.o\.b\.?|date of birth|birth ?date|born(?: on)?|birthday)\b)[:\s]*\(?({DATE})"
    )
}

pub fn clinical_date_pattern() -> String {
    format!(
        r"(?i:\b(?:admitted|discharged|seen|evaluated|treated|visited|consulted|operated|presented|diagnosed|examined|scan(?:ned)?|surgery|discharge date)\b[^.\n]{{0,40}}?\b(?:on|since|date of)\s+)({DATE})"
    )
}

pub static SPECS: &[Spec] = &[
    // ---------------- secrets: provider formats ----------------
    spec(
        "private_key",
        Secret,
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
        0,
        V::None,
        0.99,
        false,
    ).on(&["-----BEGIN"]),
    spec(
        "aws_secret_key",
        Secret,
        r#"(?i:aws[A-Za-z0-9_.-]{0,30}(?:secret|private)[A-Za-z0-9_.-]{0,20})["']?\s*(?::=|=>|=|:)\s*["']?([A-Za-z0-9/+]{40})\b"#,
        1,
        V::NotPlaceholder,
        0.95,
        false,
    ).on(&["aws"]),
    spec(
        "slack_webhook",
        Secret,
        r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+",
        0,
        V::NotPlaceholder,
        0.95,
        false,
    ).on(&["hooks.slack.com"]),
    spec(
        "openai_key",
        Secret,
        r"\b(sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,})",
        1,
        V::NotPlaceholder,
        0.93,
        false,
    ).on(&["sk-"]),
    spec(
        "twilio_key",
        Secret,
        r"\b((?:AC|SK)[0-9a-f]{32})\b",
        1,
        V::NotPlaceholder,
        0.9,
        false,
    ).run(34),
    spec(
        "mailchimp_key",
        Secret,
        r"\b([0-9a-f]{32}-us\d{1,2})\b",
        1,
        V::NotPlaceholder,
        0.95,
        false,
    ).on(&["-us"]),
    spec(
        "npm_token",
        Secret,
        r"_authToken\s*=\s*([A-Za-z0-9_.-]{16,})",
        1,
        V::NotPlaceholder,
        0.93,
        false,
    ).on(&["npm_", "_authToken"]),
    spec(
        "azure_storage_key",
        Secret,
        r"AccountKey=([A-Za-z0-9+/]{40,}={0,2})",
        1,
        V::NotPlaceholder,
        0.97,
        false,
    ).on(&["AccountKey="]),
    spec(
        "discord_token",
        Secret,
        r"\b([MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,})",
        1,
        V::NotPlaceholder,
        0.93,
        false,
    ).run(24),
    spec(
        "telegram_token",
        Secret,
        r"\b(\d{8,10}:AA[A-Za-z0-9_-]{30,})",
        1,
        V::NotPlaceholder,
        0.95,
        false,
    ).on(&[":AA"]),
    spec(
        "jwt",
        Secret,
        r"\b(eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?)",
        1,
        V::Jwt,
        0.95,
        false,
    ).on(&["eyJ"]),
    spec(
        "bearer_token",
        Secret,
        r"(?i:\b(?:bearer|authorization:\s*basic|authorization:\s*token)\s+)([A-Za-z0-9._~+/-]{20,}=*)",
        1,
        V::KeywordValue,
        0.9,
        false,
    )
    .on(&["bearer", "authorization"]),
    spec(
        "url_credentials",
        Secret,
        r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s:/@]{1,64}:([^\s:/@]{3,128})@[A-Za-z0-9.-]+",
        1,
        V::NotPlaceholder,
        0.97,
        false,
    ).on(&["://"]),
    // Assigned credentials in config/code: name contains a secret word, value follows.
    spec(
        "password_assignment",
        Secret,
        r#"(?i:(?:passw(?:or)?d|passphrase|pwd|pass|p[a@]?ssw(?:[o0]?r)?d?|pswd|secret|secrete|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth[_-]?key|client[_-]?secret|credentials?|[_-]key)[A-Za-z0-9_.-]*)["']?\s*(?::=|=>|==?|:)\s*("[^"\n]*"?|'[^'\n]*'?|[^\s;]+)"#,
        1,
        V::KeywordValue,
        0.85,
        false,
    ).on(&["pass", "pwd", "secret", "token", "api", "key", "credential", "pin", "pssw", "p@ss", "pswd"]),
    spec(
        "password_assignment",
        Secret,
        r#"(?i:\b(?:password|passwd|pwd|passcode|pin|pssw\w*|(?:signing|api|secret|access|private|master|encryption|decryption|ssh|gpg|pgp|deploy|recovery|root|admin|wallet)\s+(?:key|token|password|passphrase)|(?:seed|recovery)\s+phrase)\b)\s*(?:is|:)\s+("[^"\n]*"|'[^'\n]*'|\S+)"#,
        1,
        V::ProseValue,
        0.8,
        true,
    ).on(&["pass", "pwd", "secret", "token", "api", "key", "credential", "pin", "pssw", "phrase"]),
    spec(
        "connection_string_password",
        Secret,
        r"(?i:(?:password|pwd)\s*=\s*)([^;\s]{4,})",
        1,
        V::KeywordValue,
        0.9,
        false,
    ).on(&["password", "pwd"]),
    spec(
        "otp_code",
        Secret,
        r"(?i:\b(?:2fa|two[- ]factor|otp|one[- ]time|verification|security|auth(?:entication)?|confirmation|login|sms|mfa|recovery|backup)\s*(?:code|pin|passcode)s?\b)(?:\s+(?:is|was|are|were|:))?\s*[:#]?\s*(\d{4,8}|[A-Z0-9]{4,5}-[A-Z0-9]{4,5})\b",
        1,
        V::NotPlaceholder,
        0.85,
        true,
    ).on(&["code", "pin"]),
    spec(
        "security_answer",
        Secret,
        r#"(?i:\b(?:security\s+question|secret\s+question|first\s+pet|pet'?s\s+name|maiden\s+name|first\s+car|first\s+school|childhood\s+(?:friend|street|nickname))\b[^.\n?]{0,40}?\b(?:is|was|:)\s+)["']?(\p{Lu}[\p{L}'-]+)"#,
        1,
        V::None,
        0.75,
        true,
    )
    .on(&["question", "pet", "maiden", "first car", "first school", "childhood"]),
    spec(
        "license_key",
        Secret,
        r"\b([A-Z0-9]{2,5}(?:-[A-Z0-9]{4,5}){2,5})\b",
        1,
        V::ProseValue,
        0.6,
        true,
    ).on(&["-"]),
    // ---------------- financial ----------------
    spec(
        "credit_card",
        Financial,
        r"\b((?:\d[ -]?){12,18}\d)\b",
        1,
        V::Card,
        0.95,
        false,
    ).digits(13),
    spec(
        "iban",
        Financial,
        r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)\b",
        1,
        V::Iban,
        0.97,
        false,
    ).digits(2),
    spec(
        "aba_routing",
        Financial,
        r"(?i:\b(?:routing|aba|rtn|transit)\b[^\d\n]{0,25})(\d{9})\b",
        1,
        V::Aba,
        0.93,
        false,
    ).on(&["routing", "aba", "rtn", "transit"]),
    spec(
        "bank_account",
        Financial,
        r"(?i:\b(?:account|acct|a/c|checking|savings|chequing)\b(?:\s+(?:number|no\.?|num|#))?(?:\s+(?:is|was|:))?\s*[:#]?\s*)(\d[\d -]{4,18}\d)\b",
        1,
        V::NotPlaceholder,
        0.8,
        true,
    ).on(&["account", "acct", "a/c", "checking", "savings", "chequing"]),
    spec(
        "card_security",
        Financial,
        r"(?i:\b(?:cvv|cvc|cvv2|csc)\b\s*[:#]?\s*)(\d{3,4})\b",
        1,
        V::NotPlaceholder,
        0.85,
        false,
    ).on(&["cvv", "cvc", "csc"]),
    // "security code" is the card's CVV when a card is named around it.
    spec(
        "card_security",
        Financial,
        r"(?i:\b(?:card|visa|mastercard|amex)\b[^.\n]{0,40}?\b(?:security\s+code|card\s+verification(?:\s+(?:code|value|number))?|cid)\b[^.\n\d]{0,15}?)(\d{3,4})\b|(?i:\b(?:security\s+code|verification\s+code)\s+(?:on|of|for|from)\s+(?:my|the|your|his|her|this)\s+(?:credit\s+|debit\s+)?card\b[^\d\n]{0,12}?)(\d{3,4})\b",
        0,
        V::NotPlaceholder,
        0.9,
        true,
    ).on(&["security code", "verification", "cid"]),
    // Crypto wallet addresses next to a wallet word.
    spec(
        "crypto_wallet",
        Financial,
        r"(?i:\b(?:wallet|address|eth|btc|bitcoin|ethereum|usdt|usdc|crypto|metamask|ledger|send\s+(?:it|funds|coins)\s+to)\b[^\n]{0,40}?)\b(0x[a-fA-F0-9]{40}|bc1[ac-hj-np-z02-9]{25,59}|[13][a-km-zA-HJ-NP-Z1-9]{25,34})\b",
        1,
        V::NotPlaceholder,
        0.85,
        false,
    ).on(&["wallet", "address", "eth", "btc", "bitcoin", "usdt", "usdc", "crypto", "metamask", "ledger", "send"]),
    // A wallet described by its first and last characters.
    spec(
        "crypto_wallet",
        Financial,
        r"(?i)\b(?:wallet|btc|bitcoin|eth|ethereum|crypto)\s+(?:address|addr)\b[^.\n]{0,30}?\b(?:starts?|begins?|starting|beginning)\s+with\s+\S{2,8}[^.\n]{0,25}?\b(?:ends?|ending)\s+(?:with|in)\s+\S{2,8}",
        0,
        V::None,
        0.65,
        true,
    ).on(&["wallet", "btc", "bitcoin", "eth", "crypto"]),
    // Income in other languages and currency formats ("Mein Gehalt beträgt 65.000 Euro").
    spec(
        "income",
        Financial,
        r"(?i:\b(?:mein|meine|mon|ma|mi|mis|meu|minha|mio|mia|mój|moja|moje|nasz\w*|unser\w*|notre|nuestro|nosso)\b[^.\n]{0,20}?\b(?:gehalt|einkommen|lohn|jahresgehalt|salaire|revenu|salario|sueldo|ingresos?|salário|renda|rendimento|stipendio|reddito|pensja|wynagrodzenie|dochód|zarobki)\b[^.\n\d]{0,25}?)((?:R\$|€|\$|£|zł|CHF)?\s?\d[\d.,\s]{1,12}\d\s?(?:€|euro|eur|zł|pln|reais|chf|k|mil|tys\.?)?)",
        1,
        V::None,
        0.8,
        true,
    ).on(&["gehalt", "einkommen", "lohn", "salaire", "revenu", "salario", "sueldo", "ingreso", "salário", "renda", "rendimento", "stipendio", "reddito", "pensja", "wynagrodzenie", "dochód", "zarobki"]),
    spec(
        "income",
        Financial,
        r"(?:年収|月収|給料|給与|手取り)[^。\n\d]{0,10}?(\d[\d,]*\s?(?:万円|円|万))",
        1,
        V::None,
        0.8,
        true,
    ).on(&["年収", "月収", "給料", "給与", "手取り"]),
    // "$60,000 annual income", "income a bit over fifty thousand".
    spec(
        "income",
        Financial,
        r"(?i)(\$\s?\d[\d,.]*\s?[kKmM]?\s+(?:(?:gross|net|annual|yearly|monthly|household)\s+)+(?:income|salary|pay|earnings))\b",
        1,
        V::None,
        0.7,
        true,
    ).on(&["income", "salary", "pay", "earnings"]),
    spec(
        "income_described",
        Financial,
        r"(?i)\b(?:my|his|her|their)\s+(?:\w+\s+){0,2}(?:income|salary|pay|wages?|earnings|net\s+worth|take[- ]home)\b[^.\n]{0,40}?\b((?:(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|a\s+hundred|hundred)(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine|hundred|and))*\s+(?:thousand|grand|million))|\d[\d,.]*\s?(?:k|thousand|grand|million)\b)",
        1,
        V::None,
        0.65,
        true,
    ).on(&["income", "salary", "pay", "wage", "earning", "worth", "take"]),
    // Policy, claim and contract numbers by their names in the other languages.
    spec(
        "financial_reference",
        Financial,
        r"(?i:\b(?:schadennummer|schaden-?nr\.?|versicherungsnummer|versicherungsschein(?:nummer)?|policennummer|vertragsnummer|num[ée]ro\s+de\s+(?:sinistre|police|contrat|dossier\s+sinistre)|n°\s+de\s+(?:sinistre|police|contrat)|n[úu]mero\s+de\s+(?:p[óo]liza|siniestro|ap[óo]lice|sinistro|contrato)|ap[óo]lice\s+n\.?º?|numero\s+(?:di\s+)?(?:polizza|sinistro|contratto)|polisnummer|schadenummer|schadeclaim|claimnummer|numer\s+(?:polisy|szkody|umowy))\b\s*(?:n\.?º?|nr\.?|:|#)?\s*)([A-Z]{0,5}[- ]?\d[A-Z0-9 -]{3,20}[A-Z0-9])",
        1,
        V::NotPlaceholder,
        0.8,
        true,
    ).on(&["schaden", "versicherung", "police", "vertrag", "sinistre", "contrat", "liza", "siniestro", "lice", "sinistro", "polizza", "contratto", "polis", "schade", "claimnummer", "polisy", "szkody", "umowy"]),
    spec(
        "financial_reference",
        Financial,
        r"(?i:\b(?:policy|claim|transaction|txn|invoice|loan|mortgage|payment|billing|order)\b(?:\s+(?:number|no\.?|num|#|id|code|ref(?:erence)?))?(?:\s+(?:is|was|:))?\s*[:#]?\s*)([A-Z]{0,5}[- ]?\d[A-Z0-9-]{3,20})\b",
        1,
        V::NotPlaceholder,
        0.8,
        true,
    ).on(&["policy", "claim", "transaction", "txn", "invoice", "loan", "mortgage", "payment", "billing", "order"]),
    spec(
        "income",
        Financial,
        r"(?i:\b(?:my|his|her|their|our)\b[^.\n]{0,30}\b(?:salary|income|wages?|pay|compensation|net worth|bonus)\b[^.\n]{0,20}?)(\$\s?\d[\d,.]*\s?[kKmM]?)",
        1,
        V::None,
        0.8,
        true,
    ).on(&["salary", "income", "wage", "pay", "compensation", "worth", "bonus", "earn", "make"]),
    spec(
        "income",
        Financial,
        r"(?i:\b(?:earn|earns|earned|make|makes|paid)\s+(?:(?:about|around|roughly|nearly|almost|over|under|just\s+over|close\s+to|approximately)\s+)?)(\$\s?\d[\d,.]*\s?[kKmM]?)(?i:\s*(?:a|per|/)\s*(?:year|yr|month|annually))",
        1,
        V::None,
        0.7,
        true,
    ).on(&["salary", "income", "wage", "pay", "compensation", "worth", "bonus", "earn", "make"]),
    spec(
        "credit_score",
        Financial,
        r"(?i:\bcredit score\b[^.\n\d]{0,20})([3-8]\d{2})\b",
        1,
        V::None,
        0.85,
        true,
    ).on(&["credit score"]),
    // ---------------- pii: structured ----------------
    spec(
        "email",
        Pii,
        r"\b([A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b",
        1,
        V::Email,
        0.95,
        false,
    ).on(&["@"]),
    spec(
        "email_obfuscated",
        Pii,
        r"(?i)\b([a-z0-9._-]+\s*(?:\[at\]|\(at\)| at )\s*[a-z0-9-]+\s*(?:\[dot\]|\(dot\)| dot )\s*(?:com|org|net|io|edu|gov|co|de|uk|fr|me|nl|pl|it|es|pt|jp|eu|ch|at|be|info|biz|us|ca|au))\b",
        1,
        V::None,
        0.8,
        true,
    ).on(&["dot"]),
    spec(
        "ssn",
        Pii,
        r"\b(\d{3}[- ]\d{2}[- ]\d{4})\b",
        1,
        V::Ssn,
        0.9,
        false,
    ).digits(9),
    spec(
        "ssn",
        Pii,
        r"(?i:\b(?:ssn|social security(?: number| no\.?)?|sin)\b\s*(?:is|:|#)?\s*)(\d{9}|\d{3}[- ]\d{2}[- ]\d{4})\b",
        1,
        V::Ssn,
        0.97,
        false,
    ).digits(9),
    spec(
        "phone",
        Pii,
        r"(\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]\d{2,5}){1,4})\b",
        1,
        V::Phone,
        0.9,
        false,
    ).digits(9),
    // Country code then one national block ("+39 057415373").
    spec(
        "phone",
        Pii,
        r"(\+[1-9]\d{0,3}[ .-]\d{6,12})\b",
        1,
        V::Phone,
        0.85,
        false,
    ).digits(9),
    // E.164 written without separators (also what the digit-group join produces).
    spec(
        "phone",
        Pii,
        r"(\+[1-9]\d{9,14})\b",
        1,
        V::Phone,
        0.85,
        false,
    ).digits(10),
    spec(
        "phone",
        Pii,
        r"(?:^|[^\d+])(\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4})\b",
        1,
        V::Phone,
        0.85,
        false,
    ).digits(9),
    spec(
        "phone",
        Pii,
        r"\b(0\d{2,4}[ -](?:\d{6,8}|\d{3,4}[ -]\d{3,4}))\b",
        1,
        V::Phone,
        0.8,
        false,
    ).digits(9),
    // A phone number after a phone word, in any of the common national layouts
    // ("(0114) 523294", "+44(0)808 1570142", "94 2066-0803", "789 438 970 x12").
    spec(
        "phone",
        Pii,
        r"(?i:\b(?:call|calls|phone|tel|telephone|mobile|cell|cellphone|whatsapp|signal|text|sms|reach|ring|fax|contact|rufen|anrufen|handy|handynummer|telefonnummer|mobilnummer|t[ée]l[ée]phone|portable|tel[ée]fono|telefone|celular|telemóvel|telefonino|cellulare|numero|número|numer|telefon|komórk\w*|komórka|unter|llame\s+al|ligue\s+para|chiama\s+il|(?:my|phone|mobile|cell|contact|home|work|office)\s+(?:number|no\.?|#))\b[^\d\n+()]{0,30})(\+?\(?\d[\d\s().-]{6,20}\d)(?:\s?(?:x|ext\.?)\s?\d{1,5})?",
        1,
        V::Phone,
        0.8,
        true,
    ).on(&["call", "phone", "tel", "mobile", "cell", "whatsapp", "signal", "text", "sms", "reach", "ring", "fax", "contact", "rufen", "handy", "nummer", "portable", "numero", "número", "numer", "komórk", "celular", "unter", "llame", "ligue", "chiama", "number", "no.", "#"]).digits(8),
    // Dash-separated national numbers glued to CJK text (no word boundary there).
    spec(
        "phone",
        Pii,
        r"(0\d{1,4}-\d{1,4}-\d{3,4})(?:[^\d]|$)",
        1,
        V::Phone,
        0.8,
        false,
    ).digits(9),
    // Street-type word, a capitalised name, a house number (de/fr/es/pt/it/pl/nl/sv):
    // "plac Żwirki i Wigury 79", "al. Paderewskiego 71/17", "Paseo de Francisca Benavent 43",
    // "Rotonda Milo, 5"; or the name then a postcode and city ("rue Valentine Lefèvre,
    // 44360 Pineau").
    spec(
        "postal_address",
        Pii,
        r"\b((?i:rue|avenue|boulevard|bd|chemin|allée|place|quai|impasse|route|calle|c/|avenida|avda\.?|paseo|plaza|camino|carrer|avinguda|rúa|rua|travessa|praça|largo|alameda|via|viale|piazza|piazzale|piazzetta|corso|vicolo|strada|stradone|rotonda|contrada|borgo|lungomare|salita|rambla|pasaje|ladeira|travesía|ronda|glorieta|callejón|vía|estrada|rodovia|aeroporto|ul\.|ulica|al\.|aleja|plac|os\.|osiedle|straße|strasse|weg|gasse|platz|allee|laan|straat|gracht|plein|kade|gatan|vägen|gränd|torget)\s+(?:(?:de|del|de\s+la|da|do|dos|das|di|della|delle|des|du|la|le|los|las|von|van|der|den|i|e|y)\s+)*\p{Lu}[\p{L}'.-]*(?:\s+[\p{L}'.-]+){0,3}(?:\s*,?\s+\d{1,5}[a-zA-Z]?(?:/\d{1,4})?\b|\s*,\s*\d{2}-?\d{3}\s+\p{Lu}[\p{L}-]+))",
        1,
        V::None,
        0.8,
        true,
    ).on(&["rue", "avenue", "boulevard", "bd", "chemin", "allée", "place", "quai", "impasse", "route", "calle", "c/", "avenida", "avda", "paseo", "plaza", "camino", "carrer", "avinguda", "rúa", "rua", "travessa", "praça", "largo", "alameda", "via", "viale", "piazza", "corso", "vicolo", "strada", "rotonda", "contrada", "borgo", "lungomare", "salita", "rambla", "pasaje", "ladeira", "travesía", "ronda", "glorieta", "callej", "vía", "estrada", "rodovia", "aeroporto", "ul.", "ulica", "al.", "aleja", "plac", "os.", "osiedle", "stra", "weg", "gasse", "platz", "laan", "straat", "gracht", "plein", "kade", "gatan", "vägen", "gränd", "torget"]).digits(1),
    // Street and number, optional unit, then a postcode and a city: the European line
    // layouts ("Zanichelli, 598 Appartamento 96, 33059, Villa", "Jenteboulevard 644,
    // 6173CZ, Bergeijk", "Kwiatowa 17, 61-001 Poznań").
    spec(
        "postal_address",
        Pii,
        r"(\p{Lu}[\p{L}'.-]+,?\s+\d{1,5}[a-zA-Z]?(?:[\s,]+\p{L}+\.?\s+\d{1,4})?\s*,\s*(?:\d{5}|\d{4}\s?[A-Z]{2}|\d{2}-\d{3}|\d{4})\s*,?\s*\p{Lu}[\p{L}-]+)",
        1,
        V::None,
        0.8,
        true,
    ).digits(5),
    // Japanese addresses: chōme / ban / gō.
    spec(
        "postal_address",
        Pii,
        r"([\p{Han}\p{Hiragana}\p{Katakana}]{2,20}\d{1,4}丁目(?:\d{1,4}番地?)?(?:\d{1,4}号)?|[\p{Han}\p{Hiragana}\p{Katakana}]{2,20}\d{1,4}番地?(?:\d{1,4}号)?)",
        1,
        V::None,
        0.85,
        false,
    ).on(&["丁目", "番"]),
    // US military mail, lowercase too ("psc 1234 box 5678, fpo ap 96349").
    spec(
        "postal_address",
        Pii,
        r"(?i)\b((?:(?:psc|unit|cmr)\s+\d{3,5},?\s+box\s+\d{1,5},?\s+)?(?:apo|fpo|dpo)\s+(?:aa|ae|ap)\s+\d{5})\b",
        1,
        V::None,
        0.85,
        false,
    ).on(&["apo", "fpo", "dpo"]),
    // A security answer described rather than written ("for the security question I used
    // the furry pet we have at home").
    spec(
        "security_answer",
        Secret,
        r"(?i)\b(?:security|secret|recovery|challenge|verification)\s+(?:question|answer)s?\b[^.\n]{0,60}?\b(?:i\s+(?:used|chose|picked|put|set|gave|entered|wrote|went\s+with)|is|was|answer(?:ed)?\s+(?:is|was|with))\b[^.\n]{0,50}?\b(?:pet|dog|cat|street|school|teacher|car|city|town|village|friend|nickname|maiden|mother|mom|father|dad|grandma|grandmother|grandfather|grandpa|name|birthplace|hospital|food|team|book|movie|band|song)\b",
        0,
        V::None,
        0.6,
        true,
    ).on(&["security", "secret", "recovery", "challenge", "verification"]),
    spec(
        "ip_address",
        Pii,
        r"(?i:\b(?:ip|i\.p\.|address|addr|login|logged in|from|host|my|connect(?:ed|ion)?|client|source)\b[^\n]{0,30}?)\b((?:\d{1,3}\.){3}\d{1,3})\b",
        1,
        V::Ipv4,
        0.85,
        false,
    ).digits(4),
    spec(
        "ipv6_address",
        Pii,
        r"(?i:\b(?:ip|ipv6|address|addr|login|from|host|my)\b[^\n]{0,30}?)\b((?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|(?:[0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)\b",
        1,
        V::NotPlaceholder,
        0.8,
        false,
    ).on(&[":"]),
    spec(
        "mac_address",
        Pii,
        r"\b([0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5})\b",
        1,
        V::Mac,
        0.85,
        false,
    ).on(&[":", "-"]),
    spec(
        "mac_address",
        Pii,
        r"(?i:\bmac\b[^\n]{0,20}?)\b([0-9A-Z]{2}(?::[0-9A-Z]{2}){5})\b",
        1,
        V::Mac,
        0.8,
        true,
    ).on(&["mac"]),
    spec(
        "imei",
        Pii,
        r"(?i:\bimei\b[^\d\n]{0,15})(\d{15})\b",
        1,
        V::Luhn,
        0.9,
        false,
    ).on(&["imei"]),
    spec(
        "passport",
        Pii,
        r"(?i:\bpassport\b(?:\s+(?:number|no\.?|num|#))?(?:\s+(?:is|was|:))?\s*[:#]?\s*)([A-Z0-9]{6,10})\b",
        1,
        V::ProseValue,
        0.9,
        true,
    ).on(&["passport"]),
    spec(
        "visa_number",
        Pii,
        r"(?i:\bvisa\b(?:\s+(?:number|no\.?|#))?(?:\s+(?:is|:))?\s*)([A-Z]\d{7,8})\b",
        1,
        V::NotPlaceholder,
        0.8,
        true,
    ).on(&["visa"]),
    spec(
        "drivers_license",
        Pii,
        r"(?i:\b(?:driver'?s?|driving)\s+licen[cs]e\b(?:\s+(?:number|no\.?|num|#))?(?:\s+(?:is|was|:))?\s*[:#]?\s*|\bDL\s*(?:#|no\.?|number)\s*[:#]?\s*)([A-Z0-9-]{5,16})\b",
        1,
        V::ProseValue,
        0.9,
        true,
    ).on(&["licen", "dl"]),
    spec(
        "postal_address",
        Pii,
        r"\b(\d{1,5}[A-Za-z]?\s+(?:[A-Z][\p{L}'-]*\.?\s+){1,4}(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|way|terrace|parkway|pkwy|circle|highway|hwy|square|sq|rapids|trail|crescent|close|row|str)\b\.?)",
        1,
        V::None,
        0.85,
        true,
    ).digits(1),
    spec(
        "postal_address",
        Pii,
        r"(?i)\b(p\.?\s?o\.?\s+box|postbox|post office box)\s*\d{1,6}\b",
        0,
        V::None,
        0.85,
        true,
    ).on(&["box"]),
    spec(
        "postal_address",
        Pii,
        r"(?i)\b(?:apt|apartment|suite|unit|flat)\.?\s*(?:number|no\.?|num)?\s*[:#]?\s*\d{1,5}[a-z]?\b",
        0,
        V::None,
        0.75,
        true,
    ).on(&["apt", "apartment", "suite", "unit", "flat"]),
    spec(
        "postal_address",
        Pii,
        r"\b(\p{Lu}[\p{L}'-]*\.?\s+\d{1,5}[a-zA-Z]?\s*,\s*\d{3,5}(?:-\d{3})?\s+\p{Lu}[\p{L}-]+)",
        1,
        V::None,
        0.85,
        true,
    ).digits(1),
    spec(
        "postal_address",
        Pii,
        r"\b(\d{1,5}\s+(?:\p{Lu}[\p{L}'-]*\s+){1,4}(?:\p{Lu}[\p{L}'-]*)?\s*,\s*\d{3,5}\s+\p{Lu}[\p{L}-]+)",
        1,
        V::None,
        0.85,
        true,
    ).digits(1),
    spec(
        "postal_address",
        Pii,
        r"\b((?:rue|via|calle|avenida|rua|ul\.|ulica|piazza|viale|chemin|boulevard|avenue)\s+(?:\p{L}[\p{L}'.-]*\s+){0,5}\d{1,5})\b",
        1,
        V::None,
        0.8,
        true,
    ).on(&["rue", "via", "calle", "avenida", "rua", "ul.", "ulica", "piazza", "viale", "chemin", "boulevard", "avenue"]),
    spec(
        "postal_address",
        Pii,
        r"(?i)\b(\d{1,5}(?:\s*bis)?,?\s+(?:rue|via|calle|avenida|rua|piazza|viale|chemin|boulevard|avenue|allée|place|quai|impasse)\s+(?:[\p{L}'.-]+\s+){0,4}[\p{L}'.-]+)",
        1,
        V::None,
        0.8,
        true,
    )
    .on(&["rue", "via", "calle", "avenida", "rua", "piazza", "viale", "chemin", "boulevard", "avenue", "all", "place", "quai", "impasse"]),
    spec(
        "postal_address",
        Pii,
        r"\b(\p{Lu}[\p{L}-]*(?i:strasse|straße|gasse|weg|platz|allee|gade|vej|straat|laan|veien|gatan|katu|utca|u\.|boulevard|plein|gracht|kade|singel|dreef|steeg))\s+\d{1,4}\b",
        1,
        V::None,
        0.85,
        true,
    ).on(&["strasse", "straße", "gasse", "weg", "platz", "allee", "gade", "vej", "straat", "laan", "veien", "gatan", "katu", "utca", "u.", "boulevard", "plein", "gracht", "kade", "singel", "dreef", "steeg"]),
    spec(
        "postal_address",
        Pii,
        r"\b([A-Z][a-z]+,?\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?)\b",
        1,
        V::None,
        0.75,
        true,
    ).digits(1),
    spec(
        "postal_address",
        Pii,
        r"(?i:\baddress(?:es)?\b\s*(?:is|:)?\s*)(\d{1,5}\s+\p{Lu}[\p{L}'-]+(?:\s+[\p{L}'-]+){0,4}(?:\s+\d{1,5})?)",
        1,
        V::None,
        0.8,
        true,
    ).on(&["address"]),
    spec(
        "postal_address",
        Pii,
        r"(?:\b(?:is|live|lives|located)\s+at\s+)(\d{1,5}\s+(?:\d{1,5}\s+)?\p{Lu}\p{Ll}+\s+\p{Lu}\p{Ll}+)",
        1,
        V::None,
        0.6,
        true,
    ).on(&[" at "]),
    spec(
        "geo_coordinates",
        Pii,
        r"(-?\d{1,2}\.\d{3,}\s*°?\s*[NS]?\s*,\s*-?\d{1,3}\.\d{3,}\s*°?\s*[EW]?)",
        1,
        V::NotPlaceholder,
        0.8,
        true,
    ).digits(5),
    spec(
        "url_personal",
        Pii,
        r"(?i)\b((?:drive\.google\.com|dropbox\.com|docs\.google\.com|onedrive\.live\.com|facebook\.com|instagram\.com|linkedin\.com/in|twitter\.com|x\.com)/\S+)",
        1,
        V::NotPlaceholder,
        0.7,
        true,
    ).on(&["/"]),
    spec("date_of_birth", Pii, "", 1, V::None, 0.9, false).on(&["dob", "d.o.b", "birth", "born"]),
    spec("clinical_date", Phi, "", 1, V::None, 0.6, false).digits(3),
    // Dates of birth in de / fr / es / pt / it / nl / pl / ja letters ("geb. 14.03.1979",
    // "née le 5 mai 1971", "nato a Bari il 3 marzo 1988", "ur. 04.05.1983", "1975年4月2日生").
    spec(
        "date_of_birth",
        Pii,
        r"(?i:\b(?:geb\.|geboren(?:\s+(?:am|op))?|geburtsdatum|geboortedatum|n[ée]e?\s+le|date\s+de\s+naissance|nacid[oa]\s+(?:el|en\s+\p{L}+\s+el)|fecha\s+de\s+nacimiento|f\.\s*nac\.|nascid[oa]\s+(?:a|em)|data\s+de\s+nascimento|nat[oa]\s+(?:il|a\s+\p{L}+\s+il)|data\s+di\s+nascita|ur\.|urodzon[ya](?:\s+dnia)?|data\s+urodzenia)[:\s]*)(\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}-\d{2}-\d{2}|\d{1,2}\.?\s+\p{L}{3,12}\.?\s+\d{4})|(\d{4}年\d{1,2}月\d{1,2}日)生",
        0,
        V::None,
        0.9,
        false,
    ).on(&["geb", "geboren", "geburt", "geboorte", "née", "ne le", "né le", "naissance", "nacid", "nacimiento", "nac.", "nascid", "nascimento", "nato", "nata", "nascita", "ur.", "urodz", "生"]),
    // Patient / record numbers by their local names.
    spec(
        "medical_record_number",
        Phi,
        r"(?i:\b(?:historia\s+cl[ií]nica|nhc|n\.?º?\s+de\s+utente|n[úu]mero\s+de\s+utente|utente\s+n\.?º?|processo\s+cl[ií]nico|cartella\s+clinica|patientennummer|fallnummer|num[ée]ro\s+de\s+dossier|dossier\s+m[ée]dical|ipp|pati[ëe]ntnummer|numer\s+(?:historii\s+choroby|pacjenta))\b\s*(?:n\.?º?|nr\.?|no\.?|:|#)?\s*)([A-Z]{0,3}-?\d[\d -]{4,14}\d)",
        1,
        V::None,
        0.9,
        false,
    ).on(&["historia", "nhc", "utente", "processo", "cartella", "patientennummer", "fallnummer", "dossier", "ipp", "ntnummer", "numer"]),
    // Incomes with a first-person verb, in every probe language ("Cobro unos 32.000 euros",
    // "Zarabiam 7500 zł", "ich verdiene 3.900 Euro", "I earn just shy of seventy grand").
    spec(
        "income",
        Financial,
        r"(?i:\b(?:ich\s+verdiene|verdiene\s+ich|wir\s+verdienen|je\s+gagne|nous\s+gagnons|gano|cobro|ganho|recebo|guadagno|percepisco|ik\s+verdien|verdien\s+ik|wij\s+verdienen|zarabiam|zarabiamy|i\s+(?:earn|make|take\s+home)|i'm\s+on|we\s+(?:earn|make))\b[^.\n\d]{0,30}?)((?:R\$|€|\$|£|zł|CHF)\s?\d[\d.,\s]{0,12}\d|\d[\d.,\s]{0,12}\d?\s?(?:€|euros?\b|eur\b|zł|złotych|pln\b|reais\b|chf\b|k\b|mil\b|mila\b|mille\b|tys\.?|tysięcy|thousand\b|grand\b|万円|円))",
        1,
        V::None,
        0.75,
        true,
    ).on(&["verdien", "gagne", "gagnons", "gano", "cobro", "ganho", "recebo", "guadagno", "percepisco", "zarabiam", "earn", "make", "take home", "i'm on"]),
    // "Household income is $74,500 a year" (not a median or an average).
    spec(
        "income",
        Financial,
        r"(?i:\b(?:household|combined|family|annual|yearly|gross|net|take-home)\s+(?:income|salary|earnings|pay)\s+(?:is|was|of|:|=|totals?|comes\s+to)\s+(?:about\s+|around\s+|roughly\s+)?)(\$\s?\d[\d,.]*\s?[kKmM]?|€\s?\d[\d,.]*|£\s?\d[\d,.]*|\d[\d,.]*\s?(?:€|euros?|eur|zł))",
        1,
        V::None,
        0.7,
        true,
    ).on(&["household", "combined", "family", "annual", "yearly", "gross", "net ", "take-home"]),
    spec(
        "income_described",
        Financial,
        r"(?i)\b(?:i|we)\s+(?:earn|make|take\s+home|bring\s+in)\b[^.\n\d]{0,30}?\b((?:one|two|three|four|five|six|seven|eight|nine|ten|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|a\s+hundred)(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine|hundred|and))*\s+(?:thousand|grand|k)\b)",
        1,
        V::None,
        0.65,
        true,
    ).on(&["earn", "make", "take home", "bring in"]),
    // Income nouns with an amount within a short clause, in the other languages, with or
    // without a possessive ("Mijn bruto jaarsalaris is € 54.000", "O meu ordenado é de
    // 1.450 euros", "Il mio reddito annuo è di circa 38 mila euro").
    spec(
        "income",
        Financial,
        r"(?i:\b(?:mein\w*|sein\w*|ihr\w*|mon|ma|mes|son|sa|ses|mi|mis|su|sus|meu|minha|seu|sua|mio|mia|suo|mijn|zijn|haar|mój|moja|moje|jego|jej|my|his|her)\b[^.\n\d]{0,20}?\b(?:gehalt|bruttogehalt|nettogehalt|jahresgehalt|einkommen|nettoeinkommen|salaire|revenu\s+(?:fiscal|annuel|net|mensuel)|salario|sueldo|salário|ordenado|rendimento\s+anual|stipendio|reddito|retribuzione|ral|salaris|jaarsalaris|inkomen|loon|brutoloon|nettoloon|pensja|wynagrodzenie|zarobki|dochód)\b(?:\s+(?:mensuel|annuel|net|brut|bruto|netto|lordo|annuo|anual|mensal|mensile|brutto|miesięczn\w*|roczn\w*))?[^.\n\d]{0,40}?)((?:R\$|€|\$|£|zł|CHF)\s?\d[\d.,\s]{0,12}\d|\d[\d.,\s]{0,12}\d?\s?(?:€|euros?\b|eur\b|zł|złotych|pln\b|reais\b|chf\b|k\b|mil\b|mila\b|mille\b|tys\.?|tysięcy))",
        1,
        V::None,
        0.75,
        true,
    ).on(&["gehalt", "einkommen", "salaire", "revenu", "salario", "sueldo", "salário", "ordenado", "rendimento", "stipendio", "reddito", "retribuzione", "ral", "salaris", "inkomen", "loon", "pensja", "wynagrodzenie", "zarobki", "dochód"]),
    // Passwords written in prose in the other languages ("Mein WLAN-Passwort ist ...",
    // "Mon mot de passe est ...", "Hasło do panelu to ...", "Le code Wi-Fi ... est ...").
    spec(
        "password_assignment",
        Secret,
        r#"(?i:\b(?:passwort|kennwort|mot\s+de\s+passe|mdp|code\s+wi-?fi|cl[ée]\s+wi-?fi|contraseña|clave|senha|palavra-passe|wachtwoord|hasło|hasła|has[łl]o|パスワード)\b(?:[^.\n:=]{0,30}?)\s*(?:ist|lautet|est|es|é|è|is|to|brzmi|=|:|は)\s*)("[^"\n]*"|'[^'\n]*'|[^\s,;。]+)"#,
        1,
        V::ProseValue,
        0.8,
        true,
    ).on(&["passwort", "kennwort", "mot de passe", "mdp", "wi-fi", "wifi", "contraseña", "clave", "senha", "palavra-passe", "wachtwoord", "hasło", "hasła", "haslo", "パスワード"]),
    // A WiFi network name (SSID) given as a value ("our home wifi network is called
    // VodafoneRiera_5G"); the value must look like a name someone chose, not a word.
    spec(
        "wifi_name",
        Pii,
        r#"(?i:\b(?:wi-?fi|wlan|ssid|wireless)\b[^.\n]{0,30}?\b(?:is\s+(?:called|named)|called|named|heißt|s'appelle|se\s+llama|chama-se|si\s+chiama|heet|nazywa\s+się|name\s+is|ssid\s*(?:is|:|=))\s*["']?)([A-Za-z0-9][A-Za-z0-9_.-]{3,31})"#,
        1,
        V::KeywordValue,
        0.7,
        true,
    ).on(&["wifi", "wi-fi", "wlan", "ssid", "wireless"]),
    // Where the writer lives, described rather than written ("I live in the flat above the
    // bakery on Elm Road").
    spec(
        "address_described",
        Pii,
        r"(?i:\b(?:i|we)\s+live\s+(?:in|on|at|near|above|below|next\s+to|opposite|behind)\b)[^.\n]{0,60}?\b\p{Lu}\w+\s+(?i:road|street|avenue|lane|drive|way|court|place|square|close|crescent|terrace|gardens|grove)\b",
        0,
        V::None,
        0.6,
        true,
    ).on(&["live "]),
    // ---------------- phi: identifiers ----------------
    spec(
        "medical_record_number",
        Phi,
        r"(?i:\b(?:mrn|medical record(?: number| no\.?| #)?|patient id|chart(?: number| no\.?| #))\b\s*(?:is|:|#)?\s*)([A-Z]{0,5}-?\d[\dA-Z-]{3,15})",
        1,
        V::None,
        0.95,
        false,
    ).on(&["mrn", "medical record", "patient id", "chart"]),
    spec(
        "health_insurance_id",
        Phi,
        r"(?i:\b(?:member id|member number|insurance id|insurance member id|health plan(?: number| id)?|medicare(?: number| id)?|medicaid(?: number| id)?|subscriber id|health insurance policy number)\b\s*(?:is|:|#)?\s*)([A-Z]{0,5}-?\d[\dA-Z-]{3,15})",
        1,
        V::None,
        0.9,
        false,
    ).on(&["member", "insurance", "health plan", "medicare", "medicaid", "subscriber"]),
    spec(
        "case_number",
        Phi,
        r"(?i:\bcase\s*#\s*)([A-Z]{0,5}-?\d[\dA-Z-]{3,15})",
        1,
        V::None,
        0.7,
        true,
    ).on(&["case"]),
    // ---------------- confidential markers ----------------
    spec(
        "confidential_marker",
        Confidential,
        r"(?i)\b(?:internal(?:[- ]only|\s+use\s+only|\s+draft|\s+note|\s+memo)|do\s+not\s+(?:distribute|forward|share|circulate|disclose)|not\s+for\s+(?:distribution|external)|under\s+(?:an\s+)?nda|attorney[- ]client\s+privilege[ds]?|privileged\s+(?:&|and)\s+confidential|strictly\s+confidential|company\s+confidential|highly\s+confidential|tlp\s*:\s*(?:red|amber)|embargoed\s+until|pre-release,\s+embargoed|trade\s+secret\s*[:-])",
        0,
        V::None,
        0.9,
        false,
    ).on(&["internal", "not ", "nda", "privilege", "confidential", "tlp", "embargo", "secret"]),
    spec(
        "confidential_marker",
        Confidential,
        r"(?im)(?:^|[(\[]\s*)confidential\b\s*(?:[-–—:]|\w+(?:\s+\w+){0,2}\s*[:-])",
        0,
        V::None,
        0.85,
        false,
    ).on(&["confidential"]),
    spec(
        "confidential_marker",
        Confidential,
        r"(?i)\bconfidential\s*[-–—:]\s*\S",
        0,
        V::None,
        0.85,
        false,
    ).on(&["confidential"]),
    spec(
        "confidential_marker",
        Confidential,
        r"(?i)\b(?:it\s+is\s+|is\s+|are\s+|still\s+)?not\s+(?:yet\s+)?(?:been\s+)?(?:public|announced|disclosed|released)\s+yet\b|\bnot\s+yet\s+(?:public|announced|disclosed)\b|\bbefore\s+(?:it\s+is|it's|we)\s+(?:announced?|public)",
        0,
        V::None,
        0.8,
        false,
    ).on(&["not ", "before"]),
];

pub const DOB_INDEX_KIND: &str = "date_of_birth";
pub const CLINICAL_DATE_KIND: &str = "clinical_date";
