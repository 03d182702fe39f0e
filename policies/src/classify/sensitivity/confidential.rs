//! Confidential business content: markers used as an adjective or an audience line
//! ("Confidential roadmap", "Board-only:", "Internal - not for customers"), and a cue
//! model for unmarked content: a not-yet-public cue next to a business object
//! ("unreleased Q2 earnings", "we are in talks to acquire", "signed the term sheet ...
//! valuation"). Questions *about* confidentiality ("what is attorney-client privilege?",
//! "what does TLP:RED mean?") and fiction ("a story about a confidential file") are not
//! confidential content: [`Confidential::is_about`] is applied to every confidential
//! finding of the rules.

use regex::Regex;

use super::super::ClassifierError;

pub struct Confidential {
    /// Audience lines and adjective markers (0.85).
    pub marker: Regex,
    /// Not-yet-public cue + business object; deal, layoff and pricing talk (0.7).
    pub cue: Regex,
    /// A sentence that asks about a concept or tells a story.
    about: Regex,
    /// Words that tie a sentence to the writer's own content.
    own: Regex,
}

/// Literals for the gate: every match of `marker` or `cue` contains one of these
/// (ASCII case-insensitive).
pub const TRIGGERS: &[&str] = &[
    "only",
    "not for",
    "need-to-know",
    "need to know",
    "internal",
    "forward",
    "share",
    "distribut",
    "circulate",
    "disclose",
    "leak",
    "mnpi",
    "non-public",
    "nonpublic",
    "privilege",
    "work product",
    "confidential",
    "nda",
    "non-disclosure",
    "embargo",
    "unreleased",
    "unannounced",
    "unfiled",
    "unpublished",
    "undisclosed",
    "pre-announcement",
    "pre-release",
    "prerelease",
    "not yet",
    "not-yet",
    "yet to be",
    "yet-to-be",
    "ahead of",
    "before",
    "talks",
    "negotiat",
    "planning",
    "preparing",
    "going to",
    "term sheet",
    "letter of intent",
    "loi",
    "due diligence",
    "pricing",
    "margin target",
    "discount floor",
    "price floor",
    "will cut",
    "lay off",
    "eliminate",
    // Other languages: labels, audience lines and plans (each match of the multilingual
    // alternatives below contains one of these).
    "vertraulich",
    "confidentiel",
    "confidencial",
    "confidenzial",
    "riservat",
    "vertrouwelijk",
    "poufn",
    "tajne",
    "intern",
    "nur f",
    "réservé",
    "ne pas",
    "solo p",
    "apenas p",
    "alleen voor",
    "tylko dla",
    "no compartir",
    "no difundir",
    "no divulgar",
    "não",
    "non divulgare",
    "non diffondere",
    "non condividere",
    "niet delen",
    "niet verspreiden",
    "nie udost",
    "nie rozpowszech",
    "社外秘",
    "部外秘",
    "極秘",
    "関係者外秘",
    "nous allons",
    "nous prévoyons",
    "wir planen",
    "wir werden",
    "wir wollen",
    "wir übernehmen",
    "vamos",
    "planeamos",
    "chiuderemo",
    "licenzieremo",
    "acquisiremo",
    "venderemo",
    "trattativa",
    "we schrappen",
    "we sluiten",
    "wij schrappen",
    "planujemy",
    "zwolnienia grupowe",
    "suppression de",
    "réduction de",
    "knows yet",
    "know yet",
    "under wraps",
    "hasn't been",
    "has not been",
    "au courant",
    "pas encore",
    "noch nicht",
    "noch nichts",
    "öffentlich",
    "nadie lo sabe",
    "todavía no",
    "non lo sanno",
    "non ancora",
    "ainda não",
    "nog niet",
    "jeszcze nie",
    "quietly",
    "we guided",
    "guidance",
    "street expects",
    "analysts expect",
    "we will miss",
    "we'll miss",
    "haven't been",
    "have not been",
    "ancora",
    "wewnętrzn",
    "nicht weiter",
    "nicht veröffentl",
    "no reenviar",
    "no distribuir",
    "non inoltrare",
    "non distribuire",
    "niet doorsturen",
    "nie przekazyw",
    "nous comptons",
    "nous envisageons",
    "wir beabsichtigen",
    "pensamos",
    "we gaan",
    "wij gaan",
    "wij sluiten",
    "market expect",
];

fn rx(p: &str) -> Result<Regex, ClassifierError> {
    Regex::new(p).map_err(|e| ClassifierError::Regex {
        name: p.chars().take(40).collect(),
        message: e.to_string(),
    })
}

const BUSINESS_OBJECT: &str = r"10-[kq]|8-k|s-1|earnings|results|revenue|financials|guidance|figures|numbers|margins?|ebitda|forecast|roadmap|products?|launch|deal|acquisition|merger|partnership|pricing|prices?|layoffs?|restructuring|reorg\w*|funding|valuation|headcount|contracts?|customers?|deck|plans?|strategy|chip|device|quarter|q[1-4]|ipo|offering|rebrand\w*";

/// Business objects in all the languages, for the secrecy-cue rule.
const BUSINESS_OBJECT_ML: &str = r"layoffs?|lay-?offs?|redundanc\w+|restructuring|reorg\w*|acquisition|merger|deal|sale|buyout|takeover|earnings|results|revenue|guidance|headcount|closure|price\s+increase|pricing|launch|roadmap|fusion|rachat|licenciements?|postes|fermeture|übernahme|fusion|kauf|stellen\w*|entlassungen|schließung|ankündigung|despidos?|fusión|compra|cierre|adquisição|despedimentos?|encerramento|fábrica|fusione|acquisizione|licenziamenti|chiusura|stabilimento|overname|fusie|ontslagen|banen|sluiting|zwolnienia|przejęcie|fuzja|zamknięcie|announcement|press\s+release|all-hands|employees|staff";

/// Units of a business that are bought, sold, closed or cut, in the probe languages.
const BUSINESS_UNIT_ML: &str = r"firma|unternehmen|konzern|werk|standort|filiale|sparte|geschäftsbereich|abteilung|tochter\w*|entreprise|société|filiale|usine|site|magasin|division|branche|activité|empresa|compañía|filial|negocio|división|planta|oficina|sede|tienda|almacén|unidade|loja|armazém|azienda|società|ramo|negozio|reparto|divisione|bedrijf|vestiging|fabriek|winkel|afdeling|dochterbedrijf|firmę|firmy|spółk\w+|zakład\w*|fabryk\w+|oddział\w*|business|unit|subsidiary|plant|factory|office|division|stores?";

/// The writer says it is still secret ("nobody knows yet", "noch nichts wissen").
const SECRECY: &str = r"\b(?:nobody|no\s+one|no-one)\s+knows\s+(?:about\s+it\s+)?yet\b|\b(?:don't|do\s+not|doesn't|does\s+not)\s+know\s+(?:about\s+it\s+)?yet\b|\bunder\s+wraps\b|\b(?:hasn't|has\s+not|haven't|have\s+not)\s+been\s+(?:announced|made\s+public|disclosed)\b|\bpersonne\s+n'est\s+au\s+courant\b|\bpas\s+encore\s+(?:annoncée?s?|publique?s?|officiel\w*)\b|\bnoch\s+nichts\s+wissen\b|\bnoch\s+nicht\s+(?:öffentlich|bekannt|angekündigt|kommuniziert)\b|\berst\s+(?:\w+\s+){1,2}öffentlich\b|\bnadie\s+lo\s+sabe\b|\btodavía\s+no\s+(?:es\s+público|se\s+ha\s+anunciado|lo\s+saben)\b|\bnon\s+lo\s+sanno\s+ancora\b|\bnon\s+(?:è\s+)?ancora\s+(?:pubblic|annunciat|comunicat)\w*|\bainda\s+não\s+(?:é\s+público|foi\s+anunciad[oa]|sabem)\b|\bnog\s+niet\s+(?:bekend|openbaar|aangekondigd)\b|\bjeszcze\s+nie\s+(?:ogłoszon|publiczn|wiedz)\w*";

impl Confidential {
    pub fn new() -> Result<Confidential, ClassifierError> {
        let marker = rx(concat!(
            r"(?i)(?:^|[\n(\[]|[.!?:]\s+)\s*(?:board|leadership|exec(?:utive)?s?|management|partners?|staff|legal|hr|finance|deal\s+team|founders?|c-suite)[- ]?(?:only|eyes\s+only)\b",
            r"|\beyes[- ]only\b",
            r"|\binternal\s*(?:[-–—:,]\s*)?not\s+for\s+(?:customers|clients|external|the\s+public|public|partners|vendors|distribution|release)\b",
            r"|\bnot\s+for\s+(?:customers|clients|external\s+(?:use|eyes|distribution|release|sharing)|public\s+(?:release|distribution|disclosure)|publication|the\s+press)\b",
            r"|\bneed[- ]to[- ]know\b",
            r"|\bfor\s+internal\s+(?:use|eyes|distribution|review|discussion)\b",
            r"|\b(?:do\s+not|don't|please\s+don't|never)\s+(?:forward|share|distribute|circulate|disclose|leak)\s+(?:this|these|it|outside|externally|beyond)\b",
            r"|\bmnpi\b|\bmaterial(?:,)?\s+non-?public\b",
            r"|\battorney[- ]client\s+privilege[ds]?\b|\battorney\s+work\s+product\b",
            r"|\bconfidential\s+(?:roadmap|draft|memo|plan|report|deck|slides?|figures|numbers|results|forecast|financials|pricing|price\s+list|document|doc|information|info|details|terms|notes|minutes|strategy|proposal|list|data|summary|update|briefing|analysis|agreement|term\s+sheet|offer|budget|projections?|timeline|review|findings|investigation|settlement|email|message|thread|source\s+code|design|specs?|prototype|customer\s+list|board\s+\w+|internal\s+\w+|hr\s+\w+|legal\s+\w+)\b",
            r"|\b(?:under|per|covered\s+by|subject\s+to|bound\s+by)\s+(?:an?\s+|the\s+|our\s+)?(?:nda|non-disclosure(?:\s+agreement)?)\b|\(\s*nda\b|\bnda[- ](?:protected|bound|covered)\b",
            r"|\b(?:embargoed|under\s+embargo)\b",
            // Labels in de / fr / es / pt / it / nl / pl / ja at the start of a line or
            // sentence, followed by a dash, colon or comma ("Vertraulich – nur für ...",
            // "Poufne – tylko dla zarządu:", "社外秘：").
            r"|(?:^|[\n(\[]|[.!?:]\s+)\s*(?:streng\s+|strikt\s+|strictement\s+|estrictamente\s+|strettamente\s+|ściśle\s+|strikt\s+)?(?:vertraulich|confidentiel(?:le)?|confidencial|confidenziale|riservat[oa]|vertrouwelijk|poufne|tajne|document\s+interne|documento\s+(?:interno|riservato|confidencial)|uso\s+interno|nur\s+intern|dokument\s+wewnętrzny)\b\s*(?:[-–—:,]|\()",
            r"|(?:^|[\n(\[]|[.!?:]\s+)\s*intern[eoa]?\s*[-–—]\s",
            r"|(?:社外秘|部外秘|極秘|関係者外秘)",
            // Audience lines and do-not-share lines.
            r"|\bnur\s+f(?:ür|uer)\s+(?:die\s+|den\s+)?(?:geschäftsleitung|geschäftsführung|vorstand|aufsichtsrat|management|führungskreis|internen\s+gebrauch|interne\s+zwecke)\b|\bf(?:ür|uer)\s+den\s+internen\s+gebrauch\b|(?:^|[\n(\[]|[-–—:,;]\s*|[.!?]\s+)\s*nicht\s+(?:weitergeben|weiterleiten|veröffentlichen)\s*(?:[-–—:,.;)!\n]|$)",
            r"|\bréservé\s+(?:au|à\s+la|aux|à\s+l')\s*(?:comité|direction|conseil|management|codir|comex|dirigeants|équipe\s+dirigeante)|(?:^|[\n(\[]|[-–—:,;]\s*|[.!?]\s+)\s*ne\s+pas\s+(?:diffuser|divulguer|transférer|partager|transmettre)\s*(?:[-–—:,.;)!\n]|$)|\bne\s+pas\s+(?:diffuser|divulguer|transférer|partager|transmettre)\s+(?:avec|aux|à\s+l|hors|en\s+dehors|à\s+l\'extérieur|ce\s+document|ce\s+message|cette\s+note)|\busage\s+interne\b",
            r"|\bsolo\s+para\s+(?:el\s+|la\s+|los\s+)?(?:comité|dirección|consejo|junta|directivos|equipo\s+directivo)|(?:^|[\n(\[]|[-–—:,;]\s*|[.!?]\s+)\s*no\s+(?:compartir|difundir|divulgar|reenviar|distribuir)\s*(?:[-–—:,.;)!\n]|$)|\bno\s+(?:compartir|difundir|divulgar|reenviar|distribuir)\s+(?:con\s+(?:clientes|terceros|socios|proveedores|nadie)|fuera|externamente|este\s+(?:documento|mensaje|correo))",
            r"|\bapenas\s+para\s+(?:a\s+|o\s+)?(?:administração|direção|direcção|conselho|gestão)|(?:^|[\n(\[]|[-–—:,;]\s*|[.!?]\s+)\s*não\s+(?:divulgar|partilhar|compartilhar|reencaminhar|distribuir)\s*(?:[-–—:,.;)!\n]|$)|\bnão\s+(?:divulgar|partilhar|compartilhar|reencaminhar|distribuir)\s+(?:com\s+(?:clientes|terceiros|parceiros|ninguém)|fora|externamente|este\s+(?:documento|e-?mail))",
            r"|\bsolo\s+per\s+(?:il\s+|la\s+)?(?:consiglio|cda|management|direzione|vertici)|(?:^|[\n(\[]|[-–—:,;]\s*|[.!?]\s+)\s*non\s+(?:divulgare|diffondere|inoltrare|condividere|distribuire)\s*(?:[-–—:,.;)!\n]|$)|\bnon\s+(?:divulgare|diffondere|inoltrare|condividere|distribuire)\s+(?:con\s+(?:clienti|terzi|partner|nessuno)|all\'esterno|fuori|esternamente|questo\s+(?:documento|messaggio))|\bad\s+uso\s+interno\b",
            r"|\balleen\s+voor\s+(?:het\s+|de\s+)?(?:management\w*|directie|bestuur|raad\s+van\s+\w+|mt)\b|(?:^|[\n(\[]|[-–—:,;]\s*|[.!?]\s+)\s*niet\s+(?:delen|verspreiden|doorsturen)\s*(?:[-–—:,.;)!\n]|$)|\bniet\s+(?:delen|verspreiden|doorsturen)\s+(?:met\s+(?:klanten|derden|partners|niemand)|buiten|extern|dit\s+(?:document|bericht))|\bintern\s+gebruik\b",
            r"|\btylko\s+dla\s+(?:zarządu|kierownictwa|rady\s+nadzorczej|dyrekcji)|(?:^|[\n(\[]|[-–—:,;]\s*|[.!?]\s+)\s*nie\s+(?:udostępniać|rozpowszechniać|przekazywać\s+dalej)\s*(?:[-–—:,.;)!\n]|$)|\bnie\s+(?:udostępniać|rozpowszechniać|przekazywać\s+dalej)\s+(?:poza|na\s+zewnątrz|osobom\s+trzecim|klientom|tego\s+dokumentu)|\bdo\s+użytku\s+wewnętrznego\b",
        ))?;
        let cue = rx(&format!(
            concat!(
                r"(?i)\b(?:unreleased|unannounced|unfiled|unpublished|undisclosed|non-?public|pre-?announcement|pre-?release|not[\s-]+yet[\s-]+(?:public|announced|released|disclosed|filed)|yet[\s-]+to[\s-]+be[\s-]+(?:announced|released|disclosed|filed|made[\s-]+public))\b[^.\n]{{0,50}}?\b(?:{obj})\b",
                r"|\b(?:our|the\s+company's)\s+(?:\w+\s+){{0,2}}(?:{obj})\b[^.\n]{{0,50}}?\b(?:before|ahead\s+of)\s+(?:the\s+|it\s+is\s+|they\s+are\s+|we\s+)?(?:public\s+)?(?:announcement|announce|go\s+public|filing|earnings\s+call|press\s+release)\b",
                r"|\b(?:we|we're|we\s+are|our\s+(?:company|board|team|ceo|cfo))\b[^.\n]{{0,30}}?\b(?:in\s+(?:early\s+|late\s+|secret\s+)?talks|negotiating|in\s+negotiations|planning|preparing|going|about)\s+to\s+(?:acquire|buy|merge|sell|divest|spin\s+off|lay\s+off|cut|close|shut\s+down|raise\s+prices)\b",
                r"|\b(?:term\s+sheet|letter\s+of\s+intent|loi|due\s+diligence)\b[^.\n]{{0,80}}?\b(?:acqui\w*|merge\w*|invest\w*|valuation|buyout|\$\s?\d|\d+\s?(?:m|bn|million|billion)\b)",
                r"|\b(?:our|the|internal)\s+pricing\s+(?:strategy|plan|model|change)\b[^.\n]{{0,60}}?(?:\braise|\bincrease|\bcut|\blower|\bend|\bdrop|\d+\s?%)",
                r"|\b(?:our|the)\s+(?:margin\s+targets?|discount\s+floor|price\s+floor)\b",
                r"|\bwe\s+(?:will|plan\s+to|are\s+going\s+to|intend\s+to)\s+(?:cut|lay\s+off|eliminate)\s+(?:about\s+|around\s+)?\d+\s*(?:%|percent|roles|jobs|people|positions|staff)",
                // Own results against guidance or expectations.
                r"|\b(?:below|above|short\s+of|under)\s+(?:what\s+we\s+guided|our\s+guidance|guidance)\b|\bworse\s+than\s+(?:the\s+street|analysts|the\s+market)\s+expect|\b(?:we\s+will|we'll|we\s+are\s+going\s+to)\s+miss\s+(?:the\s+|our\s+)?(?:q[1-4]\s+|fy\s*\d*\s+|quarterly\s+|annual\s+)?(?:target|guidance|forecast|numbers|plan)",
                r"|\bwe(?:'re|\s+are)\s+quietly\s+(?:preparing|planning|looking|exploring)\b",
                // The writer's plans in other languages: sell, buy, merge, close, cut jobs.
                // Everyday verbs ("vamos a comprar pan", "wir werden die Kosten
                // übernehmen") count only with a business object or a head count after them.
                r"|\b(?:nous\s+(?:allons|prévoyons\s+de|comptons|envisageons\s+de)\s+(?:bientôt\s+)?(?:annoncer|racheter|acquérir|fusionner|supprimer|licencier|fermer|vendre|céder)|wir\s+(?:planen|werden|wollen|beabsichtigen)\b[^.\n]{{0,40}}?\b(?:abbauen|abzubauen|streichen|übernehmen|schließen|verkaufen|entlassen|fusionieren)|wir\s+übernehmen|(?:vamos\s+a|planeamos|pensamos)\s+(?:despedir|cerrar|vender|comprar|adquirir|fusionar(?:nos)?|recortar|anunciar)|vamos\s+(?:encerrar|despedir|fechar|vender|comprar|adquirir|cortar|anunciar)|chiuderemo|licenzieremo|acquisiremo|venderemo|taglieremo|stiamo\s+per\s+(?:acquisire|chiudere|vendere|licenziare)|trattativa\s+(?:in\s+corso\s+|riservata\s+)?per\s+(?:acquisire|rilevare|vendere|cedere)|wij?\s+(?:schrappen|sluiten|gaan\s+(?:\w+\s+){{0,2}}(?:overnemen|sluiten|ontslaan|schrappen|verkopen))|planujemy\s+(?:zwolnienia|przejęcie|zamknięcie|sprzedaż|redukcj\w+))\b[^.\n]{{0,60}}?(?:\b(?:{obj2}|{biz})\b|\d+\s*(?:%|personnes|salariés|postes|emplois|stellen|mitarbeiter\w*|personas|empleados|trabajadores|pessoas|funcionários|trabalhadores|persone|dipendenti|lavoratori|banen|mensen|medewerkers|werknemers|osób|pracowników|etatów)|\b\p{{Lu}}[\w&-]*\s+(?:GmbH|AG|SE|KG|SA|SAS|SARL|SL|SLU|Lda|Srl|SpA|S\.p\.A\.|BV|B\.V\.|NV|sp\.\s*z\s*o\.o\.|Ltd|Inc|LLC|plc)\b)",
                r"|\b(?:plan\s+de\s+)?(?:suppression|réduction)\s+de\s+\d+\s+(?:postes|emplois)|\bzwolnienia\s+grupowe\b",
                // A secrecy cue in the same sentence as a business object.
                r"|\b(?:{obj2})\b[^.\n]{{0,100}}?(?:{secrecy})|(?:{secrecy})[^.\n]{{0,100}}?\b(?:{obj2})\b",
            ),
            obj = BUSINESS_OBJECT,
            obj2 = BUSINESS_OBJECT_ML,
            biz = BUSINESS_UNIT_ML,
            secrecy = SECRECY,
        ))?;
        let about = rx(concat!(
            r"(?i)^\s*(?:what\s+(?:is|are|does|do|did|was)|what's|whats|define|explain|describe|how\s+(?:do|does|should|can|to|would|is|are)|why\s+(?:do|does|is|are|would)|when\s+(?:does|do|is|should)|is\s+(?:it|there|a)|can\s+you\s+explain|tell\s+me\s+(?:about|what)|give\s+(?:me\s+)?(?:an?\s+)?(?:overview|definition))\b",
            r"|\b(?:difference\s+between|meaning\s+of|definition\s+of|examples?\s+of)\b",
            r"|\b(?:story|novel|poem|fiction|fictional|screenplay|movie|film|thriller|character|plot)\b",
        ))?;
        let own = rx(
            r"(?i)\b(?:our|we|we're|my|this\s+(?:memo|doc|document|email|draft|deck|report|thread|note)|the\s+(?:attached|following|below))\b|:\s+\S",
        )?;
        Ok(Confidential {
            marker,
            cue,
            about,
            own,
        })
    }

    /// The sentence asks about confidentiality or tells a story, and carries none of the
    /// writer's own content: a finding there is not confidential content.
    pub fn is_about(&self, sentence: &str) -> bool {
        self.about.is_match(sentence) && !self.own.is_match(sentence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_cues_and_questions() {
        let c = Confidential::new().expect("compiles");
        for t in [
            "Confidential roadmap (NDA with a partner): Q3 ships sync.",
            "Board-only: the numbers are down.",
            "Internal - not for customers: root cause below.",
            "Eyes only - leadership: hiring freeze.",
        ] {
            assert!(c.marker.is_match(t), "{t}");
        }
        for t in [
            "Our unreleased Q2 earnings show a loss.",
            "We are in talks to acquire a robotics startup.",
            "We signed the term sheet at a 300M valuation.",
            "The pricing strategy for 2027 is to raise the top tier by 18%.",
        ] {
            assert!(c.cue.is_match(t), "{t}");
        }
        assert!(c.is_about("What is attorney-client privilege?"));
        assert!(c.is_about("Write a short story about a spy who steals a confidential file."));
        assert!(!c.is_about("What does our confidential roadmap say about Q3?"));
        assert!(!c.is_about("Board-only: what is the plan?"));
    }
}
