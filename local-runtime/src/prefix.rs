//! Prompt-prefix reuse: the KV cache of recent prompts, so a request that starts with the
//! same tokens (a repeated system prompt, the earlier turns of a conversation) prefills only
//! what follows the shared part.
//!
//! Entries are whole prompts (batch-1 caches kept after their prefill, no extra copy);
//! a new prompt reuses the entry with the longest common token prefix, copying those
//! positions into its own cache. The budget is in cached positions, oldest use evicted first.

use crate::decoder::{Decoder, KvCache};
use crate::error::RuntimeError;

/// Shorter shared prefixes are not worth the copy (prefilling a few tokens is as cheap).
const MIN_REUSE: usize = 16;

struct Entry {
    tokens: Vec<u32>,
    cache: KvCache,
    last_use: u64,
}

pub(crate) struct PrefixCache {
    entries: Vec<Entry>,
    budget_tokens: usize,
    clock: u64,
}

/// A reusable start for a prompt: a cache holding its first `reused` positions.
pub(crate) struct Reuse {
    pub cache: KvCache,
    pub reused: usize,
}

impl PrefixCache {
    pub fn new(budget_tokens: usize) -> Self {
        PrefixCache {
            entries: Vec::new(),
            budget_tokens,
            clock: 0,
        }
    }

    fn cached_tokens(&self) -> usize {
        self.entries.iter().map(|e| e.tokens.len()).sum()
    }

    /// The longest cached prefix of `prompt`, leaving at least its last two tokens to
    /// compute. One would do for the logits, but ONNX Runtime's int8-activation
    /// `MatMulNBits` takes another kernel for a single row (measured on SmolLM2: logits up to
    /// 0.8 apart), while any two or more rows give exactly the full prefill's results — so
    /// a reused prefix answers bit for bit as a cold prefill does.
    pub fn lookup(
        &mut self,
        decoder: &Decoder,
        prompt: &[u32],
    ) -> Result<Option<Reuse>, RuntimeError> {
        let limit = prompt.len().saturating_sub(2);
        let best = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt).min(limit)))
            .max_by_key(|&(_, n)| n);
        let Some((i, n)) = best.filter(|&(_, n)| n >= MIN_REUSE) else {
            return Ok(None);
        };
        self.clock += 1;
        self.entries[i].last_use = self.clock;
        Ok(decoder
            .prefix(&self.entries[i].cache, 0, n)?
            .map(|cache| Reuse { cache, reused: n }))
    }

    /// Keeps `cache` (one row holding exactly `tokens`) for later prompts.
    pub fn insert(&mut self, tokens: Vec<u32>, cache: KvCache) {
        if tokens.len() < MIN_REUSE
            || tokens.len() > self.budget_tokens
            || cache.batch() != 1
            || cache.seq_len(0) != tokens.len()
        {
            return;
        }
        // An entry that is a prefix of the new prompt adds nothing the new one lacks.
        self.entries
            .retain(|e| common_prefix(&e.tokens, &tokens) < e.tokens.len());
        while !self.entries.is_empty() && self.cached_tokens() + tokens.len() > self.budget_tokens {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_use)
                .map(|(i, _)| i)
                .unwrap_or(0);
            self.entries.swap_remove(oldest);
        }
        self.clock += 1;
        self.entries.push(Entry {
            tokens,
            cache,
            last_use: self.clock,
        });
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn common_prefix_counts_equal_leading_tokens() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[5], &[1]), 0);
    }
}
