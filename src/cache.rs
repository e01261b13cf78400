//! A bounded per-backend cache of embeddings by text (pure Rust).
//!
//! Why: a statement such as `ecom_predict(t, 'same context', item)` over a
//! table would otherwise re-encode the same context for every row, and
//! training reads the same item texts many times. Eviction drops the least
//! recently used half at once, so an insert is amortised O(log n).

use std::collections::HashMap;
use std::sync::Arc;

pub type Embedding = Arc<[f32]>;

/// Texts longer than this are not kept: the key is the text itself, and a
/// long description is rarely repeated, so caching it would let a few huge
/// texts outweigh thousands of titles.
pub const MAX_TEXT_BYTES: usize = 4096;

pub struct EmbeddingCache {
    capacity: usize,
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
        if self.capacity == 0 || text.len() > MAX_TEXT_BYTES {
            return;
        }
        self.tick += 1;
        self.map.insert(text.to_owned(), (e, self.tick));
        if self.map.len() > self.capacity {
            self.shrink_to(self.capacity / 2);
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn shrink(&mut self) {
        if self.map.len() > self.capacity {
            self.shrink_to(self.capacity);
        }
    }

    fn shrink_to(&mut self, keep: usize) {
        let mut ticks: Vec<u64> = self.map.values().map(|(_, t)| *t).collect();
        ticks.sort_unstable();
        let cut = ticks.len() - keep.min(ticks.len());
        if cut == 0 {
            return;
        }
        let oldest_kept = if cut < ticks.len() {
            ticks[cut]
        } else {
            u64::MAX
        };
        self.map.retain(|_, (_, t)| *t >= oldest_kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_not_kept() {
        let mut c = EmbeddingCache::new(10);
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
        let mut c = EmbeddingCache::new(10);
        assert!(c.get("a").is_none());
        c.put("a", e(1.0));
        assert_eq!(c.get("a").unwrap()[0], 1.0);
        assert_eq!((c.hits, c.misses), (1, 1));
    }

    #[test]
    fn bounded_and_keeps_recent() {
        let mut c = EmbeddingCache::new(4);
        for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
            c.put(t, e(i as f32));
        }
        c.get("a"); // a is now the most recent
        c.put("e", e(9.0)); // over capacity: keep the newest half
        assert!(c.len() <= 4);
        assert!(c.get("a").is_some() && c.get("e").is_some());
        assert!(c.get("b").is_none());
    }

    #[test]
    fn new_identity_clears_and_zero_capacity_disables() {
        let mut c = EmbeddingCache::new(4);
        c.configure("m1", 4);
        c.put("a", e(1.0));
        c.configure("m2", 4);
        assert!(c.is_empty());
        c.configure("m2", 0);
        c.put("a", e(1.0));
        assert!(c.is_empty());
    }
}
