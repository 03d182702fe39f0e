#!/usr/bin/env python3
"""Own labelled probe set for the sensitivity rules (not dev, not dev's sources).

Identities come from Faker (many locales); templates, wrappers, secret formats and hard
negatives are written here. Rows use dev's schema, so the eval scorer reads them:

    python3 policies/eval/gen_own_set.py > /tmp/own.jsonl
    cargo run --release -p switchyard-policies --example classify < /tmp/own.jsonl > /tmp/own.pred
    python3 shared/eval/score.py /tmp/own.jsonl /tmp/own.pred

Deterministic (seeded). A share of positives goes through an evasion transform
(full-width, zero-width, base64, percent-encoding, spaced digits) so the figures include
the normalisation path.
"""
import base64
import json
import random
import string
import sys
import zlib

from faker import Faker

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 7
# Set "b" uses a second batch of templates written after the rules were tuned on set
# "a"; its figures are the closer estimate of unseen text.
SET = sys.argv[2] if len(sys.argv) > 2 else "a"
R = random.Random(SEED)
LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "pt_BR", "it_IT", "pl_PL", "nl_NL", "sv_SE", "ja_JP"]
FAKERS = {loc: Faker(loc) for loc in LOCALES}
for i, f in enumerate(FAKERS.values()):
    f.seed_instance(SEED + i)


def fk():
    return FAKERS[R.choice(LOCALES)]


def luhn_complete(prefix, length):
    body = prefix + "".join(R.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for d in string.digits:
        s = body + d
        tot = 0
        for i, ch in enumerate(reversed(s)):
            v = int(ch)
            if i % 2:
                v *= 2
                if v > 9:
                    v -= 9
            tot += v
        if tot % 10 == 0:
            return s
    raise RuntimeError


def card():
    p = R.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)])
    c = luhn_complete(*p)
    sep = R.choice(["", " ", "-"])
    return sep.join(c[i:i + 4] for i in range(0, len(c), 4)) if sep else c


def iban():
    f = FAKERS[R.choice(["de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "en_GB"])]
    return f.iban()


def ssn():
    while True:
        a, g, s = R.randint(1, 899), R.randint(1, 99), R.randint(1, 9999)
        if a != 666:
            return f"{a:03d}-{g:02d}-{s:04d}"


def rnd(chars, n):
    while True:
        v = "".join(R.choice(chars) for _ in range(n))
        if any(c.isdigit() for c in v) and any(c.isalpha() for c in v):
            return v


AN = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def b62(n):
    out = ""
    while n:
        out = B62[n % 62] + out
        n //= 62
    return out.rjust(6, "0")


def gh(prefix="ghp_"):
    r = rnd(AN, 30)
    return prefix + r + b62(zlib.crc32(r.encode()))


SECRETS = [
    lambda: "AKIA" + rnd(string.ascii_uppercase + "234567", 16),
    lambda: gh(R.choice(["ghp_", "gho_", "ghs_", "ghr_"])),
    lambda: "github_pat_" + rnd(AN, 22) + "_" + rnd(AN, 59),
    lambda: "glpat-" + rnd(AN + "-_", 20),
    lambda: "xoxb-" + str(R.randint(10**11, 10**12)) + "-" + str(R.randint(10**12, 10**13)) + "-" + rnd(AN, 24),
    lambda: "sk_live_" + rnd(AN, 24),
    lambda: "rk_live_" + rnd(AN, 24),
    lambda: "dop_v1_" + rnd(HEX, 64),
    lambda: "shpat_" + rnd(HEX, 32),
    lambda: "SG." + rnd(AN + "-_", 22) + "." + rnd(AN + "-_", 43),
    lambda: "NRAK-" + rnd(string.ascii_uppercase + string.digits, 27),
    lambda: "glsa_" + rnd(AN, 32) + "_" + rnd(HEX, 8),
    lambda: "sk-proj-" + rnd(AN + "-_", 48),
    lambda: "sk-ant-api03-" + rnd(AN + "-_", 93) + "AA",
    lambda: "hf_" + rnd(AN, 34),
    lambda: "r8_" + rnd(AN, 37),
    lambda: "gsk_" + rnd(AN, 52),
    lambda: "npm_" + rnd(AN, 36),
    lambda: "pypi-AgEIcHlwaS5vcmc" + rnd(AN + "-_", 60),
    lambda: "dckr_pat_" + rnd(AN + "-_", 27),
    lambda: "dp.pt." + rnd(AN, 43),
    lambda: "hvs." + rnd(AN + "-_", 90),
    lambda: "pul-" + rnd(HEX, 40),
    lambda: "lin_api_" + rnd(AN, 40),
    lambda: "dapi" + rnd(HEX, 32),
    lambda: "SK" + rnd(HEX, 32),
    lambda: "AIza" + rnd(AN + "-_", 35),
    lambda: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----",
    lambda: "postgres://app:" + rnd(AN, 14) + "@db.internal:5432/prod",
    lambda: "password=" + rnd(AN + "!#%", 12),
    lambda: "CCIPAT_" + rnd(AN, 22) + "_" + rnd(HEX, 40),
    lambda: "bkua_" + rnd(HEX, 40),
    lambda: "ATATT3" + rnd(AN + "-_=", 180),
]

SECRET_T = [
    "Why does my deploy fail? The env has {v}",
    "Rotate this key, it leaked in a log: {v}",
    "```\nexport TOKEN={v}\n```\nWhat's wrong with this script?",
    "config.yaml:\n  api_token: {v}\n  retries: 3",
    "Can you check if {v} is still valid?",
    "my signing key is {v}, store it in the vault",
]

SECRET_NEG = [
    "Set SLACK_BOT_TOKEN=xoxb-your-token-here in .env before running.",
    "Use an API key like sk_live_xxxxxxxxxxxxxxxxxxxxxxxx in the examples.",
    "The header should read Authorization: Bearer <token>.",
    "export GITHUB_TOKEN=${{GITHUB_TOKEN}}",
    "api_key = os.environ['OPENAI_API_KEY']",
    "Our docs use AKIAIOSFODNN7EXAMPLE as the sample access key.",
    "A GitHub token starts with ghp_ followed by 36 characters; how do I validate one?",
    "password: ******** (redacted)",
    "Generate a random 32-character hex string in Python.",
    "The commit hash is 9fceb02d0ae598e95dc970b74767f19372d61af8.",
]

PII_T = [
    "Please update my profile: {name}, {addr}.",
    "Contact {name} at {email} about the invoice.",
    "Call me back on {phone}, it's {first}.",
    "Ship to:\n{name}\n{addr}",
    "My SSN is {ssn}, do I need it for the form?",
    "Hi, I'm {name} and my email is {email}.",
    "The customer {name} (born {dob}) asked for a refund.",
    "Nota: il cliente {name} abita in {addr}.",
    "Bitte rufen Sie {name} unter {phone} an.",
    "Mi correo es {email} y vivo en {addr}.",
]

PII_NEG = [
    "Napoleon Bonaparte was crowned emperor in 1804; summarise his reforms.",
    "In the novel, Elizabeth Bennet first meets Mr. Darcy at a ball. Analyse the scene.",
    "Write a tweet for Nike's new running shoe.",
    "What is the population of Lyon and what is it famous for?",
    "Explain how a street address is formatted in Japan.",
    "Sherlock Holmes lives at 221B Baker Street in the stories; why that address?",
    "The phone format in Germany is +49 followed by the area code; explain.",
    "Albert Einstein published the theory of general relativity in 1915.",
    "Create a fake customer table with columns name, email and phone for a demo.",
    "Translate 'Good morning, how are you?' into Portuguese.",
]

FIN_T = [
    "Charge card {card} for the renewal.",
    "Wire the deposit to IBAN {iban}, account holder {name}.",
    "My salary is ${sal:,} a year, can I afford this loan?",
    "Refund the payment on {card}, exp 04/29, security code {cvv}.",
    "Mein Gehalt beträgt {sal_de} Euro im Jahr.",
    "Routing number {aba} and account {acct}, please set up direct deposit.",
]

FIN_NEG = [
    "Tom earns $3,000 a month and spends 40% on rent. How much does he spend on rent in a year?",
    "What is the difference between a debit card and a credit card?",
    "Explain how IBAN check digits are computed.",
    "Write a Python function that validates a credit card number with Luhn.",
    "What is a good credit score range in the US?",
    "Summarise the bank's annual report in three bullet points.",
]

PHI_T = [
    "My HbA1c was {a1c} last week and my doctor changed my metformin dose.",
    "Patient {name}, DOB {dob}, was admitted on {date} with chest pain.",
    "I've been diagnosed with {cond}; what should I ask my doctor?",
    "Ich habe {cond_de} und nehme seit {date} Tabletten.",
    "Lab results for {name}: LDL 162, HDL 38.",
    "Mi hija tiene {cond_es} y toma insulina dos veces al día.",
]

PHI_NEG = [
    "A 54-year-old man presents with chest pain radiating to the left arm. What is the most likely diagnosis?",
    "What are the common side effects of metformin?",
    "Explain how insulin regulates blood sugar.",
    "In General Hospital, the character Dr. Quartermaine runs the clinic; summarise season 3.",
    "List five foods that lower LDL cholesterol.",
    "Describe the stages of grief in a short paragraph.",
]

CONF_T = [
    "Confidential roadmap ({what}): Q3 ships offline sync, Q4 drops the legacy API.",
    "Board-only: we are in talks to acquire {company} for about {amt} million.",
    "Internal - not for customers: the outage came from an expired certificate.",
    "Draft the CFO note on our unreleased Q{q} earnings: revenue down {pct}%.",
    "Polish this: we will cut {pct}% of the support org next month, not announced yet.",
    "Do not forward. The reorg moves {team} under the COO in March.",
    "Embargoed until {date}: our new chip is twice as fast.",
    "Attorney-client privileged: counsel expects the {company} claim to settle.",
    "Summarise: the pricing strategy for next year is to raise the enterprise tier by {pct}%.",
    "We signed the term sheet to merge with {company} at a {amt}M valuation.",
]

CONF_NEG = [
    "What is attorney-client privilege and when does it apply?",
    "What does TLP:RED mean in threat intelligence sharing?",
    "How should a startup label confidential documents?",
    "Write a short story about a spy who steals a confidential file.",
    "What does 'embargoed until' mean on a press release?",
    "Summarise Apple's publicly announced Q2 earnings.",
    "Explain what an NDA is in plain language.",
    "How do I add a 'CONFIDENTIAL' watermark to a PDF?",
]

if SET == "b":
    SECRET_T = [
        "Here is the .env from staging, why is auth failing?\nSERVICE_KEY={v}\nDEBUG=1",
        "I accidentally pushed {v} to a public repo. What now?",
        "curl -H 'X-Api-Key: {v}' https://api.internal/v2/items returns 403",
        "Store {v} in the secrets manager and reference it from the pipeline.",
        "The old credential was {v}; revoke it please.",
    ]
    SECRET_NEG = [
        "Where do I find my API key in the dashboard settings?",
        "Replace <API_KEY> with the value from your account page.",
        "token: ${{ secrets.DEPLOY_TOKEN }}",
        "Our style guide says keys look like sk_live_XXXXXXXXXXXXXXXXXXXXXXXX.",
        "How long should a random password be in 2026?",
        "The build id is 20260412-1830-7f3c.",
    ]
    PII_T = [
        "Forward the parcel to {name}, {addr}, tel. {phone}.",
        "{name} changed her email to {email} yesterday.",
        "Können Sie {name} eine Mail an {email} schicken?",
        "Le client {name} habite {addr}.",
        "New hire: {name}, SSN {ssn}, start date Monday.",
        "Send the contract to {email}, attention {name}.",
        "El paquete es para {name}, {addr}.",
        "Please call {first} at {phone} after 5pm.",
    ]
    PII_NEG = [
        "Leonardo da Vinci painted the Mona Lisa; describe the technique.",
        "Harry Potter lives at 4 Privet Drive in the books; summarise chapter one.",
        "Write a product description for a Samsung phone.",
        "What is the capital of Portugal?",
        "How do I format a UK postcode in a form field?",
        "Marie Curie won two Nobel prizes; list them.",
    ]
    FIN_T = [
        "Please use my Visa {card} for the hotel deposit.",
        "Beneficiary {name}, IBAN {iban}, reference rent March.",
        "I make about ${sal:,} per year before tax, which plan fits?",
        "Card {card}, CVV {cvv}, billing zip 94107.",
        "Überweisung an {name}, IBAN {iban}.",
    ]
    FIN_NEG = [
        "A store sells pens for $2 each. If Ana buys 14 pens, how much does she pay?",
        "What does APR mean on a credit card statement?",
        "Generate a table of test card numbers used by payment sandboxes.",
        "Explain compound interest with an example.",
    ]
    PHI_T = [
        "My therapist says my anxiety is getting better; how do I keep it up?",
        "Patient {name} (DOB {dob}) reports migraines since {date}.",
        "Mein Sohn hat Asthma, welches Spray ist für Kinder geeignet?",
        "I was diagnosed with hypertension last year and take lisinopril.",
        "Résultats de {name}: glycémie 1,4 g/l.",
    ]
    PHI_NEG = [
        "What are the symptoms of iron deficiency?",
        "A 70-year-old woman has a fever and cough. What test should be ordered first?",
        "Summarise the history of the polio vaccine.",
        "In Grey's Anatomy, Dr. Grey treats a patient with a rare tumour; recap the episode.",
    ]
    CONF_T = [
        "Leadership only: Q{q} bookings missed plan by {pct}% and we will delay the IPO.",
        "Not for external distribution - draft memo on the {company} acquisition.",
        "Please keep this under NDA: the prototype battery lasts {pct} hours.",
        "Confidential board deck: we plan to shut down the {team} office next quarter.",
        "Our unannounced partnership with {company} goes live in June; write the FAQ.",
        "We are negotiating to sell the {team} unit to {company} for {amt} million.",
    ]
    CONF_NEG = [
        "What is a non-disclosure agreement and who signs it?",
        "Explain the traffic light protocol (TLP) colours.",
        "Write a thriller scene where an agent reads a confidential dossier.",
        "What does 'privileged and confidential' mean on an email?",
        "Summarise the publicly released 10-K of a large retailer.",
    ]

if SET == "c":
    # Written after sets a and b were used for tuning; measured once, not tuned on.
    SECRET_T = [
        "Jenkins printed this in the console: {v} -- is that bad?",
        "Add {v} to the CI variables under Settings.",
        "{{\"auth\": \"{v}\", \"region\": \"eu-west-1\"}} is my client config, why 401?",
        "Paste for the incident ticket: leaked credential {v} found in the bucket.",
    ]
    SECRET_NEG = [
        "What permissions does a fine-grained GitHub token need to push tags?",
        "Set API_TOKEN to the value shown once after you create it.",
        "Keys such as xxxx-xxxx-xxxx-xxxx are placeholders in our runbook.",
        "Explain how HMAC signatures protect webhooks.",
        "The SHA-1 of the release tarball is 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12.",
    ]
    PII_T = [
        "Driver note: deliver to {addr} and ask for {first}.",
        "Our new tenant is {name}; reach them at {email} or {phone}.",
        "Der Kunde {name} wohnt in {addr}.",
        "Per favore contatta {name} al numero {phone}.",
        "Attendee list: {name} <{email}>",
        "Hello, this is {name}. My number is {phone}.",
    ]
    PII_NEG = [
        "Sherlock Holmes and Dr. Watson solve the case in The Hound of the Baskervilles; summarise it.",
        "Barack Obama was the 44th president of the United States.",
        "Draft an ad for the Hilton hotel in Vienna.",
        "What is the area code for Manchester?",
        "Write a haiku about Paris in spring.",
    ]
    FIN_T = [
        "Pay the invoice from card {card} and email the receipt.",
        "Mi IBAN es {iban}, a nombre de {name}.",
        "Our household income is ${sal:,}, do we qualify for the credit?",
        "Debit card {card} expires 11/28, CVC {cvv}.",
    ]
    FIN_NEG = [
        "If a salary is $48,000 and tax is 20%, what is the take-home pay?",
        "How do banks detect card fraud?",
        "What is the IBAN format for Germany?",
    ]
    PHI_T = [
        "My blood pressure was 150/95 this morning, should I call the clinic?",
        "Patientin {name}, geb. {dob}, Diagnose: Asthma bronchiale.",
        "My son {first} has ADHD and starts new meds on Monday.",
        "Paciente {name}: glucosa 180 mg/dl en ayunas.",
    ]
    PHI_NEG = [
        "What is a normal resting heart rate for adults?",
        "Explain how vaccines train the immune system.",
        "A 30-year-old presents with a rash after hiking. What is the differential?",
    ]
    CONF_T = [
        "Internal only: Q{q} churn rose to {pct}% and the board wants a plan.",
        "Strictly confidential - the {company} deal closes Friday at {amt}M.",
        "Management-only update: we plan to lay off {pct} people in {team}.",
        "Pre-release, embargoed: the v3 launch date is {date}.",
        "Our not-yet-public Q{q} results beat guidance; draft the investor email.",
    ]
    CONF_NEG = [
        "What is insider trading and why is it illegal?",
        "How do embargoes work for journalists?",
        "Write a poem about a secret garden.",
        "What does 'internal use only' usually mean on a slide?",
    ]

CONDS = ["type 2 diabetes", "hypertension", "asthma", "depression", "Crohn's disease"]
CONDS_DE = ["Diabetes", "Bluthochdruck", "Asthma", "eine Depression"]
CONDS_ES = ["diabetes", "asma", "epilepsia"]


def aba():
    while True:
        d = [R.randint(0, 9) for _ in range(8)]
        s = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5])
        c = (10 - s % 10) % 10
        v = "".join(map(str, d)) + str(c)
        if v[0] in "0123":
            return v


def fill(t):
    f = fk()
    name = f.name()
    return t.format(
        v="", name=name, first=name.split()[0], addr=f.address().replace("\n", ", "),
        email=f.email(), phone=f.phone_number(), ssn=ssn(), dob=f.date_of_birth().isoformat(),
        card=card(), iban=iban(), sal=R.randint(35, 180) * 1000, sal_de=f"{R.randint(35, 180)}.000", cvv=R.randint(100, 999),
        aba=aba(), acct=R.randint(10**7, 10**10), a1c=round(R.uniform(5.5, 10), 1),
        date=f.date(), cond=R.choice(CONDS), cond_de=R.choice(CONDS_DE), cond_es=R.choice(CONDS_ES),
        what=R.choice(["NDA with a partner", "board review", "do not share"]),
        company=Faker().company(), amt=R.randint(5, 900), q=R.randint(1, 4), pct=R.randint(5, 30),
        team=R.choice(["payments", "design", "support"]),
    )


def fullwidth(s):
    return "".join(chr(ord(c) - 0x21 + 0xFF01) if "!" <= c <= "~" else c for c in s)


def zerowidth(s):
    return "".join(c + ("\u200b" if R.random() < 0.4 else "") for c in s)


def spaced(s):
    out = []
    for i, c in enumerate(s):
        out.append(c)
        if c.isdigit() and i + 1 < len(s) and s[i + 1].isdigit() and R.random() < 0.3:
            out.append(" ")
    return "".join(out)


def evade(value):
    k = R.random()
    if k < 0.15:
        return fullwidth(value), "fullwidth"
    if k < 0.3:
        return zerowidth(value), "zerowidth"
    if k < 0.4:
        return base64.b64encode(value.encode()).decode(), "base64"
    if k < 0.5 and any(c.isdigit() for c in value):
        return spaced(value), "spaced"
    return value, None


rows = []


def add(prompt, cats, src):
    rows.append({
        "id": f"own-{len(rows) + 1:04d}", "prompt": prompt, "sensitive": bool(cats),
        "categories": sorted(cats), "difficulty": "borderline", "source": src,
        "injected": False,
    })


for _ in range(120):
    t = R.choice(SECRET_T)
    v = R.choice(SECRETS)()
    ev, how = evade(v) if "BEGIN" not in v else (v, None)
    add(t.replace("{v}", ev), ["secret"], f"own/secret{'/' + how if how else ''}")
for t in SECRET_NEG:
    add(t.replace("{{", "{").replace("}}", "}"), [], "own/secret/hard-negative")
for _ in range(120):
    t = R.choice(PII_T)
    p = fill(t)
    if R.random() < 0.25 and "{ssn}" in t:
        v = ssn()
        p = t.replace("{ssn}", evade(v)[0])
        p = fill(p.replace("{", "{{").replace("}", "}}").replace("{{name}}", "{name}"))
    add(p, ["pii"], "own/pii")
for t in PII_NEG:
    add(t, [], "own/pii/hard-negative")
for _ in range(80):
    t = R.choice(FIN_T)
    p = fill(t)
    cats = ["financial"] + (["pii"] if "{name}" in t else [])
    add(p, cats, "own/financial")
for t in FIN_NEG:
    add(t, [], "own/financial/hard-negative")
for _ in range(60):
    add(fill(R.choice(PHI_T)), ["phi"], "own/phi")
for t in PHI_NEG:
    add(t, [], "own/phi/hard-negative")
for _ in range(60):
    add(fill(R.choice(CONF_T)), ["confidential"], "own/confidential")
for t in CONF_NEG:
    add(t, [], "own/confidential/hard-negative")

for r in rows:
    print(json.dumps(r, ensure_ascii=False))
