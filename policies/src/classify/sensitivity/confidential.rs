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
];

fn rx(p: &str) -> Result<Regex, ClassifierError> {
    Regex::new(p).map_err(|e| ClassifierError::Regex {
        name: p.chars().take(40).collect(),
        message: e.to_string(),
    })
}

const BUSINESS_OBJECT: &str = r"10-[kq]|8-k|s-1|earnings|results|revenue|financials|guidance|figures|numbers|margins?|ebitda|forecast|roadmap|products?|launch|deal|acquisition|merger|partnership|pricing|prices?|layoffs?|restructuring|reorg\w*|funding|valuation|headcount|contracts?|customers?|deck|plans?|strategy|chip|device|quarter|q[1-4]|ipo|offering|rebrand\w*";

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
            ),
            obj = BUSINESS_OBJECT
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
