//! A per-backend cache of embeddings by text, bounded in bytes (pure Rust).
//!
//! Why: a statement such as `ecom_predict(t, 'same context', item)` over a
//! table would otherwise re-encode the same context for every row, and
//! training reads the same item texts many times. Eviction drops the least
//! recently used half at once, so an insert is amortised O(log n).
//!
//! Bounded in bytes, not entries: an entry is its text (up to 4 KiB) plus
//! its embedding, so a count says little about memory, and a backend that
//! cannot allocate takes the whole server down.

use std::collections::HashMap;
use std::sync::Arc;

pub type Embedding = Arc<[f32]>;

/// Texts longer than this are not kept: the key is the text itself, and a
/// long description is rarely repeated, so caching it would let a few huge
/// texts outweigh thousands of titles.
pub const MAX_TEXT_BYTES: usize = 4096;

/// What an entry costs besides its text and its floats: the map's slot,
/// the String and Arc headers, allocator rounding (measured order of
/// magnitude, kept on the safe side).
pub const ENTRY_OVERHEAD: usize = 128;

/// Bytes an entry of `text` with `dims` floats holds.
pub fn entry_bytes(text: &str, dims: usize) -> usize {
    text.len() + dims * std::mem::size_of::<f32>() + ENTRY_OVERHEAD
}

pub struct EmbeddingCache {
    /// budget in bytes
    capacity: usize,
    /// bytes held now (sum of entry_bytes)
    bytes: usize,
    /// what the cached embeddings were made with (model file, max_seq_len)
    identity: String,
    map: HashMap<String, (Embedding, u64)>,
    tick: u64,
    pub hits: u64,
    pub misses: u64,
}

impl EmbeddingCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            bytes: 0,
            identity: String::new(),
            map: HashMap::new(),
            tick: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// Empties the cache when the model or the settings that shape an
    /// embedding changed, and applies a new capacity.
    pub fn configure(&mut self, identity: &str, capacity: usize) {
        if self.identity != identity {
            self.map.clear();
            self.bytes = 0;
            self.identity = identity.to_owned();
        }
        self.capacity = capacity;
        self.shrink();
    }

    pub fn get(&mut self, text: &str) -> Option<Embedding> {
        self.tick += 1;
        let tick = self.tick;
        match self.map.get_mut(text) {
            Some((e, t)) => {
                *t = tick;
                self.hits += 1;
                Some(e.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    pub fn put(&mut self, text: &str, e: Embedding) {
        let cost = entry_bytes(text, e.len());
        if text.len() > MAX_TEXT_BYTES || cost > self.capacity {
            return;
        }
        self.tick += 1;
        if let Some((old, _)) = self.map.insert(text.to_owned(), (e, self.tick)) {
            self.bytes -= entry_bytes(text, old.len());
        }
        self.bytes += cost;
        if self.bytes > self.capacity {
            self.shrink_to(self.capacity / 2);
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes held (texts, embeddings, bookkeeping).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn shrink(&mut self) {
        if self.bytes > self.capacity {
            self.shrink_to(self.capacity);
        }
    }

    /// Drops the least recently used entries until at most `keep` bytes
    /// remain.
    fn shrink_to(&mut self, keep: usize) {
        let mut by_age: Vec<(u64, usize)> = self
            .map
            .iter()
            .map(|(k, (e, t))| (*t, entry_bytes(k, e.len())))
            .collect();
        by_age.sort_unstable_by_key(|e| std::cmp::Reverse(e.0)); // newest first
        let (mut kept, mut oldest_kept) = (0usize, u64::MAX);
        for (t, b) in by_age {
            if kept + b > keep {
                break;
            }
            kept += b;
            oldest_kept = t;
        }
        if kept == 0 {
            self.map.clear();
        } else {
            self.map.retain(|_, (_, t)| *t >= oldest_kept);
        }
        // the table keeps its peak size otherwise (a budget lowered at run
        // time would not give memory back)
        if self.map.capacity() > 2 * self.map.len() + 64 {
            self.map.shrink_to_fit();
        }
        self.bytes = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_not_kept() {
        let mut c = EmbeddingCache::new(1 << 20);
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        c.put(&long, Arc::from(vec![1.0f32]));
        assert!(c.get(&long).is_none());
        let edge = "y".repeat(MAX_TEXT_BYTES);
        c.put(&edge, Arc::from(vec![2.0f32]));
        assert_eq!(c.get(&edge).as_deref(), Some(&[2.0f32][..]));
    }

    fn e(x: f32) -> Embedding {
        Arc::from(vec![x])
    }

    #[test]
    fn hits_and_misses() {
        let mut c = EmbeddingCache::new(1 << 20);
        assert!(c.get("a").is_none());
        c.put("a", e(1.0));
        assert_eq!(c.get("a").unwrap()[0], 1.0);
        assert_eq!((c.hits, c.misses), (1, 1));
    }

    #[test]
    fn bounded_and_keeps_recent() {
        let four = 4 * entry_bytes("a", 1);
        let mut c = EmbeddingCache::new(four);
        for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
            c.put(t, e(i as f32));
        }
        assert_eq!(c.bytes(), four);
        c.get("a"); // a is now the most recent
        c.put("e", e(9.0)); // over budget: keep the newest half
        assert!(c.bytes() <= four / 2);
        assert!(c.get("a").is_some() && c.get("e").is_some());
        assert!(c.get("b").is_none());
    }

    #[test]
    fn the_budget_is_bytes_whatever_the_texts() {
        // 1 MB of budget, texts of 4 KiB with 384-d embeddings: the count
        // of entries follows from their size
        let budget = 1 << 20;
        let mut c = EmbeddingCache::new(budget);
        let emb: Embedding = Arc::from(vec![0.5f32; 384]);
        for i in 0..2_000 {
            let text = format!("{i:04}{}", "x".repeat(MAX_TEXT_BYTES - 4));
            c.put(&text, emb.clone());
            assert!(c.bytes() <= budget, "{} bytes after {i}", c.bytes());
        }
        let per = entry_bytes(&"x".repeat(MAX_TEXT_BYTES), 384);
        assert!(c.len() <= budget / per && !c.is_empty());
        // bytes held are the entries' sizes, exactly
        assert_eq!(c.bytes(), c.len() * per);
        // replacing an entry does not count it twice
        let mut d = EmbeddingCache::new(budget);
        d.put("same", emb.clone());
        d.put("same", emb.clone());
        assert_eq!(d.bytes(), entry_bytes("same", 384));
    }

    #[test]
    fn new_identity_clears_and_zero_capacity_disables() {
        let mut c = EmbeddingCache::new(1 << 20);
        c.configure("m1", 1 << 20);
        c.put("a", e(1.0));
        c.configure("m2", 1 << 20);
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
        c.configure("m2", 0);
        c.put("a", e(1.0));
        assert!(c.is_empty());
        // a smaller budget applies at once
        let mut d = EmbeddingCache::new(1 << 20);
        for t in ["a", "b", "c"] {
            d.put(t, e(1.0));
        }
        d.configure("", entry_bytes("a", 1));
        assert_eq!(d.len(), 1);
    }
}
