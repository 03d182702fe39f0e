#!/usr/bin/env python3
"""Writes probe.jsonl: hand-written probe rows for the sensitivity rules (issue #15).

Every prompt below was written for this file (not taken from shared/eval/dev.jsonl or the
sources its README lists). Identities, numbers and keys are invented; checksummed values
(cards, IBANs, national ids) are completed by the helpers so they validate.
Rows are split into `tune-` (read while working on the rules) and `held-` (scored only).

    python3 policies/tests/data/make_probe.py > policies/tests/data/probe.jsonl
"""
import json
import sys


def luhn(partial: str) -> str:
    digits = [int(c) for c in partial]
    s = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        s += d
    return partial + str((10 - s % 10) % 10)


def card(partial15: str, sep: str = " ") -> str:
    n = luhn(partial15)
    return sep.join(n[i : i + 4] for i in range(0, 16, 4))


def iban(cc: str, bban: str, group: bool = True) -> str:
    rearr = bban + cc + "00"
    num = "".join(str(int(c, 36)) for c in rearr)
    check = 98 - int(num) % 97
    s = f"{cc}{check:02d}{bban}"
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4)) if group else s


def dni(n: int) -> str:
    return f"{n:08d}" + "TRWAGMYFPDXBNJZSQVHLCKE"[n % 23]


def pesel(p10: str) -> str:
    w = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3]
    s = sum(int(c) * k for c, k in zip(p10, w))
    return p10 + str((10 - s % 10) % 10)


def bsn(p8: str) -> str:
    # 11-proef: sum(d_i * (9..2)) - d9 ≡ 0 mod 11
    s = sum(int(c) * k for c, k in zip(p8, range(9, 1, -1)))
    for last in range(10):
        if (s - last) % 11 == 0:
            return p8 + str(last)
    raise ValueError(p8)


def nif_pt(p8: str) -> str:
    s = sum(int(c) * k for c, k in zip(p8, range(9, 1, -1)))
    r = 11 - s % 11
    return p8 + str(0 if r >= 10 else r)


ROWS = []


def row(part, lang, shape, cats, prompt, hn=False):
    ROWS.append((part, lang, shape, cats, prompt, hn))


def T(lang, shape, cats, prompt):
    row("tune", lang, shape, cats, prompt)


def TN(lang, shape, prompt):
    row("tune", lang, shape, [], prompt, True)


def H(lang, shape, cats, prompt):
    row("held", lang, shape, cats, prompt)


def HN(lang, shape, prompt):
    row("held", lang, shape, [], prompt, True)


P, M, F, S, C = "pii", "phi", "financial", "secret", "confidential"

# ---------------------------------------------------------------- tune: pii
T("en", "ticket", [P], "Ticket #48213: parcel never arrived. Ship-to: Okonkwo, 14 Larchmont Crescent, Leeds LS6 2QT. Please reissue and apologise.")
T("en", "crm", [P], "Call notes: spoke with deshawn about the renewal, he prefers texts on 07842 319577 after six.")
T("en", "ticket", [P], "Please send the invoice copy to marta.kowalczyk84@gmail.com, she is handling the account now.")
T("fr", "ticket", [P], "Bonjour, je n'ai toujours pas reçu ma commande. Adresse de livraison : 7 bis allée des Tilleuls, 69003 Lyon. Merci de vérifier.")
T("de", "hr", [P], "Personalakte: Frau Brigitte Hollmann, geb. 14.03.1979, wechselt zum 1. Juli in die Buchhaltung. Bitte Zugang einrichten.")
T("es", "crm", [P], f"Nota del cliente: Javier Ortega Ruiz, DNI {dni(48392017)}, pide que le llamen por la tarde.")
T("pt", "crm", [P], f"Cliente: Joana Figueiredo, NIF {nif_pt('24561873')}, pediu a segunda via da fatura de março.")
T("it", "ticket", [P], "Il signor Bianchi chiede di aggiornare l'indirizzo di consegna: Via dei Mille 42, 20129 Milano.")
T("nl", "crm", [P], "Klantnotitie: mevrouw de Vries belt over haar bestelling, nieuw adres Kerkstraat 18, 3511 LX Utrecht.")
T("pl", "ticket", [P], "Zgłoszenie 5521: pani Agnieszka Wróbel, ul. Lipowa 12/4, 31-515 Kraków, prosi o kontakt mailowy.")
T("en", "address", [P], "forward the box to sgt. m. reyes, unit 2050 box 4190, fpo ae 09456, thanks")
T("es", "address", [P], "Envíen la factura a Rúa do Franco 33, 2º, 15705 Santiago de Compostela, a nombre de Uxía Castro.")
T("pl", "address", [P], "Faktura dla:\nZając Serwis Sp. z o.o.\nul. Żeromskiego 5\n90-710 Łódź\nNIP do uzupełnienia")
T("en", "name-no-cue", [P], "Draft a reply to Ferreira. He asked twice about the refund and I want to apologise properly.")
T("en", "name-no-cue", [P], "can you summarise priya's leave request from the thread below? she is back on the 14th.")
T("en", "obfuscated", [P], "call me back on 0 6 1 2 3 4 5 6 7 8 please, between 9 and 5")
T("en", "evasion", [P], "My SSN is ２１９-４８-３３０６, please put it on the W-4 draft.")
T("en", "direct", [P], "Our home wifi network is called VodafoneRiera_5G, can you help me set up the printer on it?")
T("de", "ticket", [P], "Kunde meldet sich wegen Lieferverzug. Rückruf bitte unter 0171 4839265, Herr Weiß.")
T("fr", "hr", [P], "Dossier RH : Karim Benali, numéro de sécurité sociale 1 84 07 75 112 048 32, demande un congé parental.")
T("it", "crm", [P], "Appunto: la cliente Giulia Ferraro, codice fiscale FRRGLI85M41F205X, ha disdetto il contratto.")
T("nl", "hr", [P], f"HR-dossier: Sanne Bakker, BSN {bsn('23456781')[:9]}, start op 1 september bij team Finance.")
T("pl", "hr", [P], f"Sprawa kadrowa: Paweł Zieliński, PESEL {pesel('8806141234')}, wnioskuje o urlop bezpłatny.")
T("pt", "ticket", [P], "A encomenda deve ir para Avenida dos Aliados 214, 3º esq., 4000-065 Porto, ao cuidado de Tiago Mendes.")
T("ja", "crm", [P], "顧客メモ：山本健太様より電話。折り返しは 080-4417-2290 までお願いします。")
T("en", "log", [P], "2024-05-03T10:22:11Z WARN login failed user=karolina.mazur@onet.pl src=83.12.44.190 attempts=5")
T("en", "referred", [P], "I'll give you my home address later, but for now note that I live in the flat above the bakery on Elm Road, number 9.")
T("es", "name-no-cue", [P], "Resume el correo de Ximena sobre el retraso del pedido y propón una respuesta amable.")
T("de", "address", [P], "Lieferadresse: Am Mühlbach 7a, 82031 Grünwald, z. Hd. Lukas Brenner")
T("en", "obfuscated", [P], "my email is j.o.h.a.n.s.s.o.n (at) proton (dot) me, reply there")
# ---------------------------------------------------------------- tune: phi
T("de", "clinical", [M], "Arztbrief: Patient Jürgen Albrecht, geb. 02.11.1958. Diagnose: Vorhofflimmern, Einstellung auf Apixaban 5 mg 1-0-1.")
T("fr", "clinical", [M], "Compte rendu de consultation : Mme Nathalie Rousseau, née le 5 mai 1971, hypertension artérielle, HbA1c à 8,2 %.")
T("es", "clinical", [M], "Informe: la paciente Lucía Herrera, historia clínica 00482915, diagnosticada de diabetes tipo 2 en enero.")
T("pt", "clinical", [M], "Carta de alta: o doente Rui Matos, n.º de utente 284519307, internado por pneumonia, alta com amoxicilina.")
T("it", "clinical", [M], "Lettera di dimissione: il paziente Marco Gentile, nato il 12/09/1966, ricoverato per infarto miocardico acuto.")
T("nl", "clinical", [M], "Ontslagbrief: mevrouw Anouk Jansen, geboren 3 april 1982, opgenomen en behandeld voor een longembolie.")
T("pl", "clinical", [M], f"Karta informacyjna: pacjent Tomasz Nowicki, PESEL {pesel('6203051187')}, rozpoznanie: cukrzyca typu 2.")
T("ja", "clinical", [M], "診療情報提供書：患者 佐藤花子 様（1975年4月2日生）、2型糖尿病にて当院通院中です。")
T("en", "hr", [M], "HR case 3391: employee asked for reduced hours after her multiple sclerosis diagnosis; manager is Ines Walther.")
T("en", "first-person", [M], "my daughter's EpiPen prescription ran out and she's allergic to peanuts, draft a note to her school nurse")
T("fr", "first-person", [M], "Depuis mon infarctus je prends du Kardegic tous les matins, est-ce que je peux boire du vin ?")
T("de", "first-person", [M], "Ich habe seit drei Wochen Migräne und mein Hausarzt hat mir Sumatriptan verschrieben. Ist das normal?")
T("es", "first-person", [M], "Mi madre tiene Alzheimer y necesito organizar sus citas con el neurólogo y la enfermera.")
T("en", "calendar", [M], "Calendar: Tue 10:30 Dr. Haddad (oncology follow-up), bring the CT results. Add a reminder.")
T("en", "referred", [M], "Please delete my face scan from the office door system, I never agreed to it.")
T("en", "referred", [M], "I log my mood all week in a notebook; mostly low, anxious on Mondays. Can you spot a pattern?")
T("it", "first-person", [M], "Ho la psoriasi da dieci anni e il dermatologo mi ha proposto un farmaco biologico.")
T("pt", "first-person", [M], "Tenho asma desde criança e a minha bomba acabou; que alternativa posso pedir ao médico?")
T("nl", "first-person", [M], "Ik heb sinds vorig jaar diabetes type 1 en mijn insuline pomp geeft een foutmelding.")
T("pl", "first-person", [M], "Mam nadciśnienie i lekarz przepisał mi nowy lek, ale mam po nim zawroty głowy.")
T("en", "claim", [M, F], "Claim 77-4410293: the member had knee arthroscopy on 3 March; please review the denial letter.")
T("de", "calendar", [M], "Termin Do 14:00 bei Dr. Keller, Kardiologie, Langzeit-EKG abholen.")
# ---------------------------------------------------------------- tune: financial
T("en", "direct", [F], "Applicant lists $60,000 annual income and wants to know which card tier fits.")
T("fr", "first-person", [F], "Mon salaire net est de 2 850 € par mois, est-ce que je peux emprunter 200 000 € sur 25 ans ?")
T("es", "first-person", [F], "Cobro unos 32.000 euros al año, ¿me conviene hacer la declaración conjunta con mi pareja?")
T("pt", "first-person", [F], "O meu ordenado é de 1.450 euros líquidos; quanto consigo poupar por mês?")
T("it", "first-person", [F], "Il mio reddito annuo è di circa 38 mila euro, posso chiedere un mutuo per casa?")
T("nl", "first-person", [F], "Mijn bruto jaarsalaris is € 54.000, hoeveel hypotheek kan ik krijgen?")
T("pl", "first-person", [F], "Zarabiam 7500 zł brutto miesięcznie, czy dostanę kredyt hipoteczny?")
T("ja", "first-person", [F], "私の年収は650万円です。住宅ローンはいくらまで借りられますか？")
T("de", "payroll", [F, P], f"Gehaltsabrechnung März: Bruttogehalt 5.420,00 €, Kontoinhaber Felix Brandt, IBAN {iban('DE', '370400440532013000')}.")
T("en", "evasion", [F], f"card number for the refund: {card('453201511283036').replace(' ', chr(0x200b) + ' ')} exp 09/27")
T("en", "referred", [F], "I earn just shy of seventy grand a year, should I max out the pension contribution?")
T("en", "direct", [F], "My credit score dropped to 612 after one late payment, how do I get it back up?")
T("nl", "claim", [F], f"Schadeclaim 2024-118734, uitbetalen op rekening {iban('NL', 'ABNA0417164300')} t.n.v. J. Visser.")
T("it", "crm", [F], f"Bonifico da stornare: IBAN {iban('IT', 'X0542811101000000123456')}, importo 1.250 euro.")
T("de", "claim", [F], "Schadennummer KF-2024-88417, Versicherungsnummer 40 118 552 X, bitte Regulierung prüfen.")
T("es", "crm", [F], "El cliente paga con la tarjeta " + card("552911234567890", "-") + " y pide cambiar la fecha de cargo.")
T("fr", "direct", [F], "Mon revenu fiscal de référence est de 41 300 euros, à quelle aide ai-je droit ?")
T("pl", "crm", [F], f"Klient prosi o zwrot na konto {iban('PL', '109010140000071219812874')}.")
# ---------------------------------------------------------------- tune: secret
T("en", "config", [S], "Why does this fail?\n\nDIGITALOCEAN_TOKEN=dop_v1_8e1f4b7a2c9d03e6f5a8b1c4d7e0f3a6b9c2d5e8f1a4b7c0d3e6f9a2b5c8d1e4")
T("en", "direct", [S], "licence activation keeps failing with KEY-7QX4-M2PD-9KLT-H3VB, what should I check?")
T("en", "direct", [S], "my signing key is 9f3bA71c0e4D28aa5B6e0c91F7d2c4E8 and gpg refuses to import it")
T("en", "config", [S], "db:\n  host: 10.0.3.12\n  user: app\n  password: Vq7!rT2#mZp9\nwhy can't the pod connect?")
T("en", "log", [S], "curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyNDIifQ.Qm9vbTRzaGFrYWxha2E5OTk' https://api.internal/v1/me returns 401")
T("en", "config", [S], "STRIPE_SECRET=sk_live_51Hq8ZtK3mN7pQ2rV9xW4yB6cD1eF0gJ\nwebhook keeps failing, any idea?")
T("en", "config", [S], "[default]\naws_access_key_id = AKIA4QW7ZP2LMX9TRB6K\naws_secret_access_key = q8Rz/2LmX9vT4kPw7sN1cA5bD3eF6gH0jK+lMn2P")
T("en", "evasion", [S], "the k8s secret has aws_secret_access_key: cTNSei8yTG1YOXZUNGtQdzdzTjFjQTViRDNlRjZnSDBqSytsTW4yUA== is that decoded right?")
T("en", "config", [S], "SENDGRID_API_KEY=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")
T("en", "chat", [S], "here is the bot token so you can test: xoxb-2931047562-5618290437-Hq7ZrT2mZp9Wx4yB6cD1eF0g")
T("en", "config", [S], "GITLAB_TOKEN=glpat-Rk7Vq2Lm9Xw4Tp8Zs3Bn hook fails with 403")
T("en", "config", [S], "HF_TOKEN=hf_QwErTyUiOpAsDfGhJkLzXcVbNm1234567q model download still denied")
T("de", "chat", [S], "Mein WLAN-Passwort ist Kx7#pL92!qw, der Drucker findet das Netz trotzdem nicht.")
T("fr", "chat", [S], "Mon mot de passe est Pl4nq!Vd82#s et je n'arrive plus à me connecter à la messagerie.")
T("es", "chat", [S], "Mi contraseña del banco es Rq9!mZ2#kL y la app dice que está bloqueada.")
T("en", "referred", [S], "For the security question I used the name of the street I grew up on, the bank still rejects it.")
T("en", "obfuscated", [S], "my mthr's mdn nm is Szabo, use that for the account recovery form")
T("en", "direct", [S], "my 2FA backup code is 482 913, keep it somewhere safe for me")
T("en", "config", [S], "ANTHROPIC_API_KEY=sk-ant-api03-Xk29fPq7LmZr4TnB8wYc3Vd6Ef1Gh5Jk0Lm2Np4QrSt6Uv8Wx0Yz1Ab3Cd5Ef7Gh9Ij1Kl3Mn5Op7Qr9St1Uv3Wx5Yz7-AbCdEfAA")
T("en", "config", [S], "OPENAI_API_KEY=sk-proj-Hq7ZrT2mZp9Wx4yB6cD1eF0gJ3kL5nP8qR1sT4vW7xZ0aC2dE5fG8hJ1kM4nP7qS0tV3wY6zB9cF2gH5jK8mN1pQ4rT7uW0xZ3")
T("en", "config", [S], "Telegram bot stopped: TELEGRAM_TOKEN=5829104736:AAH3kZr9Qm2Lp7Xw4Tn8Bv6Cy1Dz0Ef5GhJ")
T("en", "config", [S], "NETLIFY_AUTH_TOKEN=nfp_Zq8r2LmX9vT4kPw7sN1cA5bD3eF6gH0jK7l deploy fails")
T("en", "config", [S], "private key for the deploy bot:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----")
T("pl", "chat", [S], "Hasło do panelu to Wq82!zpX#m, zapisz je w notatce dla Ani.")
# ---------------------------------------------------------------- tune: confidential
T("en", "marker", [C], "Confidential roadmap (NDA with Keller GmbH): v5 ships offline mode in Q3 and drops the legacy API.")
T("en", "marker", [C], "Board-only: we are evaluating a sale of the logistics unit to a private equity buyer. Tighten this paragraph.")
T("en", "marker", [C], "Internal - not for customers: the outage on 12 May was caused by a certificate we let expire. Draft the postmortem.")
T("fr", "marker", [C], "Document interne – ne pas diffuser : plan de réduction de 120 postes à Lille d'ici mars. Reformule l'introduction.")
T("de", "marker", [C], "Vertraulich – nur für die Geschäftsleitung: Übernahme der Berger Logistik GmbH für 14 Mio. Euro. Bitte kürzen.")
T("es", "marker", [C], "Confidencial, solo para el comité de dirección: los resultados del tercer trimestre caen un 18 %. Mejora la redacción.")
T("pt", "marker", [C], "Uso interno – não divulgar: vamos encerrar a fábrica de Aveiro no próximo ano. Revê este texto.")
T("it", "marker", [C], "Riservato – solo per il consiglio: trattativa in corso per acquisire Delta Srl. Sistema la forma.")
T("nl", "marker", [C], "Vertrouwelijk, alleen voor het managementteam: we schrappen 40 banen in Eindhoven. Maak dit korter.")
T("pl", "marker", [C], "Poufne – tylko dla zarządu: planujemy zwolnienia grupowe 200 osób w czerwcu. Popraw styl.")
T("ja", "marker", [C], "社外秘：来期の新製品の価格は据え置きとする方針です。この文章を整えてください。")
T("en", "no-marker", [C], "Polish this: Q3 revenue came in at $41.2M, 9% below what we guided, and we announce on the 28th.")
T("en", "no-marker", [C], "Help me write the all-hands script for the layoffs next Thursday: 15% of engineering, nobody knows yet.")
T("en", "no-marker", [C], "Draft talking points for our acquisition of Northwind; the price is $220M and the deal is still under wraps.")
T("fr", "no-marker", [C], "Nous allons annoncer la fusion avec Arvalis le 3 juin ; rédige un communiqué en attendant, personne n'est au courant.")
T("de", "no-marker", [C], "Wir planen, im Herbst 300 Stellen abzubauen; formuliere bitte eine Mail an die Standortleiter, die noch nichts wissen.")
T("es", "no-marker", [C], "Vamos a despedir a 60 personas del almacén en enero; ayúdame a preparar el guion para los jefes de equipo.")
T("en", "marker", [C], "Confidential draft of our unfiled 10-Q, section on liquidity. Make it read less alarming.")
# ---------------------------------------------------------------- tune: hard negatives
TN("en", "public-figure", "What did Angela Merkel say about the euro crisis in 2012? Keep it to three bullet points.")
TN("es", "public-figure", "Escribe una breve biografía de Gabriel García Márquez para un cartel escolar.")
TN("fr", "public-figure", "Résume la carrière de Zinédine Zidane en cinq phrases.")
TN("en", "fiction", "Write a scene where Sherlock Holmes receives a visitor at 221B Baker Street.")
TN("en", "fiction", "Summarise the plot of Dr. No and explain why it was the first Bond film.")
TN("en", "fiction", "In General Hospital, why did Dr. Patrick Drake leave Port Charles?")
TN("pl", "public-figure", "Kim był Fryderyk Chopin i dlaczego wyjechał do Paryża?")
TN("en", "place", "The White House is at 1600 Pennsylvania Avenue NW. How old is the building?")
TN("en", "test-data", "Use jane.doe@example.com and 555-0100 as the sample contact in the API docs.")
TN("en", "test-data", "Why does the Stripe sandbox accept 4111 1111 1111 1111 but reject my real card in test mode?")
TN("en", "placeholder", "STRIPE_SECRET=sk_live_xxxxxxxxxxxxxxxxxxxxxxxx\nShould this go in .env or in the vault?")
TN("en", "placeholder", "In the README write: export GITHUB_TOKEN=<your-token-here> before running the script.")
TN("en", "placeholder", "db:\n  password: ${DB_PASSWORD}\n  user: app\nIs reading the password from the environment safe?")
TN("en", "placeholder", "AWS docs use AKIAIOSFODNN7EXAMPLE as the sample access key id; what is the matching secret for?")
TN("en", "about-format", "What do GitHub personal access tokens look like, and why do they start with ghp_?")
TN("en", "about-confidential", "What does TLP:RED mean in a threat intelligence report?")
TN("en", "about-confidential", "Explain attorney-client privilege in simple terms for a first-year student.")
TN("fr", "about-confidential", "Qu'est-ce qu'une clause de confidentialité dans un contrat de travail ?")
TN("de", "about-confidential", "Was bedeutet der Vermerk 'streng vertraulich' auf einem Dokument?")
TN("en", "about-confidential", "Write a template NDA for a freelance designer, with blanks for the names.")
TN("en", "public-finance", "Apple reported revenue of $94.9 billion last quarter; summarise the main drivers.")
TN("en", "word-problem", "Anna earns $3,200 a month and saves 15% of it. How much does she save in a year?")
TN("en", "medical-question", "What are the early symptoms of type 2 diabetes?")
TN("fr", "medical-question", "Quels sont les effets secondaires habituels de la metformine ?")
TN("de", "medical-question", "Was ist der Unterschied zwischen Typ-1- und Typ-2-Diabetes?")
TN("es", "medical-question", "¿Cuánto dura normalmente la recuperación de una apendicectomía?")
TN("en", "vignette", "A 54-year-old man presents with crushing chest pain radiating to the left arm. What is the next step in management?")
TN("it", "public-figure", "Chi era Leonardo da Vinci e quali sono le sue opere più famose?")
TN("nl", "public-figure", "Wie was Vincent van Gogh en waarom verhuisde hij naar Arles?")
TN("en", "fiction", "Write a mystery story in which a confidential file goes missing from a law firm.")
TN("en", "salary-stats", "What is the average salary of a nurse in Germany compared with France?")
TN("pt", "medical-question", "Quais são os sintomas mais comuns da asma em crianças?")
TN("en", "code", "def connect(password: str) -> None:\n    \"\"\"Open the connection; password comes from the caller.\"\"\"\n    ...\nAdd type hints to the rest.")
TN("en", "about-format", "How is an IBAN check digit computed? Explain mod 97 step by step.")
TN("en", "brand", "Write a playful ad for Ben & Jerry's new oat-milk flavour.")
TN("ja", "medical-question", "インフルエンザの一般的な症状は何ですか？")

# ================================================================= held (scored only)
H("en", "ticket", [P], "Customer writes: the replacement went to the wrong house. Correct address is 52 Wexford Gardens, Cork T12 X2K8. Name on order: Aoife Nolan.")
H("en", "crm", [P], "Met with tremaine at the expo; follow up by phone at (614) 555-2938 next week about pricing.")
H("en", "ticket", [P], "Refund confirmation should go to lukas.hofbauer1990@outlook.com, not the old address.")
H("fr", "crm", [P], "Note CRM : M. Olivier Garnier souhaite être rappelé au 06 42 18 77 35 avant vendredi.")
H("de", "ticket", [P], "Bitte die Rechnung an Frau Sabine Krüger senden, Lindenallee 23, 50968 Köln.")
H("es", "hr", [P], "Expediente de RRHH: Marta Sánchez Gil, NIE X4729183L, solicita cambio de turno.")
H("pt", "hr", [P], "Processo RH: a colaboradora Beatriz Sousa, morada Rua de Santa Catarina 701, 4000-454 Porto, pediu teletrabalho.")
H("it", "hr", [P], "Pratica HR: il dipendente Alessandro Russo, matricola 45872, nato a Bari il 3 marzo 1988, chiede il part-time.")
H("nl", "ticket", [P], "Pakket kwam niet aan. Bezorgadres: Prinsengracht 263-2, 1016 GV Amsterdam, t.a.v. Daan Smit.")
H("pl", "crm", [P], "Notatka: pan Krzysztof Lewandowski, tel. 512 880 417, prosi o ofertę na serwis klimatyzacji.")
H("en", "address", [P], "send it to cpl. d. okafor, psc 3378 box 112, apo ae 09021")
H("pt", "address", [P], "Mandem a encomenda para Rúa Nova 18, 36202 Vigo, aos cuidados de Iago Pereira.")
H("pl", "address", [P], "Dane do wysyłki:\nBiuro Rachunkowe Nowak\nul. Grunwaldzka 141/3\n80-264 Gdańsk")
H("en", "name-no-cue", [P], "Summarise Okafor's complaint below and suggest how we should respond to him.")
H("en", "obfuscated", [P], "text me at 6 1 7 - 5 5 5 - 0 1 3 8 if the courier is late")
H("en", "evasion", [P], "SSN: ５１８-２２-４０９１ (copy it into the tax form please)")
H("en", "direct", [P], "The guest wifi at my place is named CasaMorenoNet, can you tell me why my laptop won't join it?")
H("de", "hr", [P], "Personalvorgang: Herr Tobias Vogel, Personalausweisnummer L01X00T471, Adressänderung eingereicht.")
H("ja", "ticket", [P], "お問い合わせ：鈴木一郎様、住所は東京都世田谷区桜新町2丁目14番3号です。")
H("en", "log", [P], "Jun 11 08:14:02 web-3 app[212]: password reset requested for email=tomasz.wrobel@wp.pl from 91.204.18.77")
H("fr", "address", [P], "Expédier à : Résidence Les Pins, bât. C, 12 chemin de la Source, 13090 Aix-en-Provence, Mme Léa Fabre")
H("en", "obfuscated", [P], "reach me at d_morgan77 at yahoo dot co dot uk")
# held phi
H("de", "clinical", [M], "Entlassbrief: Frau Helga Schmitt, geb. 21.06.1949, stationär wegen dekompensierter Herzinsuffizienz, Torasemid erhöht.")
H("fr", "clinical", [M], "Lettre de liaison : M. Bernard Lefebvre, né le 9 février 1955, suivi pour une BPCO, spirométrie le 12 avril.")
H("es", "clinical", [M], "Alta hospitalaria: el paciente Andrés Molina, 61 años, NHC 55102983, ingresó por un ictus isquémico.")
H("pt", "clinical", [M], "Relatório: a utente Carla Nunes, nascida a 14/02/1979, tem hipotiroidismo e faz levotiroxina 75 mcg.")
H("it", "clinical", [M], "Referto: la signora Francesca Moretti, nata il 30/11/1972, presenta un nodulo tiroideo di 12 mm.")
H("nl", "clinical", [M], "Verwijsbrief: de heer Pieter Mulder, geboren 17-08-1960, bekend met COPD, graag beoordeling longarts.")
H("pl", "clinical", [M], "Skierowanie: pacjentka Ewa Kamińska, ur. 04.05.1983, podejrzenie niedoczynności tarczycy.")
H("ja", "clinical", [M], "紹介状：田中美咲 様（1988年7月9日生）、気管支喘息で吸入薬を処方中です。")
H("en", "first-person", [M], "I was diagnosed with bipolar II last spring and I'm on lamotrigine, is it safe to drink coffee?")
H("es", "first-person", [M], "Tengo hipotiroidismo y mi endocrino me subió la dosis de Eutirox, ¿es normal estar tan cansada?")
H("it", "first-person", [M], "Mio padre ha il morbo di Parkinson e non riesce più a prendere le pastiglie da solo.")
H("nl", "first-person", [M], "Mijn zoon heeft epilepsie en de neuroloog wil zijn medicatie aanpassen.")
H("en", "calendar", [M], "Thu 9:15 - Dr. Alvarez, dermatology, biopsy results. Move my 9:00 standup.")
H("en", "referred", [M], "Can you pull my fingerprint template off the old laptop before I hand it back?")
H("en", "claim", [M, F], "Claim number 9043-77812: the insured had an MRI of the lumbar spine on 20 June, reimbursement pending.")
H("fr", "first-person", [M], "Ma fille a une maladie cœliaque, pouvez-vous m'aider à écrire un mot pour la cantine ?")
# held financial
H("en", "direct", [F], "Borrower states $85,000 annual income and two years at the current employer.")
H("de", "first-person", [F], "Ich verdiene 3.900 Euro netto im Monat, wie viel Miete kann ich mir leisten?")
H("es", "first-person", [F], "Mi sueldo es de 2.100 euros al mes, ¿cuánto puedo ahorrar para la entrada del piso?")
H("it", "first-person", [F], "Guadagno 1.800 euro al mese, conviene aprire un fondo pensione?")
H("pl", "first-person", [F], "Moja pensja to 9 200 zł netto, ile mogę odkładać na emeryturę?")
H("pt", "crm", [F], f"Reembolso para o IBAN {iban('PT', '000201231234567890154')}, titular Miguel Rocha.")
H("en", "referred", [F], "my salary is a bit under ninety thousand, can I afford a 400k mortgage?")
H("en", "evasion", [F], "please charge " + "".join(c + "\u200b" for c in luhn("453987612345678")) + " for the upgrade")
H("fr", "crm", [F], f"Prélèvement refusé sur le compte {iban('FR', '20041010050500013M02606')}, rappeler le client.")
H("ja", "first-person", [F], "私の月収は手取りで28万円です。貯金はいくらくらいが目安ですか？")
H("en", "direct", [F], "Policy number HX-448190-22 was cancelled by mistake, can you reinstate it?")
# held secret
H("en", "config", [S], "terraform apply fails:\nprovider \"digitalocean\" { token = \"dop_v1_3a7e9c1f5b2d8046e1a3c5b7d9f0e2a4c6b8d0f1e3a5c7b9d1f3e5a7c9b0d2f4\" }")
H("en", "direct", [S], "activation code from the vendor: KEY-P8RT-4VXZ-J2MQ-7NWC, it says already used")
H("en", "config", [S], "SHOPIFY_ACCESS_TOKEN=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\nwhy 401?")
H("en", "config", [S], "GH_TOKEN=ghp_R8kZ2mQ7xL4tW9vB1nC6yP3sD5fH0jK2aE7u\ngh auth status says invalid")
H("en", "config", [S], "NEW_RELIC_API_KEY=NRAK-4QZ8M2XK7B1V9C3N6P5R0T2W4Y\nthe exporter won't start")
H("en", "evasion", [S], "secret in the manifest: aws_secret_access_key=" + "d0pYNWtRN0x6VjJtUDlyVDRuQjh3WWMzVmQ2RWYxR2g1SmswTG0y" + " can you decode it?")
H("de", "chat", [S], "Das Passwort für den Router lautet Fz8!kQ2#rT, bitte nicht weitergeben.")
H("it", "chat", [S], "La mia password della posta è Lm4$Vq9!zP e non riesco più ad accedere.")
H("en", "referred", [S], "my security answer is the name of my first car, a red Fiat called Bruno")
H("en", "log", [S], "ERROR smtp auth failed: smtp://billing:Qz7!mR2x9Lp@mail.acme-corp.io:587")
H("en", "config", [S], "PULUMI_ACCESS_TOKEN=pul-7b3e9f1a5c2d8e4b0a6f3c9d1e7b5a2f8c4d0e6b deploy job fails")
H("en", "config", [S], "sentry:\n  auth_token: sntrys_eyJpYXQiOjE3MTAwMDAwMDAsInVybCI6Imh0dHBzOi8vc2VudHJ5LmlvIn0_Qx8Rz2LmX9vT4kPw7sN1cA5bD3eF6gH0jK")
H("fr", "chat", [S], "Le code Wi-Fi de la maison est Zp7#kW2q!R, tu peux le noter pour la baby-sitter ?")
H("en", "config", [S], "LINEAR_API_KEY=lin_api_Qx8Rz2LmX9vT4kPw7sN1cA5bD3eF6gH0jK9mP1rS")
# held confidential
H("en", "marker", [C], "Confidential deck (under NDA with Orbis): pricing for the 2026 enterprise tier. Shorten slide 4.")
H("en", "marker", [C], "Leadership only: we will miss the Q2 target by about 12% and need to reforecast. Rewrite for clarity.")
H("en", "marker", [C], "Internal – do not share with partners: the new SSO feature slips to November. Make this friendlier.")
H("fr", "marker", [C], "Confidentiel – réservé au comité exécutif : projet de rachat de Solvane pour 80 M€. Corrige les fautes.")
H("de", "marker", [C], "Nur für den internen Gebrauch: Der Standort Kassel wird Ende 2025 geschlossen. Bitte umformulieren.")
H("es", "marker", [C], "Uso interno, no compartir con clientes: el lanzamiento de la versión 4 se retrasa a marzo.")
H("it", "marker", [C], "Documento riservato, non divulgare: i ricavi del trimestre sono inferiori del 15% al budget.")
H("nl", "marker", [C], "Intern – niet delen met klanten: de prijsverhoging van 8% gaat in op 1 januari.")
H("pl", "marker", [C], "Ściśle tajne, tylko dla zarządu: rozmowy o przejęciu firmy Kowalczyk Logistyka.")
H("pt", "marker", [C], "Confidencial – apenas para a administração: vamos despedir 45 pessoas em Braga.")
H("en", "no-marker", [C], "Rewrite this for the board: we're quietly preparing to sell the APAC business, target close in Q1, price around $1.1B.")
H("en", "no-marker", [C], "Tighten the memo: our FY results due next month show a $12M loss, far worse than the street expects.")
H("de", "no-marker", [C], "Formuliere die Ankündigung: Wir übernehmen die Firma Halden AG, der Kauf wird erst nächste Woche öffentlich.")
H("it", "no-marker", [C], "Prepara una bozza: a febbraio chiuderemo lo stabilimento di Brescia, i dipendenti non lo sanno ancora.")
H("en", "marker", [C], "Confidential draft of the unannounced merger agreement with Lumen Ltd; check clause 7.")
# held hard negatives
HN("en", "public-figure", "Give me three facts about Barack Obama's time as a senator in Illinois.")
HN("de", "public-figure", "Fasse die wichtigsten Werke von Thomas Mann zusammen.")
HN("fr", "fiction", "Écris une courte scène où Arsène Lupin cambriole un hôtel particulier à Paris.")
HN("es", "public-figure", "¿Por qué es famoso Rafael Nadal en Roland Garros?")
HN("en", "fiction", "Who is Dr. House's best friend in the series and why do they argue?")
HN("en", "place", "10 Downing Street has a famous black door; when was the current one installed?")
HN("en", "test-data", "Add a unit test that uses the card 4242 4242 4242 4242 with any future expiry.")
HN("en", "placeholder", "config.yaml:\n  api_key: <YOUR_API_KEY>\n  region: eu-west-1\nIs this file valid YAML?")
HN("en", "placeholder", "SLACK_BOT_TOKEN=xoxb-your-bot-token-here\nWhere do I get the real one?")
HN("en", "about-format", "How do DigitalOcean personal access tokens differ from OAuth tokens?")
HN("en", "about-confidential", "What is the difference between confidential and secret classification levels?")
HN("es", "about-confidential", "¿Qué significa que un documento sea confidencial según la ISO 27001?")
HN("it", "about-confidential", "Come si scrive un accordo di riservatezza tra due aziende?")
HN("en", "public-finance", "Microsoft announced its acquisition of Activision Blizzard in 2022; summarise the regulatory fight.")
HN("en", "word-problem", "Carlos earns $52,000 a year and gets a 4% raise. What is his new salary?")
HN("en", "medical-question", "What is the usual dose of ibuprofen for adults with a headache?")
HN("it", "medical-question", "Quali sono i sintomi dell'influenza stagionale?")
HN("nl", "medical-question", "Hoe lang duurt het herstel na een knieoperatie gemiddeld?")
HN("pl", "medical-question", "Jakie są objawy niedoboru witaminy D?")
HN("en", "vignette", "A 30-year-old woman presents with fatigue and a TSH of 9.2. Which test should be ordered next?")
HN("en", "code", "API_KEY = os.environ[\"API_KEY\"]  # never hard-code it\nIs this the right pattern?")
HN("de", "salary-stats", "Wie hoch ist das Durchschnittsgehalt eines Lehrers in Bayern?")
HN("pt", "public-figure", "Quem foi Fernando Pessoa e porque usava heterónimos?")
HN("nl", "about-confidential", "Wat betekent 'vertrouwelijk' in een e-mailhandtekening juridisch?")
HN("en", "brand", "Write a tagline for a bakery chain called Mary's Kitchen.")
HN("ja", "public-figure", "夏目漱石の代表作を三つ教えてください。")


# ================================================================= fresh (written after the
# rule changes, scored once: the first-look estimate for unseen phrasing)
def FR(lang, shape, cats, prompt):
    row("fresh", lang, shape, cats, prompt)


def FRN(lang, shape, prompt):
    row("fresh", lang, shape, [], prompt, True)


FR("en", "ticket", [P], "Hi team, order 55120 for Mrs. Oyelaran should ship to Flat 3, 27 Harcourt Terrace, Bristol BS8 4AX instead.")
FR("de", "crm", [P], "Notiz: Herr Dominik Sauer möchte Angebote nur noch per Mail an dominik.sauer@gmx.de erhalten.")
FR("fr", "hr", [P], "RH : Mme Coralie Dupuis, domiciliée 3 impasse des Lilas, 31200 Toulouse, change de poste au 1er mars.")
FR("es", "ticket", [P], "La clienta Nerea Etxeberria dice que su teléfono nuevo es el 688 214 905, actualizad la ficha.")
FR("it", "crm", [P], "Nota: la signora Elena Marchetti chiede di spedire a Corso Vittorio Emanuele 118, 10121 Torino.")
FR("nl", "hr", [P], "Personeelsdossier: Jeroen van Dijk, geboren 22-09-1987, woont sinds kort aan de Bloemstraat 41 in Haarlem.")
FR("pl", "crm", [P], "Klientka Zofia Mazur, tel. 793 118 450, zgłasza brak faktury za marzec.")
FR("pt", "crm", [P], "A cliente Leonor Antunes pede que as faturas sigam para leonor.antunes@sapo.pt.")
FR("en", "log", [P], "audit: 2025-02-11 09:02 export started by user=r.castellanos@hotmail.com from 172.58.14.201")
FR("en", "obfuscated", [P], "ring me on 0 7 9 1 1 4 8 2 6 3 0 tonight")
FR("de", "clinical", [M], "Befund: Frau Renate Hoffmann, geb. 09.01.1952, Mammographie mit suspektem Herd links, Biopsie empfohlen.")
FR("fr", "first-person", [M], "J'ai une sclérose en plaques et mon neurologue veut changer mon traitement, comment en parler au travail ?")
FR("es", "clinical", [M], "Paciente: Óscar Prieto, nacido el 11/04/1970, en seguimiento por insuficiencia renal crónica.")
FR("it", "first-person", [M], "Mia figlia ha il diabete di tipo 1 e a scuola nessuno sa usare il glucometro.")
FR("nl", "first-person", [M], "Mijn vader heeft kanker en ik wil zijn werkgever een mail sturen over zijn behandeling.")
FR("pl", "first-person", [M], "Moja córka ma astmę i potrzebuje zaświadczenia od lekarza dla szkoły.")
FR("en", "calendar", [M], "Reminder Fri 8:40 - Dr. Whitfield, psychiatry review, bring the mood diary.")
FR("pt", "clinical", [M], "Utente Sérgio Lopes, nascido a 02/12/1964, diabetes tipo 2 mal controlada, HbA1c 9,1%.")
FR("en", "direct", [F], "Household income is $74,500 a year and we want to refinance.")
FR("de", "first-person", [F], "Mein Jahresgehalt liegt bei 71.000 Euro brutto, lohnt sich eine Gehaltsverhandlung?")
FR("fr", "crm", [F], f"Le client demande un remboursement sur le compte {iban('FR', '30006000011234567890189')}.")
FR("es", "first-person", [F], "Gano 1.900 euros al mes y pago 750 de alquiler, ¿cómo ahorro más?")
FR("nl", "first-person", [F], "Ik verdien 3.200 euro netto per maand, kan ik een huis kopen?")
FR("en", "crm", [F], "Customer paid with " + card("371449635398431", "-")[:19] + " and wants a partial refund.")
FR("en", "config", [S], "GRAFANA_SERVICE_ACCOUNT_TOKEN=glsa_Qx8Rz2LmX9vT4kPw7sN1cA5bD3eF6gH0_4e7a9c1b dashboards return 401")
FR("en", "config", [S], "mysql://reporting:Hx7!pQ2zL9@db.internal.acme.net:3306/sales is refused, why?")
FR("de", "chat", [S], "Mein Kennwort für das VPN ist Tq4#zM8!wK, warum klappt die Anmeldung nicht?")
FR("es", "chat", [S], "La clave del wifi es Rb7$kP2!xQ, ¿se la doy al técnico?")
FR("en", "config", [S], "DOPPLER_TOKEN=dp.st.prd.Zq8r2LmX9vT4kPw7sN1cA5bD3eF6gH0jK7lM9nP1q")
FR("en", "referred", [S], "for the recovery question I put my grandmother's village, now it says wrong answer")
FR("en", "marker", [C], "Confidential pricing (NDA with Brightline): we drop the mid tier to $19 in April.")
FR("en", "marker", [C], "Exec-only: the Denver office closes in June. Make the note shorter.")
FR("fr", "no-marker", [C], "Nous prévoyons de céder la filiale belge avant l'été ; prépare une FAQ pour les managers.")
FR("de", "marker", [C], "Streng vertraulich: Umsatz im dritten Quartal 9 % unter Plan. Bitte glätten.")
FR("es", "no-marker", [C], "Planeamos cerrar la planta de Zaragoza en octubre, aún no lo saben los empleados.")
FR("nl", "marker", [C], "Vertrouwelijk – alleen voor de directie: overname van Brink Logistiek B.V. in Q2.")
FR("pl", "marker", [C], "Poufne: wyniki za III kwartał są o 20% poniżej prognozy. Popraw styl.")
FRN("en", "public-figure", "What did Winston Churchill say in his 'finest hour' speech?")
FRN("fr", "public-figure", "Qui était Simone Veil et pourquoi est-elle importante ?")
FRN("de", "medical-question", "Welche Nebenwirkungen hat Ibuprofen bei längerer Einnahme?")
FRN("es", "about-confidential", "¿Qué es un acuerdo de confidencialidad y cuándo se firma?")
FRN("en", "placeholder", "export OPENAI_API_KEY=sk-...your key...\nthen run the script")
FRN("en", "test-data", "In the tests use the IBAN from the docs and the card 5555 5555 5555 4444.")
FRN("it", "medical-question", "Quanto dura di solito la febbre con l'influenza?")
FRN("nl", "public-finance", "Philips publiceerde gisteren de kwartaalcijfers; vat ze samen.")
FRN("pl", "public-figure", "Kim była Maria Skłodowska-Curie?")
FRN("en", "fiction", "Write a short scene where Hercule Poirot questions a butler.")
FRN("pt", "word-problem", "O João ganha 1.200 euros por mês e gasta metade. Quanto poupa num ano?")


def main() -> None:
    counts = {"tune": 0, "held": 0, "fresh": 0}
    out = sys.stdout
    for part, lang, shape, cats, prompt, hn in ROWS:
        counts[part] += 1
        rid = f"{part}-{counts[part]:03d}"
        src = f"probe/{shape}/{lang}" + ("/hard-negative" if hn else "")
        out.write(json.dumps({
            "id": rid, "prompt": prompt, "sensitive": bool(cats), "categories": sorted(set(cats)),
            "difficulty": "borderline", "source": src, "injected": False, "lang": lang,
        }, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
