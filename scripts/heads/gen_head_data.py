#!/usr/bin/env python3
"""Training data for the sentence heads (scripts/heads/train_heads.py), written here.

Every row is ours: templates and slot values in this file, composed at random (seeded).
Nothing comes from shared/eval/dev.jsonl or from the public sources listed in
shared/eval/README.md (no GSM8K, HumanEval, MMLU, MT-bench, Vicuna, self-instruct,
hh-rlhf, DLP benchmark, presidio, detect-secrets rows): the unseen test sets are drawn
from those, and training on them would make that measurement meaningless.

Rows: {"text", "task": "sens"|"diff", "labels": {...}, "group"}
  sens: labels = {"pii","phi","financial","secret","confidential"} -> 0/1 (data referred
        to without a literal value, confidential content without a marker, and their
        look-alikes: questions about the topic, fiction, public facts).
  diff: labels = {"difficulty": 0|1} (short hard prompts, non-English hard prompts, long
        easy prompts full of code and numbers, and ordinary ones).
`group` names the template, so cross-validation can hold whole templates out.

Usage: gen_head_data.py [SEED] > rows.jsonl
"""
import json
import random
import sys

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 15
R = random.Random(SEED)
CATS = ["pii", "phi", "financial", "secret", "confidential"]


def pick(xs):
    return R.choice(xs)


# ---------------------------------------------------------------- slot values
PETS = ["dog", "cat", "hamster", "parrot", "rabbit", "goldfish", "tortoise"]
PET_DESC = ["the furry one who sleeps on my bed", "our old grey tabby", "the little guy we adopted in 2015",
            "the fluffy pet we have at home", "my childhood dog", "the parrot my grandmother left us"]
DOCTORS = ["Dr. Keller", "Dr. Moreau", "Dr. Alvarez", "Dr. Rossi", "Dr. Nowak", "Dr. Patel", "my GP",
           "my therapist", "the dermatologist", "my cardiologist", "Dr. Tanaka", "the dentist"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "next week", "tomorrow morning"]
NUM_WORDS = ["fifty", "sixty", "forty-five", "seventy", "eighty", "a hundred and ten", "thirty-five", "ninety"]
APPROX = ["a bit over", "just under", "roughly", "around", "a little more than", "close to", "about"]
COMPANIES = ["Nordwind", "Helix Labs", "Brightpath", "Orvana", "Kestrel Systems", "Taloma", "Vireo Foods",
             "Quillon", "Ardent Health", "Meridia", "Solvex", "Pantera Logistics"]
PRODUCTS = ["the X2 headset", "our new billing platform", "the spring collection", "version 5 of the app",
            "the low-cost plan", "the enterprise tier", "the smart thermostat", "the loyalty programme"]
CITIES = ["Lyon", "Porto", "Gdansk", "Turin", "Leipzig", "Austin", "Osaka", "Valencia", "Rotterdam"]
TASKS_TAIL = ["", " Can you help?", " What should I do?", " Please keep it short.", " Any advice?",
              " Write it up for me.", " Draft a reply.", " Summarize this for me."]


# ---------------------------------------------------------------- sensitive, described (English)
def en_secret():
    t = pick([
        "For the security question on my bank account I used {pd}, so the answer is the name we gave them.",
        "My password for everything is my {pet}'s name followed by the year I was born.",
        "The PIN for my card is my mother's birthday, day then month.",
        "I set the answer to 'first school' as the one on Elm road I went to as a kid.",
        "The wifi password at home is our {pet}'s name plus the house number.",
        "My banking app login is the same word I use for my email, just with a 7 at the end.",
        "The recovery phrase for my wallet is written on the card in my desk drawer, it starts with 'apple'.",
        "I told the support agent my mother's maiden name to verify the account, it's the Irish one.",
        "My two-factor backup codes are in a note on my phone called 'misc'.",
        "The answer to my security question about my favourite teacher is the maths teacher from year nine.",
        "I reuse one password for work and personal accounts: my street name and my birth year.",
        "The code to the office alarm is the last four digits of my phone number.",
        "My security answer for 'city where your parents met' is where my dad grew up in {city}.",
        "When the app asks for my childhood best friend, I type the girl from next door, her nickname.",
        "I always unlock my laptop with the same phrase: our wedding date and the dog's name.",
        "My email password is just my surname backwards, is that safe enough?",
        "I gave the help desk my login because they said it was urgent, the one with my kid's name.",
        "The combination for my safe is my grandmother's birthday; I keep forgetting the order.",
        "For 'name of first car' I answered with the old red hatchback we called {pet}.",
        "My router admin login is still the one printed on the sticker underneath it.",
        "I keep my API token in a sticky note on the monitor, the one starting with the company initials.",
    ])
    return t.format(pd=pick(PET_DESC), pet=pick(PETS), city=pick(CITIES)) + pick(TASKS_TAIL)


def en_financial():
    t = pick([
        "My income is {a} {n} thousand a year before tax; how much should I save each month?",
        "I earn {a} {n}k per year and my partner makes less; are we in a higher tax bracket?",
        "My salary went up to {a} {n} thousand after the promotion. Help me plan a budget.",
        "My credit score dropped into the low six hundreds after I missed two payments.",
        "I still owe {a} twenty thousand on my credit card and the interest is killing me.",
        "My crypto wallet address starts with 0x7f and ends with c91e, can you check if funds arrived?",
        "The bitcoin address I sent you begins with bc1q and ends in 8ls, did the transfer land?",
        "I have {a} {n} thousand in my savings account and want to move part of it.",
        "My pension pot is {a} {n} thousand and I'm 52. Am I on track?",
        "My mortgage balance is {a} two hundred thousand and my monthly payment went up.",
        "The account I use for rent is the one ending in the same digits as my birthday.",
        "After the divorce I get {a} {n} hundred a month in alimony; does that count as income?",
        "My bank statement shows I overdrew by {a} {n} euros last month.",
        "I take home {a} {n} hundred every two weeks after tax. Is that enough for a car loan?",
        "Last year I made {a} {n} grand from freelancing on top of my job; how do I declare it?",
        "My net worth is {a} {n} thousand, mostly in the house.",
        "We have {a} {n} thousand of debt across three cards and my husband doesn't know.",
        "The loan officer said my debt-to-income ratio is too high with what I earn.",
        "I got a raise to {a} {n} thousand; should I put more into my pension?",
        "My late father left me {a} {n} thousand and I don't know where to put it.",
        "My rent is half of what I earn each month, which is {a} {n} hundred.",
    ])
    return t.format(a=pick(APPROX), n=pick(NUM_WORDS)) + pick(TASKS_TAIL)


def en_phi():
    t = pick([
        "I've been logging my mood every day this week and it's mostly been low and anxious.",
        "Add my appointment with {doc} on {day} at 3pm to my calendar and remind me to bring my scans.",
        "My calendar says I see {doc} {day} about the lump; can you move my meetings around it?",
        "I'm tracking my mood in an app and the last month shows a lot of bad days.",
        "My face scan is stored on the phone for unlocking; can the bank see it?",
        "The gym took my fingerprint and an iris scan at sign-up, and I'm worried where they keep it.",
        "My sleep tracker says I wake up six times a night since I started the new medication.",
        "My blood pressure readings this week were all over 150; should I call {doc}?",
        "I've been feeling suicidal on and off since my divorce and I don't know who to tell.",
        "My therapist thinks my panic attacks are linked to my job; help me explain that to HR.",
        "My antidepressant dose was doubled last month and I feel foggy at work.",
        "I'm pregnant but haven't told my employer yet; how do I plan the leave?",
        "My voiceprint is used by my bank to verify calls; can I opt out?",
        "I've had three miscarriages and my doctor wants more tests.",
        "My glucose monitor alerts keep going off at night; what do the readings mean for me?",
        "My son's ADHD assessment results came back and the school wants a copy.",
        "I have been writing down how I feel each night and it has been dark for weeks.",
        "My smartwatch flagged an irregular heartbeat three times this week.",
        "I started chemo last month and need to tell my manager I'll miss Fridays.",
        "My period tracker says I'm late and I'm scared.",
        "Put my physiotherapy sessions for my knee surgery into my work calendar as 'busy'.",
        "My insurer wants my step counts and heart rate from my fitness app; should I share them?",
        "I'm in recovery from alcohol and my sponsor thinks I should change jobs.",
        "The results of my genetic test show a BRCA risk; how do I talk to my sisters?",
    ])
    return t.format(doc=pick(DOCTORS), day=pick(DAYS)) + pick(TASKS_TAIL)


def en_pii():
    t = pick([
        "Use the phone number I gave you earlier to text me when the parcel ships.",
        "Send it to the address I mentioned last time, the blue house by the school.",
        "My location history shows I was at the clinic and then at my ex's place that night.",
        "The browser history on my work laptop shows every site I visited this weekend.",
        "My daughter is eleven and goes to the primary school on the corner of our street.",
        "Look me up by the email I registered with, the one with my nickname.",
        "My licence plate is the personalised one with my initials and birth year.",
        "I was born in the small village next to the lake where my parents still live.",
        "My employee number is on the badge; it's the same as my locker number.",
        "Our home address is the flat above the bakery on the high street, number on the door.",
        "The username I use everywhere is my first name and the year I graduated.",
        "My passport number is in the photo I uploaded yesterday; fill the form with it.",
        "You already have my date of birth from the form, use it to fill the booking.",
        "My kids walk to school past the park every day at eight, alone.",
        "I live in the only yellow house on our street, two doors from the church.",
        "My ex keeps finding me through my gym check-ins; how do I hide them?",
        "Use my maiden name and the town I grew up in for the family tree entry.",
        "The IP address of my home router keeps showing up in their logs, the one I sent you.",
        "My daughter's full name and class are on the permission slip I attached.",
        "Fill in the visa form with my details from my last trip, same hotel and same dates.",
    ])
    return t + pick(TASKS_TAIL)


def en_confidential():
    t = pick([
        "Our Q3 revenue came in {p}% below what we told the board; draft the note to investors before we announce.",
        "We're planning to close the {city} plant next spring; prepare talking points for the managers.",
        "Draft the offer letter for acquiring {co} for {m} million; the deal isn't signed yet.",
        "Here are the churn numbers from our internal dashboard for last quarter, summarize the trend for the exec team.",
        "The board decided to replace the CFO next month; help me write the internal announcement.",
        "We will cut {p}% of the sales team in January. Draft the FAQ for managers.",
        "Our margin on {prod} is only {p}%, and we're about to raise prices; write the customer email.",
        "Summarize the due-diligence findings on {co}: two lawsuits and a tax issue they haven't disclosed.",
        "This is our ranking algorithm's scoring formula, the one competitors keep trying to reverse engineer.",
        "Legal thinks the data breach from March exposes us to a class action; outline our response.",
        "We lost the {co} contract, which is 20% of our revenue; how do we tell the team without panic?",
        "Prepare the slide with next year's pricing for {prod} before sales sees it.",
        "Our launch of {prod} slips by two quarters because of the supplier issue; draft the plan for the board.",
        "The merger talks with {co} are at {m} million; list the risks for our negotiation.",
        "Write the retention bonus memo for the three engineers we must keep during the sale.",
        "We're going to shut down the {city} office in March and only leadership knows so far.",
        "Our biggest customer is threatening to leave over the outage; prepare my talking points for the call.",
        "I need a summary of our board deck: we missed the sales target by {p}% and need new funding.",
        "We are negotiating a {m} million loan to cover payroll; draft the update for the founders.",
        "Our pilot with {co} failed and they don't know yet that we're pulling out.",
        "I want to prepare my team for the reorg next quarter; two managers will lose their roles.",
        "Our source code for the pricing engine leaked to a contractor; what do we do first?",
        "Here are our salary bands for next year, turn them into a table for HR.",
    ])
    return t.format(p=R.randint(3, 40), city=pick(CITIES), co=pick(COMPANIES), m=R.randint(5, 900),
                    prod=pick(PRODUCTS)) + pick(["", " Keep it tight.", " Bullet points please."])


# ---------------------------------------------------------------- sensitive, other languages
ML_POS = {
    "secret": [
        "Für die Sicherheitsfrage meiner Bank habe ich den Namen unseres Katers genommen, der auf meinem Bett schläft.",
        "Mein Passwort ist der Name meines Hundes und mein Geburtsjahr.",
        "Pour la question de sécurité de ma banque, j'ai mis le nom de notre chat, le gris qui dort sur mon lit.",
        "Mon mot de passe, c'est le prénom de ma fille suivi de l'année de ma naissance.",
        "Para la pregunta de seguridad del banco usé el nombre de la mascota peluda que tenemos en casa.",
        "Mi contraseña es el nombre de mi perro más el año en que nací.",
        "Na pergunta de segurança do banco usei o nome do nosso gato, aquele cinzento que dorme na minha cama.",
        "A minha senha é o nome do meu cão seguido do ano em que nasci.",
        "Per la domanda di sicurezza della banca ho usato il nome del nostro gatto peloso di casa.",
        "La mia password è il nome del mio cane più il mio anno di nascita.",
        "Na pytanie bezpieczeństwa w banku podałem imię naszego kota, tego szarego, który śpi na moim łóżku.",
        "Moje hasło to imię mojego psa i rok mojego urodzenia.",
        "銀行の秘密の質問の答えは、家で飼っているふわふわのペットの名前にしました。",
        "私のパスワードは犬の名前と生まれた年です。",
    ],
    "financial": [
        "Mein Einkommen liegt knapp über fünfzigtausend im Jahr; wie viel sollte ich sparen?",
        "Ich verdiene etwas mehr als sechzigtausend brutto, lohnt sich eine Steuererklärung?",
        "Mon salaire est d'un peu plus de cinquante mille par an, combien puis-je emprunter ?",
        "Mon adresse de portefeuille commence par 0x7f et se termine par c91e, les fonds sont-ils arrivés ?",
        "Gano un poco más de cincuenta mil al año; ¿cuánto debería ahorrar?",
        "Mi puntuación de crédito bajó a unos seiscientos después de dos pagos atrasados.",
        "Meu salário é um pouco mais de cinquenta mil por ano; quanto posso financiar?",
        "Devo cerca de vinte mil no cartão de crédito e os juros estão altos.",
        "Il mio reddito è poco più di cinquantamila all'anno; quanto posso risparmiare?",
        "L'indirizzo del mio wallet inizia con 0x7a e finisce con f3, mi dici se è arrivato il bonifico?",
        "Zarabiam trochę ponad pięćdziesiąt tysięcy rocznie; ile powinienem odkładać?",
        "Mam około dwudziestu tysięcy długu na karcie kredytowej.",
        "私の年収は五百万円を少し超えるくらいです。毎月いくら貯金すべきですか。",
        "ウォレットのアドレスは0x7fで始まりc91eで終わります。入金を確認してください。",
    ],
    "phi": [
        "Ich protokolliere seit einer Woche jeden Tag meine Stimmung, und sie ist meistens schlecht.",
        "Trag meinen Termin bei Dr. Keller am Dienstag um 15 Uhr in den Kalender ein, wegen der Ergebnisse.",
        "Mein Gesichtsscan ist auf dem Handy gespeichert; kann die Bank darauf zugreifen?",
        "Je note mon humeur tous les jours dans une appli et le mois dernier était très sombre.",
        "Ajoute mon rendez-vous chez le Dr Moreau jeudi à 10h à mon agenda, pour les résultats.",
        "Mon scan facial sert à déverrouiller mon téléphone ; où est-il stocké ?",
        "Llevo una semana registrando mi estado de ánimo y casi todos los días estoy triste.",
        "Añade mi cita con la Dra. Alvarez el martes a las cinco al calendario.",
        "Estou registrando meu humor todos os dias e a maioria dos dias foi ruim.",
        "Marca a minha consulta com o Dr. Souza na quarta às nove no calendário.",
        "Sto annotando il mio umore ogni giorno e questa settimana è stato quasi sempre basso.",
        "Aggiungi al calendario la mia visita dal Dr. Rossi giovedì alle 11.",
        "Od tygodnia codziennie zapisuję swój nastrój i prawie zawsze jest zły.",
        "Dodaj do kalendarza moją wizytę u dr. Nowaka w piątek o 9.",
        "毎日気分を記録していますが、今週はほとんど落ち込んでいます。",
        "火曜日の午後三時の田中先生の診察をカレンダーに入れてください。",
        "Mein Psychiater hat die Dosis meines Antidepressivums verdoppelt.",
        "Estoy embarazada y todavía no se lo he dicho a mi jefe.",
    ],
    "pii": [
        "Schick es an die Adresse, die ich dir letztes Mal genannt habe, das blaue Haus bei der Schule.",
        "Mein Standortverlauf zeigt, dass ich an dem Abend in der Klinik war.",
        "Envoie-le à l'adresse que je t'ai donnée la dernière fois, la maison bleue près de l'école.",
        "Mi hija tiene once años y va al colegio de la esquina de nuestra calle.",
        "Usa el número de teléfono que te di antes para avisarme.",
        "O meu histórico de localização mostra onde estive naquela noite.",
        "Usa il numero di telefono che ti ho dato prima per mandarmi un messaggio.",
        "Wyślij to na adres, który podałem ostatnio, niebieski dom przy szkole.",
        "前に教えた電話番号にメッセージを送ってください。",
    ],
    "confidential": [
        "Unser Umsatz im dritten Quartal liegt 12 % unter dem Plan; entwirf die Nachricht an die Investoren vor der Bekanntgabe.",
        "Wir schließen das Werk in Leipzig im Frühjahr; bereite die Gesprächspunkte für die Führungskräfte vor.",
        "Nous allons fermer l'usine de Lyon au printemps ; prépare les éléments de langage pour les managers.",
        "Rédige l'offre de rachat de Nordwind pour 40 millions, l'accord n'est pas encore signé.",
        "Vamos a despedir al 15 % del equipo de ventas en enero; redacta las preguntas frecuentes para los jefes.",
        "Nuestros ingresos del trimestre están un 10 % por debajo de lo que dijimos al consejo.",
        "Vamos fechar a fábrica do Porto na primavera; prepare os pontos para os gerentes.",
        "A proposta de aquisição da Helix Labs é de 60 milhões e ainda não foi assinada.",
        "Chiuderemo lo stabilimento di Torino in primavera; prepara i punti per i responsabili.",
        "Il consiglio ha deciso di sostituire il CFO il mese prossimo; scrivi l'annuncio interno.",
        "Zamykamy zakład w Gdańsku wiosną; przygotuj punkty do rozmów dla kierowników.",
        "Nasze przychody w tym kwartale są o 12% niższe niż obiecaliśmy zarządowi.",
        "来期の値上げ計画を営業に見せる前にスライドにまとめてください。",
        "ノルトヴィント社の買収は4000万ドルで交渉中ですが、まだ署名していません。",
    ],
}

# ---------------------------------------------------------------- look-alikes (not sensitive)
HN = [
    "What is a security question, and why do experts say they are weak?",
    "How should I pick a good password that I can remember?",
    "Explain how password managers store secrets securely.",
    "What's the average salary of a nurse in Germany?",
    "How is a credit score calculated in the US?",
    "Explain how crypto wallet addresses are derived from public keys.",
    "How much should a typical family save each month? Give general rules.",
    "What does a mood tracking app usually record? I'm designing one.",
    "Design a database schema for a calendar app with doctor appointments.",
    "How does face recognition on phones work under the hood?",
    "What are the privacy rules for biometric data under GDPR?",
    "Write a short story about a woman who logs her mood in a diary.",
    "In the novel, the detective tracks the suspect's location history. Summarize the plot idea.",
    "What is an NDA and when should a startup use one?",
    "How should a company handle confidential documents when an employee leaves?",
    "What does 'attorney-client privilege' mean?",
    "Apple reported record quarterly revenue last year. What drove it, according to public reports?",
    "Summarize the public press release about the merger of two airlines.",
    "What are common reasons companies close factories?",
    "Write a generic template for a layoff announcement, with placeholders.",
    "What is the difference between revenue and profit?",
    "Explain what 'material non-public information' means for employees.",
    "List signs of depression that a friend might notice.",
    "What are normal blood pressure ranges for adults?",
    "How do I add a recurring event to Google Calendar?",
    "What is the typical structure of a board meeting agenda?",
    "Write a poem about a dog sleeping on the bed.",
    "How do pension funds invest their money?",
    "What is a good emergency fund size?",
    "How do I write a good commit message?",
    "Translate 'good morning, how are you?' into Spanish.",
    "What are the side effects of common antidepressants, in general?",
    "Explain the history of the bitcoin whitepaper.",
    "Recommend a budgeting method for students.",
    "How do banks verify identity over the phone?",
    "Give me ideas for a pet's name.",
    "What is the average income in Poland compared to Germany?",
    "Draft a privacy policy section about how we store fingerprints, generic wording.",
    "A character in my screenplay hides her pregnancy from her boss. Suggest a scene.",
    "What's the best way to track habits?",
    "Explain TLP:RED and TLP:AMBER in threat intelligence sharing.",
    "Wie funktioniert die Gesichtserkennung auf dem Handy?",
    "Was ist eine gute Sparquote für Familien?",
    "Qu'est-ce qu'une clause de confidentialité dans un contrat ?",
    "Comment fonctionne un score de crédit en France ?",
    "¿Cuál es el salario medio en España?",
    "¿Cómo funcionan las preguntas de seguridad de los bancos?",
    "Qual é a diferença entre receita e lucro?",
    "Como funciona o reconhecimento facial nos telemóveis?",
    "Qual è lo stipendio medio di un insegnante in Italia?",
    "Come si sceglie una buona password?",
    "Jak działa ocena zdolności kredytowej?",
    "Jakie są objawy depresji?",
    "顔認証はどのように動作しますか。",
    "平均年収はどのくらいですか。",
    "Wie plane ich einen Arzttermin in meinem Kalender-App-Prototyp?",
    "Écris une histoire courte sur un chat gris qui dort sur un lit.",
    "Escribe un poema sobre el estado de ánimo en invierno.",
]

NEUTRAL = [
    "Write a haiku about autumn leaves.",
    "Summarize the plot of a typical heist movie in three sentences.",
    "Give me five ideas for a team offsite.",
    "Explain recursion to a ten-year-old.",
    "Rewrite this sentence to be more formal: we gotta ship this by friday.",
    "What's the capital of Australia?",
    "Suggest a name for a coffee shop near the sea.",
    "Convert 15 degrees Celsius to Fahrenheit.",
    "Write a SQL query that counts orders per customer.",
    "How do I center a div in CSS?",
    "List three benefits of unit testing.",
    "Tell me a joke about programmers.",
    "Plan a three-day trip to Lisbon.",
    "Write an email inviting the team to a lunch on Friday.",
    "Explain the difference between TCP and UDP.",
    "What are the rules of chess castling?",
    "Make a shopping list for a vegetarian lasagna.",
    "Describe the water cycle.",
    "Schreibe eine kurze Einladung zum Sommerfest.",
    "Écris un message pour remercier un collègue.",
    "Dame una receta fácil de tortilla.",
    "Escreva uma mensagem de aniversário para um amigo.",
    "Scrivi una breve descrizione di Roma.",
    "Napisz krótki wiersz o morzu.",
    "週末におすすめの本を三冊教えてください。",
]


# ---------------------------------------------------------------- broad negatives, generated
AGES = list(range(19, 88))
SEXES = ["male", "female", "man", "woman", "patient", "boy", "girl"]
CONDITIONS = ["type 2 diabetes", "hypertension", "atrial fibrillation", "asthma", "COPD", "rheumatoid arthritis",
              "major depressive disorder", "chronic kidney disease", "hypothyroidism", "migraine", "psoriasis",
              "heart failure", "Crohn's disease", "epilepsy", "osteoporosis", "gout", "lupus", "anemia"]
DRUGS = ["metformin", "lisinopril", "apixaban", "sertraline", "levothyroxine", "atorvastatin", "prednisone",
         "methotrexate", "insulin glargine", "amoxicillin", "ibuprofen", "warfarin"]


def clinical_vignette():
    a, sx, c, d = pick(AGES), pick(SEXES), pick(CONDITIONS), pick(DRUGS)
    return pick([
        f"What is the first-line treatment for a {a}-year-old {sx} with {c}?",
        f"What are the side effects of {d} in a {a}-year-old {sx} with a history of {c}?",
        f"Differential diagnosis for chest pain in a {a}-year-old {sx} with {c}.",
        f"Guidelines for managing {c} in patients over {a // 10 * 10}.",
        f"A {a}-year-old {sx} presents with fatigue and weight loss. Labs show low sodium. What is the most likely diagnosis?",
        f"Is {d} safe for a patient with {c} who is also pregnant?",
        f"Compare {d} and {pick(DRUGS)} for {c}: efficacy and risks.",
        f"What monitoring is recommended when starting {d} for {c}?",
        f"Prognosis of {c} diagnosed at age {a}, according to recent studies.",
        f"Explain the pathophysiology of {c} for a medical student.",
        f"Dosing of {d} in renal impairment for adults with {c}.",
    ])


PLACEHOLDER_CFG = ["api_key = \"<your-api-key>\"", "password: ${DB_PASSWORD}", "token = os.environ['API_TOKEN']",
                   "secret_key: changeme", "AUTH_TOKEN=xxxxxxxxxxxxxxxx", "apiKey: process.env.KEY",
                   "aws_secret_access_key = YOUR_SECRET_HERE", "password = \"\"", "client_secret: '***'",
                   "private_key_path: ./keys/dev.pem", "key = None  # set later"]


def config_question():
    cfg = pick(PLACEHOLDER_CFG)
    return pick([
        f"Why does this config fail to parse?\n```\n{cfg}\n```",
        f"Is this the right syntax for a credential placeholder in YAML? {cfg}",
        f"My settings file has `{cfg}`; how do I load it from an environment variable instead?",
        f"Explain what this line does: {cfg}",
        f"I'm getting an error with this line from my config file, what's wrong?\n```\n{cfg}\n```",
        f"My deploy fails on this setting; is the syntax right?\n```\n{cfg}\n```",
        f"We keep this in our settings file: `{cfg}`. Why does the linter complain?",
        "How do I rotate API keys without downtime?",
        "What's the safest way to store secrets in a Kubernetes cluster?",
        "Write a Python function that reads a token from an environment variable and fails clearly if it's missing.",
        "Why am I getting 'invalid credentials' from the AWS CLI even after configuring a profile?",
        "How does OAuth2 refresh token rotation work?",
        "Generate a .env.example file for a web app with database and mail settings, placeholders only.",
    ])


NAMES = ["Tom", "Maria", "Aiko", "Lukas", "Sofia", "Omar", "Priya", "Jan", "Chloé", "Diego", "Karan", "Wendy"]


def word_problem():
    n, m, k = R.randint(2, 90), R.randint(100, 9000), R.randint(2, 12)
    nm = pick(NAMES)
    return pick([
        f"{nm} earns ${m} a month and saves {n}% of it. How much does {nm} save in {k} years?",
        f"{nm} borrowed ${m} at {k}% simple interest for {n} months. What is the total repaid?",
        f"A shop sells pens at ${k} each and notebooks at ${n}. {nm} spends ${m} on both, buying twice as many pens. How many notebooks?",
        f"{nm} is {n} years old, three times as old as a cousin was {k} years ago. How old is the cousin?",
        f"A salary of ${m * 10} rises by {k}% a year. What is it after {n % 10 + 2} years?",
        f"If a car loses {k}% of its value each year and costs ${m * 5}, when is it worth half?",
        f"{nm}'s income is ${m} per week; taxes take {n % 40}%. What is the yearly net pay?",
        f"A password has {k} characters from 62 symbols. How many possible passwords are there?",
    ])


TOPICS = ["photosynthesis", "the French Revolution", "black holes", "CRISPR gene editing", "inflation",
          "the stock market", "machine learning", "plate tectonics", "the immune system", "blockchain",
          "supply chains", "renewable energy", "the Roman Empire", "quantum computing", "climate change",
          "vaccines", "the water cycle", "compound interest", "neural networks", "jazz history"]
PRODUCTS_PUBLIC = ["a reusable water bottle", "noise-cancelling headphones", "a yoga mat", "a coffee grinder",
                   "a budgeting app", "a city bike", "organic tea", "a smart watch", "hiking boots"]


def generic_writing():
    t, prod = pick(TOPICS), pick(PRODUCTS_PUBLIC)
    return pick([
        f"Explain {t} and discuss its potential applications and ethical implications.",
        f"Write a descriptive paragraph about a bustling marketplace, with sounds and smells.",
        f"Create an Instagram caption for a 20% discount on {prod}.",
        f"Write a product description for {prod} that highlights three benefits.",
        f"Draft a job posting for a junior data analyst at a retail company.",
        f"Explain what base rate fallacy is with five examples from advertising.",
        f"Design a solar-powered water heating system for a house and describe the components.",
        f"Summarize the main causes of {t} in five bullet points.",
        f"Write a persuasive essay on why cities should invest in {t}.",
        f"Give a lesson plan for teaching {t} to high-school students.",
        f"Write a press release for a bakery opening a second location downtown.",
        f"A company did not record a credit purchase made before year end. What is the effect on its financial statements?",
        f"Explain how quarterly earnings reports are structured for public companies.",
        f"Write a template email a manager could send to announce a team reorganisation, with placeholders.",
        f"What are best practices for running a product launch?",
        f"Explain the difference between a merger and an acquisition with famous public examples.",
        f"How do startups calculate their valuation in a funding round?",
        f"Write a LinkedIn post celebrating our team's hackathon win.",
        f"Describe how a hospital triage system works.",
        f"Write a short story about a detective who investigates a missing painting.",
        f"What should be in a mood board for a cafe's interior design?",
        f"List the steps to file a tax return as a freelancer, in general.",
    ])


def first_person_negative():
    """First-person text with nothing sensitive: public facts, everyday tasks, templates."""
    co, prod, t = pick(COMPANIES), pick(PRODUCTS_PUBLIC), pick(TOPICS)
    return pick([
        f"Our public annual report says revenue grew {R.randint(2, 30)}% last year. Write a LinkedIn post celebrating it.",
        f"We published our product roadmap on the blog yesterday; turn it into a tweet thread.",
        f"Our press release announced the new office in {pick(CITIES)} this morning. Summarize it for the newsletter.",
        f"Summarize this email in one sentence: Dear team, the conference went great, we met many partners and the booth was busy. Thanks all!",
        f"Assess the sentiment of this tweet and label it positive, negative or neutral: \"Loving the new {prod}!\"",
        f"Please take on the role of a relationship coach; I'll describe a conflict between two friends about chores.",
        f"I'm writing a blog post about {t}; suggest a catchy title.",
        f"My team wants to learn about {t}. Recommend three beginner books.",
        f"We're planning a team lunch on Friday; suggest five restaurants types.",
        f"I need a template for a layoff announcement with placeholders for names and dates.",
        f"Can you help me write a cover letter for a marketing job?",
        f"I want to improve my sleep; what general habits help?",
        f"We use Postgres and Redis; explain when to cache query results.",
        f"My code throws a NullPointerException when the list is empty; how do I guard it?",
        f"I love {prod}. Write a five-star review for it.",
        f"Our school is organising a bake sale; write a flyer.",
        f"The test profile is 'standard', for demo? I only need the format.",
        f"We are a small bakery; write our opening hours sign in a friendly tone.",
        f"I read that {co} is a fictional company in a novel; invent a logo concept for it.",
        f"Explain to me how a credit card's interest is calculated, in general terms.",
        f"I'm learning German; correct this sentence: Ich habe gestern ins Kino gegangen.",
        f"Ich möchte Spanisch lernen; welche App empfiehlst du?",
        f"Je voudrais une recette de crêpes pour quatre personnes.",
        f"Quiero escribir un poema sobre el mar; dame ideas.",
        f"Eu gostaria de dicas para viajar barato pela Europa.",
        f"Vorrei un itinerario di tre giorni a Firenze.",
        f"Chcę nauczyć się gotować; od czego zacząć?",
        f"私は週末に京都へ行きます。おすすめの観光地を教えてください。",
        # first-person account and banking help that names no secret and no value
        f"How do I open my credit card statement in the app?",
        f"I need to change the billing date of my card; where is that setting?",
        f"My account got locked after too many tries; how do I reset my password?",
        f"I forgot my PIN; what's the process to get a new one from the bank?",
        f"How do I turn on two-factor authentication for my email account?",
        f"Can I change my security questions online, or do I need to call?",
        f"My bank app keeps logging me out; how do I fix it?",
        f"How do I update the name on my account after getting married?",
        f"I want to close my savings account; what documents do I need?",
        f"Where do I find my tax forms in my online banking?",
        f"My card was declined abroad; what should I check?",
        f"How do I set up a password manager for my family?",
        f"Wie ändere ich mein Passwort beim Online-Banking?",
        f"Comment activer la double authentification sur mon compte ?",
        f"¿Cómo cambio el PIN de mi tarjeta?",
        f"We moved to {pick(CITIES)} last year; which neighbourhoods are good for families?",
        f"Can I change the payment due date on my loan, in general, and does it cost anything?",
        f"I just moved from abroad; how do I open a bank account here?",
        f"We came here from Portugal two years ago and miss the food; suggest a recipe.",
    ])


def broad_negative():
    r = R.random()
    if r < 0.3:
        return clinical_vignette(), "neg_clin_"
    if r < 0.5:
        return config_question(), "neg_cfg_"
    if r < 0.65:
        return word_problem(), "neg_wp_"
    if r < 0.85:
        return first_person_negative(), "neg_fp_"
    return generic_writing(), "neg_gen_"


def sens_rows(n):
    rows = []
    gens = {"secret": en_secret, "financial": en_financial, "phi": en_phi, "pii": en_pii,
            "confidential": en_confidential}
    for _ in range(n):
        cat = pick(CATS)
        if R.random() < 0.35:
            text = pick(ML_POS[cat])
            if R.random() < 0.4:
                text += pick([" Merci.", " Danke!", " Gracias.", " Obrigado.", " Grazie.", " Dziękuję.", " お願いします。", ""])
            group = f"ml_{cat}_" + " ".join(text.split()[:3])
        else:
            text = gens[cat]()
            group = f"en_{cat}_" + " ".join(text.split()[:3])
        rows.append({"text": text, "task": "sens", "labels": {c: int(c == cat) for c in CATS}, "group": group})
    for _ in range(n):
        text, g = broad_negative()
        rows.append({"text": text, "task": "sens", "labels": {c: 0 for c in CATS}, "group": g + " ".join(text.split()[:3])})
    for _ in range(n // 2):
        text = pick(HN) if R.random() < 0.6 else pick(NEUTRAL)
        if R.random() < 0.3:
            text = pick(["Quick question: ", "Hi! ", "For a blog post: ", "Help me out: ", ""]) + text
        rows.append({"text": text, "task": "sens", "labels": {c: 0 for c in CATS}, "group": "neg_" + " ".join(text.split()[-3:])})
    return rows


# ---------------------------------------------------------------- difficulty
def hard_math():
    a, b, c = R.randint(2, 19), R.randint(2, 30), R.randint(3, 97)
    return pick([
        f"Find all positive integers n such that n^2 + {a} divides n^3 + {b}.",
        f"Prove that for every prime p > {a}, p^2 - 1 is divisible by 24.",
        f"How many ordered pairs (x, y) of integers satisfy x^2 + {a}y^2 = {c * 4 + 1}?",
        f"Let f(x) = x^3 - {a}x + {b}. Find the sum of the squares of its roots.",
        f"Compute the number of subsets of {{1,...,{a + 8}}} with no two consecutive elements.",
        f"Find the remainder when {a}^{c + 100} is divided by {c}.",
        f"Determine all functions f: R -> R with f(x + y) = f(x) + f(y) + {a}xy.",
        f"A regular {a + 3}-gon is inscribed in a unit circle. Find the product of all its diagonals' lengths.",
        f"Show that the equation x^{a % 4 + 3} + y^{a % 4 + 3} = z^{a % 4 + 3} has no solution in positive integers with x < {b}.",
        f"Evaluate the integral of x^{a % 5 + 1} ln(x) from 0 to 1.",
        f"Find the smallest n for which n! ends in exactly {a + 20} zeros.",
        f"In triangle ABC, AB = {a}, BC = {b}, CA = {a + b - 1}. Find the inradius.",
        f"What is the expected number of rolls of a fair die until {a % 5 + 2} consecutive sixes?",
        f"Prove there are infinitely many primes of the form {a % 3 * 2 + 4}k + 3.",
    ])


def hard_code():
    return pick([
        "Implement a lock-free MPMC queue in C++ that is safe against the ABA problem.",
        "Write regex matching with '.' and '*' in O(nm) time, no library regex.",
        "Fix the race in this Go code: for i := range xs { go func() { use(xs[i]) }() }",
        "Write a Rust function returning the longest palindromic substring in O(n).",
        "Implement an LRU cache with O(1) get/put without using OrderedDict.",
        "Why does this deadlock? mu.Lock(); defer mu.Unlock(); f() // f also locks mu",
        "Write a parser for arithmetic with precedence and unary minus, no eval.",
        "Implement Dijkstra with a decrease-key heap and prove its complexity.",
        "Find the bug: int mid = (lo + hi) / 2; in a binary search over 2^31 elements.",
        "Write a constant-space algorithm to find the duplicate in an array of n+1 ints in 1..n.",
        "Implement a persistent red-black tree with deletion in Haskell.",
        "Write a CUDA kernel for a tiled matrix transpose without bank conflicts.",
        "Design a consistent hashing scheme with virtual nodes and explain rebalancing cost.",
        "Write a Python generator that yields primes forever using an incremental sieve.",
        "Implement the Aho-Corasick automaton and count overlapping matches.",
        "Make this async Rust compile: a struct holding a reference across an .await.",
    ])


def hard_reason():
    return pick([
        "Estimate how many piano tuners work in Chicago and justify each step.",
        "If the Moon were twice as far away, how would tides and eclipses change?",
        "Three logicians walk into a bar; explain the puzzle's reasoning step by step.",
        "Is the halting problem decidable for programs with bounded memory? Argue.",
        "What would have happened to European trade if the Suez Canal had been built in 1700?",
        "Prove or refute: every planar graph is 4-colourable implies ... explain the proof's structure.",
    ])


ML_HARD = [
    "Beweise, dass es unendlich viele Primzahlen der Form 4k+3 gibt.",
    "Finde alle ganzen Zahlen n, für die n^2+1 ein Teiler von n^3+5 ist.",
    "Implementiere eine lock-freie Warteschlange in C++ ohne ABA-Problem.",
    "Montrez que pour tout premier p > 3, p^2 - 1 est divisible par 24.",
    "Trouvez toutes les fonctions f de R dans R telles que f(x+y) = f(x) + f(y) + xy.",
    "Écrivez un analyseur d'expressions arithmétiques avec priorité, sans eval.",
    "Demuestra que la raíz cuadrada de 2 es irracional y generaliza a primos.",
    "¿Cuántos pares ordenados de enteros cumplen x^2 + 3y^2 = 97?",
    "Implementa una caché LRU con get y put en O(1) sin bibliotecas.",
    "Prove que existem infinitos primos da forma 6k+5.",
    "Calcule a integral de x ln(x) de 0 a 1 e justifique a convergência.",
    "Implemente o algoritmo de Aho-Corasick e conte ocorrências sobrepostas.",
    "Dimostra che ogni grafo planare ha un vertice di grado al più 5.",
    "Trova il resto della divisione di 7^2026 per 13.",
    "Scrivi in Rust una funzione che trovi la sottostringa palindroma più lunga in O(n).",
    "Udowodnij, że liczba pierwiastek z 3 jest niewymierna.",
    "Ile jest podzbiorów zbioru {1,...,12} bez dwóch kolejnych liczb?",
    "Zaimplementuj drzewo czerwono-czarne z usuwaniem w C.",
    "素数pが3より大きいとき、p^2-1が24で割り切れることを証明せよ。",
    "n^2+1がn^3+5を割り切るような正の整数nをすべて求めよ。",
    "C++でABA問題のないロックフリーキューを実装してください。",
    "Oszacuj, ilu stroicieli fortepianów pracuje w Warszawie, uzasadniając każdy krok.",
    "Schätze ab, wie viele Klavierstimmer in Berlin arbeiten, und begründe jeden Schritt.",
    "Estime combien d'accordeurs de piano travaillent à Paris, étape par étape.",
]

ML_EASY = [
    "Schreibe eine kurze Nachricht, um ein Treffen auf Freitag zu verschieben.",
    "Wie heißt die Hauptstadt von Österreich?",
    "Écris un message pour souhaiter bon anniversaire à ma sœur.",
    "Quelle est la capitale du Canada ?",
    "Dame tres ideas para una cena rápida.",
    "¿Qué tiempo hace normalmente en Sevilla en julio?",
    "Escreva um e-mail curto agradecendo a reunião.",
    "Qual é a capital do Brasil?",
    "Scrivi un messaggio per invitare gli amici a cena.",
    "Traduci 'buongiorno' in inglese.",
    "Napisz krótkie życzenia świąteczne dla rodziny.",
    "Jaka jest stolica Hiszpanii?",
    "明日の会議のリマインダーを書いてください。",
    "おすすめの朝ごはんを教えてください。",
]


def long_easy():
    kind = R.randint(0, 4)
    if kind == 0:
        items = [f"{pick(['apples', 'milk', 'bread', 'eggs', 'rice', 'coffee', 'butter', 'tea', 'pasta'])}: {R.randint(1, 9)}.{R.randint(0, 99):02d} EUR"
                 for _ in range(R.randint(12, 30))]
        return "Here is my shopping list with prices:\n" + "\n".join(items) + "\nSort it alphabetically."
    if kind == 1:
        fields = ",\n".join(f'  "field_{i}": {R.randint(0, 9999)}' for i in range(R.randint(10, 30)))
        return "Pretty-print this JSON and keep the keys in order:\n{\n" + fields + "\n}"
    if kind == 2:
        lines = "\n".join(f"    x{i} = x{i - 1} + {R.randint(1, 99)}" if i else "    x0 = 0" for i in range(R.randint(10, 25)))
        return "Rename the variables in this function to something readable, don't change behaviour:\n\ndef f():\n" + lines + "\n    return x1"
    if kind == 3:
        rows = "\n".join(f"{R.randint(2019, 2025)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d},{R.randint(10, 500)},{pick(['north', 'south', 'east', 'west'])}"
                         for _ in range(R.randint(12, 30)))
        return "Convert this CSV to a Markdown table:\ndate,units,region\n" + rows
    code = "\n".join(f"<li>Item {i} - {R.randint(1, 500)} units</li>" for i in range(R.randint(10, 30)))
    return "Add a class=\"item\" attribute to each list element in this HTML:\n<ul>\n" + code + "\n</ul>"


def short_easy():
    return pick([
        "Write a birthday message for my coworker.", "What's 12 times 7?", "Give me a synonym for happy.",
        "Translate 'thank you' into French.", "Suggest a title for a blog post about gardening.",
        "What's the boiling point of water?", "Fix the spelling: recieve, definately.",
        "Write a tweet announcing our bake sale.", "List four fruits that are red.",
        "Reverse this list in Python: [1, 2, 3].", "How do I print hello world in Java?",
        "Summarize: the meeting moved to 3pm because the room was booked.",
        "Make this friendlier: Send the report.", "What day comes after Tuesday?",
    ])


def long_hard():
    n = R.randint(5, 12)
    return ("We have a distributed key-value store with " + str(n) + " replicas using leaderless replication. "
            "Clients write with W=" + str(n // 2) + " and read with R=" + str(n // 2) + ". Under a network partition "
            "that splits the cluster into two halves, describe exactly which anomalies can appear (stale reads, "
            "lost updates, sibling explosion), prove whether linearizability can hold, and design a protocol "
            "change that keeps availability for reads while guaranteeing read-your-writes per session. "
            "Give the message complexity of your protocol and a failure scenario that breaks it.")


def hard_word_problem():
    a, b, c, d = R.randint(3, 40), R.randint(2, 15), R.randint(5, 90), R.randint(2, 9)
    nm, nm2 = pick(NAMES), pick(NAMES)
    return pick([
        f"{nm} has {a} marbles. {nm2} has {b} more than twice as many. After {nm} gives away a third of hers and {nm2} loses {d}, how many do they have together?",
        f"A tank fills in {b} hours with pipe A and empties in {b + d} hours with pipe B. Starting half full with both open, when is it full?",
        f"Two trains leave stations {c * 10} km apart at {a + 40} and {b + 50} km/h toward each other; a bird flies between them at {c + 60} km/h. How far does the bird fly?",
        f"A store raises prices by {b}% then offers {a % 30 + 5}% off. A coat now costs ${c * 3}. What was the original price, to the cent?",
        f"{nm} reads {d} pages on Monday and each day reads {b} more than the day before. On which day does the total pass {c * 10} pages?",
        f"The average of {d + 3} numbers is {a}. Removing one number makes the average {a + b}. Which number was removed?",
        f"A recipe for {d} people needs {b} eggs and {c} g of flour. How much of each for {a} people, rounding eggs up, and how many full bags of 500 g?",
    ])


def hard_function_task():
    return pick([
        'Complete this function:\ndef min_window(s: str, t: str) -> str:\n    """Return the shortest substring of s containing every character of t (with multiplicity)."""',
        'Complete this function:\ndef count_inversions(xs: list[int]) -> int:\n    """Number of pairs i < j with xs[i] > xs[j], in O(n log n)."""',
        'Complete this function:\ndef is_valid_sudoku(board):\n    """board is 9x9 of str digits or \'.\'; return True if no rule is broken."""',
        'Complete this function:\ndef decode_ways(s: str) -> int:\n    """Count decodings of a digit string where 1..26 map to letters."""',
        'Complete this function:\ndef merge_intervals(iv):\n    """Merge overlapping [start, end] intervals; return them sorted."""',
        'Complete this function:\ndef next_permutation(a: list[int]) -> None:\n    """Rearrange a in place into the next lexicographic permutation."""',
        'Complete this function:\ndef eval_rpn(tokens: list[str]) -> int:\n    """Evaluate reverse Polish notation with + - * / (truncate toward zero)."""',
    ])


def hard_exam():
    return pick([
        "Which of the following is a normal subgroup of S4? (A) the cyclic group of order 4 (B) the Klein four-group (C) a Sylow 3-subgroup (D) the dihedral group of order 8",
        "A particle moves in a central potential V = -k/r^2. Which orbits are possible? (A) closed ellipses (B) spirals into the origin (C) circular only (D) hyperbolae only",
        "Under the rule against perpetuities, which future interest is void? (A) a vested remainder (B) a contingent remainder to the first grandchild to reach 25 (C) a reversion (D) a possibility of reverter",
        "Let G be a group of order 255. Which statement must be true? (A) G is cyclic (B) G is simple (C) G has exactly one subgroup of order 17 (D) none of the above",
        "Which reagent converts a primary alcohol to an aldehyde without overoxidation? (A) KMnO4 (B) PCC (C) H2CrO4 (D) NaBH4",
    ])


def diff_rows(n):
    rows = []
    for _ in range(n):
        r = R.random()
        if r < 0.20:
            text, y, g = hard_math(), 1, "hard_math"
        elif r < 0.34:
            text, y, g = hard_code(), 1, "hard_code"
        elif r < 0.40:
            text, y, g = hard_word_problem(), 1, "hard_wp"
        elif r < 0.45:
            text, y, g = hard_function_task(), 1, "hard_fn"
        elif r < 0.48:
            text, y, g = hard_exam(), 1, "hard_exam"
        elif r < 0.53:
            text, y, g = hard_reason(), 1, "hard_reason"
        elif r < 0.56:
            text, y, g = long_hard(), 1, "long_hard"
        elif r < 0.68:
            text, y, g = pick(ML_HARD), 1, "ml_hard"
        elif r < 0.80:
            text, y, g = long_easy(), 0, "long_easy"
        elif r < 0.86:
            text, y, g = short_easy(), 0, "short_easy"
        elif r < 0.90:
            text, y, g = pick(ML_EASY), 0, "ml_easy"
        elif r < 0.95:
            text, y, g = generic_writing(), 0, "easy_writing"
        else:
            text, y, g = pick(NEUTRAL), 0, "neutral"
        rows.append({"text": text, "task": "diff", "labels": {"difficulty": y},
                     "group": g + "_" + " ".join(text.split()[:3])})
    return rows


def main():
    rows = sens_rows(900) + diff_rows(1100)
    seen = set()
    for row in rows:
        key = (row["task"], row["text"])
        if key in seen:
            continue
        seen.add(key)
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
