//! Incremental detokenization with stop-string hold-back.

use tokenizers::Tokenizer;

use crate::error::RuntimeError;

/// Turns generated token ids into text chunks: never splits a UTF-8 character, and holds
/// back any tail that could be the start of a stop string until it is disambiguated.
pub(crate) struct TextStream {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
    text: String,
    emitted: usize,
    stops: Vec<String>,
}

pub(crate) enum Chunk {
    /// Text to emit (may be empty).
    Text(String),
    /// A stop string was found: the final text before it, and the stop string.
    Stop { text: String, stop: String },
}

impl TextStream {
    pub fn new(stops: Vec<String>) -> Self {
        TextStream {
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
            text: String::new(),
            emitted: 0,
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
        }
    }

    /// Adds a token; returns what can be emitted now.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<Chunk, RuntimeError> {
        self.ids.push(id);
        // Decode a small window so byte-level tokens merge correctly (as in HF/TGI).
        let prefix = tok
            .decode(&self.ids[self.prefix_offset..self.read_offset], true)
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))?;
        let full = tok
            .decode(&self.ids[self.prefix_offset..], true)
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))?;
        if full.len() > prefix.len()
            && !full.ends_with('\u{FFFD}')
            && full.is_char_boundary(prefix.len())
        {
            self.text.push_str(&full[prefix.len()..]);
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
        }
        Ok(self.drain(false))
    }

    /// Flushes whatever is held back (at the end of generation).
    pub fn finish(&mut self) -> String {
        match self.drain(true) {
            Chunk::Text(t) | Chunk::Stop { text: t, .. } => t,
        }
    }

    fn drain(&mut self, end: bool) -> Chunk {
        let max_stop = self.stops.iter().map(|s| s.len()).max().unwrap_or(0);
        if max_stop > 0 {
            let mut from = self.emitted.saturating_sub(max_stop);
            while !self.text.is_char_boundary(from) {
                from -= 1;
            }
            let found = self
                .stops
                .iter()
                .filter_map(|s| self.text[from..].find(s.as_str()).map(|p| (from + p, s)))
                .min_by_key(|(p, _)| *p);
            if let Some((p, stop)) = found {
                let stop = stop.clone();
                let p = p.max(self.emitted);
                let out = self.text[self.emitted..p].to_string();
                self.emitted = self.text.len();
                return Chunk::Stop { text: out, stop };
            }
        }
        let mut safe = self.text.len();
        if !end {
            // hold back the longest suffix that is a proper prefix of a stop string
            for s in &self.stops {
                for (i, _) in s.char_indices().skip(1) {
                    if self.text.ends_with(&s[..i]) {
                        safe = safe.min(self.text.len() - i);
                    }
                }
            }
        }
        let safe = safe.max(self.emitted);
        let out = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        Chunk::Text(out)
    }
}
