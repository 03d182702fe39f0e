#!/usr/bin/env python3
"""Synthetic eval rows for the NER detector (dev.jsonl schema), from Faker + own templates.

Positives carry a person's name and/or street address (what the rules tend to miss),
in many locales; hard negatives name public figures, fictional characters, brands and
famous places. Never built from shared/eval data or its listed sources.

Usage: gen_synth.py --seed N --n 400 [--templates dev|heldout] > synth.jsonl
(needs `pip install faker`). "dev" templates were used to tune the cue lists; "heldout"
templates were written afterwards and only measured.
"""
import argparse, json, random
from faker import Faker

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "pl_PL",
           "nl_NL", "sv_SE", "en_IN", "en_AU", "cs_CZ", "tr_TR", "fi_FI", "da_DK"]

POS_NAME = [
    "Can you draft a polite reply to {name} about the delayed refund?",
    "Summarise this ticket: {name} says the app crashes when uploading photos.",
    "Meeting notes: {name} will take over the Henderson account from next week. Rewrite them as bullet points.",
    "{name} asked whether we can move the interview to Thursday. Write a short answer.",
    "Translate into French: {name} will pick up the keys on Monday.",
    "Write a reference letter for {name}, who worked with us as a data analyst for three years.",
    "Please proofread: 'Thank you {name} for attending the onboarding session.'",
    "Our new hire {name} needs a laptop and a badge. Draft the IT request.",
    "Remind {name} that the lease renewal form is due Friday.",
    "Create a birthday message for my colleague {name}.",
]
POS_ADDR = [
    "Please update the shipping address to {addr}.",
    "The package should go to {name}, {addr}. Can you format it as a label?",
    "I moved to {addr} last month; write a note for my bank.",
    "Send the invoice to {name} at {addr} and cc accounting.",
    "Our tenant {name} at {addr} reported a leak. Draft a message to the plumber.",
    "Directions from the station to {addr}, please.",
]
NEG = [
    "Write a short biography of {famous}.",
    "Summarize the plot of the novel in which {fiction} meets {fiction2}.",
    "Compare the marketing strategies of {brand} and {brand2}.",
    "What are the best things to see near {place}?",
    "Who was {famous} and why is {famous_pron} remembered?",
    "Write a poem in the style of {famous}.",
    "In the TV series, why does {fiction} distrust {fiction2}?",
    "How far is {place} from {place2}?",
    "Explain the history of {place}.",
    "Give me three quotes attributed to {famous}.",
    "Is {brand} a good stock to hold long term?",
    "Describe the famous address {famous_addr} and its history.",
]
FAMOUS = ["Abraham Lincoln", "Marie Curie", "Albert Einstein", "Ada Lovelace", "Nelson Mandela",
          "Frida Kahlo", "Winston Churchill", "Leonardo da Vinci", "Angela Merkel", "Barack Obama",
          "Taylor Swift", "Serena Williams", "Isaac Newton", "Jane Austen", "Mahatma Gandhi",
          "Elon Musk", "Simone de Beauvoir", "Gabriel García Márquez", "Haruki Murakami", "Pablo Picasso"]
FICTION = ["Harry Potter", "Hermione Granger", "Sherlock Holmes", "John Watson", "Elizabeth Bennet",
           "Fitzwilliam Darcy", "Atticus Finch", "Jay Gatsby", "Walter White", "Jesse Pinkman",
           "Frodo Baggins", "Katniss Everdeen", "Tony Soprano", "Don Draper", "Leslie Knope"]
BRANDS = ["Procter & Gamble", "Johnson & Johnson", "Ben & Jerry's", "Louis Vuitton", "Ralph Lauren",
          "Hugo Boss", "Tommy Hilfiger", "Calvin Klein", "Marks & Spencer", "Dolce & Gabbana"]
PLACES = ["Times Square", "Baker Street", "Champs-Élysées", "Alexanderplatz", "Piazza Navona",
          "Puerta del Sol", "Copacabana Beach", "Central Park", "Golden Gate Bridge", "Wenceslas Square"]
FAMOUS_ADDR = ["10 Downing Street", "1600 Pennsylvania Avenue", "221B Baker Street", "350 Fifth Avenue"]


# A second template set, written after the detector's cue lists were fixed and never used
# to tune them (--templates heldout): CRM/HR/support phrasing and other hard negatives.
POS_NAME_H = [
    "CRM note: spoke with {name} today, wants a callback next week about the upgrade.",
    "HR case 2231: {name} requested parental leave starting in March. Summarise the policy for them.",
    "Rewrite more formally: hey {name}, the quote you asked for is attached.",
    "Add {name} to the guest list for Saturday and write the invitation.",
    "{name} from finance approved the budget. Tell the team.",
    "Write a welcome email for {name}, who joins the support team on Monday.",
]
POS_ADDR_H = [
    "Customer moved: new address {addr}. Update the record and confirm by letter.",
    "Book a taxi for {name} from {addr} to the airport at 6am.",
    "Where should I park when visiting {addr}?",
]
NEG_H = [
    "Who won the match between {famous} and Roger Federer in 2008?",
    "Write a trivia question about {famous}.",
    "Why did {fiction} betray the fellowship in the film?",
    "Explain the leadership style of {famous} in three paragraphs.",
    "Is a {brand} handbag worth the price?",
    "Plan a walking tour from {place} to {place2}.",
    "Draft a school essay on the life of {famous}.",
    "What did {famous} contribute to science or art?",
    "Recommend podcasts about {famous}.",
    "Describe the architecture around {famous_addr}.",
]


def addr(f):
    try:
        return f"{f.building_number()} {f.street_name()}, {f.city()}"
    except AttributeError:
        return f.street_address()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--templates", choices=["dev", "heldout"], default="dev")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    fakers = {loc: Faker(loc) for loc in LOCALES}
    for f in fakers.values():
        f.seed_instance(a.seed)
    pos_name, pos_addr, neg = (POS_NAME, POS_ADDR, NEG) if a.templates == "dev" else (
        POS_NAME_H, POS_ADDR_H, NEG_H)
    rows = []
    for i in range(a.n):
        loc = rng.choice(LOCALES)
        f = fakers[loc]
        name = f"{f.first_name()} {f.last_name()}"
        kind = rng.random()
        if kind < 0.3:
            t = rng.choice(pos_name)
            rows.append((t.format(name=name), ["pii"], f"synth-name/{loc}"))
        elif kind < 0.5:
            t = rng.choice(pos_addr)
            rows.append((t.format(name=name, addr=addr(f)), ["pii"], f"synth-address/{loc}"))
        else:
            t = rng.choice(neg)
            fa = rng.choice(FAMOUS)
            s = t.format(famous=fa, famous_pron=rng.choice(["she", "he"]),
                         fiction=rng.choice(FICTION), fiction2=rng.choice(FICTION),
                         brand=rng.choice(BRANDS), brand2=rng.choice(BRANDS),
                         place=rng.choice(PLACES), place2=rng.choice(PLACES),
                         famous_addr=rng.choice(FAMOUS_ADDR))
            rows.append((s, [], "synth/hard-negative"))
    for i, (p, cats, src) in enumerate(rows):
        print(json.dumps({"id": f"synth{a.seed}-{i:04d}", "prompt": p, "sensitive": bool(cats),
                          "categories": cats, "difficulty": "easy", "source": src,
                          "injected": False}, ensure_ascii=False))


if __name__ == "__main__":
    main()
