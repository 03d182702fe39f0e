//! Rule-path behaviour on hand-written sentences (not eval data): each line pins one
//! pattern class of issue #15: confidential adjectives / audience lines and questions
//! about confidentiality, precision (fiction, public works, placeholders, word problems,
//! IMEI vs card, CVV as card data, account holders), multilingual cues, data described
//! without a value, vowel-dropped cue nouns, provider token formats.
use policies::{Classifier, ClassifyInput, Detector, OrgRules, Segment, SegmentRole};

const CASES: &[(&str, &[&str])] = &[
    // Generated from hand-written probes (not eval data): (text, exact categories).
    ("Confidential roadmap (NDA with Halvard Systems): Q3 ships offline sync, Q4 drops the legacy API.", &["confidential"]),
    ("Confidential draft of our unfiled 10-Q: net revenue fell 8% quarter over quarter.", &["confidential"]),
    ("Board-only: we are in talks to acquire Lumencraft for roughly 40 million.", &["confidential"]),
    ("Internal - not for customers: the outage was caused by an expired certificate we missed.", &["confidential"]),
    ("Do not forward. The reorg moves the payments team under the CFO in March.", &["confidential"]),
    ("Embargoed until 9 May: our new chip runs 2x faster than the current one.", &["confidential"]),
    ("Attorney-client privileged: outside counsel thinks the patent claim against us is strong.", &["confidential"]),
    ("Rewrite this for the all-hands: we will cut 12% of the sales org next month, not announced yet.", &["confidential"]),
    ("Our unreleased Q2 earnings show a loss of 14 million; draft the CFO letter.", &["confidential"]),
    ("Summarise: the pricing strategy for 2027 is to raise the enterprise tier by 18% and end the free plan.", &["confidential"]),
    ("Polish this email: we signed the term sheet to merge with Orvane at a 300M valuation, nobody outside the deal team knows.", &["confidential"]),
    ("Eyes only - leadership: headcount plan freezes hiring in EMEA until Q1.", &["confidential"]),
    ("What is attorney-client privilege and when does it apply?", &[]),
    ("What does TLP:RED mean in threat intel sharing?", &[]),
    ("How should a small company mark documents as confidential?", &[]),
    ("Explain the difference between confidential and secret classification levels.", &[]),
    ("Write a short story about a spy who steals a confidential file.", &[]),
    ("What does 'embargoed until' mean on a press release?", &[]),
    ("In General Hospital, the character Sonny Corinthos runs a coffee business.", &[]),
    ("Dr. No is a 1958 novel by Ian Fleming; write a blurb for it.", &[]),
    ("Set SLACK_TOKEN=xoxb-my-bot-token in your .env file.", &[]),
    ("Jenna earns $52,000 a year and saves 15% of it. How much does she save in a year?", &[]),
    ("My phone's IMEI is 490154203237518, can you check if it is blacklisted?", &["pii"]),
    ("The security code on my card is 737 and it expires 04/29.", &["financial"]),
    ("Send the refund to IBAN DE89370400440532013000, account holder Marta Kowalczyk.", &["financial", "pii"]),
    ("Set the header to 'Authorization: Bearer <your-token>' before calling the API.", &[]),
    ("api_key = \"${OPENAI_API_KEY}\"", &[]),
    ("Tell me about Napoleon Bonaparte's early career.", &[]),
    ("Bitte senden Sie die Rechnung an Herrn Jürgen Weißmann, Lindenstraße 14, 10115 Berlin.", &["pii"]),
    ("Mon adresse est 12 rue des Acacias, 69003 Lyon.", &["pii"]),
    ("Mi dirección es Calle Mayor 23, 28013 Madrid, y mi teléfono 612 345 678.", &["pii"]),
    ("Moja pacjentka, Anna Zielińska, ma cukrzycę typu 2.", &["phi"]),
    ("Il paziente Marco Bianchi soffre di ipertensione.", &["phi"]),
    ("Meu salário é de R$ 8.500 por mês.", &["financial"]),
    ("私の電話番号は090-4821-7735です。", &["pii"]),
    ("Ich habe Diabetes und nehme Metformin, mein Blutzucker war heute 190.", &["phi"]),
    ("Envoyez-le à Rúa do Franco 12, Santiago, por favor.", &["pii"]),
    ("ship to: john doe, psc 1234 box 5678, fpo ap 96349", &["pii"]),
    ("Mój numer PESEL to 44051401458.", &["pii"]),
    ("Mein Gehalt beträgt 65.000 Euro im Jahr.", &["financial"]),
    ("For the security question I used the furry pet we have at home.", &["secret"]),
    ("My income is a bit over fifty thousand a year.", &["financial"]),
    ("Help me log my mood all week in a spreadsheet.", &["phi"]),
    ("My face scan on the device stopped unlocking the phone.", &["phi"]),
    ("My wallet address starts with 0x7a and ends with f31c.", &["financial"]),
    ("mthr's mdn nm is Kowalski", &["secret"]),
    ("my scl scrty nmbr is 219 09 9951", &["pii"]),
    ("pssw: Tr0ub4dor&3", &["secret"]),
    ("call me at 4 1 5. 5 5 5. 0 1 9 9", &["pii"]),
    ("My signing key is 9f8a7d6c5b4e3f2a1b0c9d8e7f6a5b4c", &["secret"]),
    ("Our linter flags this: DIGITALOCEAN_TOKEN=dop_v1_7e3a91c0b5d24f68a1c9e0b7d3f5a2c4e6b8d0f1a3c5e7b9d2f4a6c8e0b1d3f5", &["secret"]),
    ("Deploy uses NRAK-8QW2XJ4M7P1V9C3N6B5R0T2Y4Z6 for alerts.", &["secret"]),
    ("export VAULT_TOKEN=hvs.CAESIK9x2Lm7Qp4Rz8Tn1Vb5Wc3Xd6Yf0Ga2Hj4Kl6Mn8Pq", &["secret"]),
    ("The invoice was sent to Diaz PLC at a 212M valuation estimate.", &[]),
    ("Write a Python function that validates a credit card number with Luhn.", &[]),
    ("Explain what an NDA is in plain language.", &[]),
    ("How do I add a 'CONFIDENTIAL' watermark to a PDF?", &[]),
    ("Wire the deposit to IBAN DE89370400440532013000, account holder 山崎 和也.", &["financial", "pii"]),
    ("Lab results for Anna-Lena Vesterlund: LDL 162, HDL 38.", &["phi"]),
    ("Bitte rufen Sie Hendrik Courtier unter +31262 109106 an.", &["pii"]),
    ("Refund the payment on 4539148803436467, exp 04/29, security code 884.", &["financial"]),
    ("Tom earns $3,000 a month and spends 40% on rent. How much does he spend on rent in a year?", &[]),
    ("Sherlock Holmes lives at 221B Baker Street in the stories; why that address?", &[]),
];

#[test]
fn each_case_gets_exactly_its_categories() {
    let c = Classifier::new(OrgRules::default()).expect("builtin classifier compiles");
    let mut wrong = Vec::new();
    for (text, want) in CASES {
        let segs = [Segment {
            role: SegmentRole::User,
            text,
        }];
        let r = c.classify(&ClassifyInput {
            segments: &segs,
            embedding: None,
        });
        let mut got: Vec<&str> = r.categories.iter().map(|k| k.as_str()).collect();
        got.sort_unstable();
        let mut want: Vec<&str> = want.to_vec();
        want.sort_unstable();
        if got != want {
            wrong.push(format!(
                "{text}\n  want {want:?} got {got:?} {:?}",
                r.findings
            ));
        }
        assert!(r.findings.iter().all(|f| f.detector == Detector::Rule));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
