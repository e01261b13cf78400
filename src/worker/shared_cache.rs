//! The shared embedding cache: one for the whole server, in shared memory
//! (`pg_ecom.shared_cache_mb`, fixed at server start), used by every
//! backend in front of the encoder, in both inference modes.
//!
//! Set-associative (4 ways per bucket, the least recently used way is
//! replaced) with fixed-size entries, laid out once the embedding width is
//! known. Each entry is guarded by a sequence number (a seqlock): a writer
//! makes it odd while it writes, a reader that sees it odd or changed
//! across its copy counts a miss. The key is a hash of the model identity
//! and the text, and the text itself is stored and compared, so a hash
//! collision can never return another text's embedding. Texts longer than
//! `TEXT_CAP` bytes are not kept here (each backend's own cache still keeps
//! them).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

pub const TEXT_CAP: usize = 512;
const WAYS: usize = 4;

#[repr(C)]
struct Meta {
    /// 0 unformatted, 1 being formatted, 2 ready
    format: AtomicU32,
    dims: AtomicU32,
    buckets: AtomicU64,
    tick: AtomicU32,
    _pad: u32,
}

#[repr(C)]
struct EntryHead {
    seq: AtomicU32,
    tick: AtomicU32,
    key: AtomicU64,
    len: AtomicU32,
    _pad: u32,
}

pub struct SharedCache {
    base: *mut u8,
    bytes: usize,
    /// whether a put may lay the cache out (tests; the server lays it out
    /// from the inference worker only)
    lay_out_on_put: bool,
}

/// What the model identity and text hash to (never 0: 0 marks an empty entry).
pub fn key_of(identity: &str, text: &str) -> u64 {
    // DefaultHasher::new() has fixed keys: the same in every process
    let mut h = std::collections::hash_map::DefaultHasher::new();
    identity.hash(&mut h);
    text.hash(&mut h);
    h.finish() | 1
}

fn entry_size(dims: usize) -> usize {
    (size_of::<EntryHead>() + TEXT_CAP + dims * 4).div_ceil(8) * 8
}

impl SharedCache {
    /// # Safety
    /// `base` points to `bytes` bytes, zeroed when first used, that only
    /// SharedCache values touch, aligned to 8.
    pub unsafe fn new(base: *mut u8, bytes: usize) -> Self {
        Self {
            base,
            bytes,
            lay_out_on_put: false,
        }
    }

    fn meta(&self) -> &Meta {
        // SAFETY: the first bytes of the region (checked by usable())
        unsafe { &*(self.base as *const Meta) }
    }

    fn usable(&self) -> bool {
        !self.base.is_null() && self.bytes >= size_of::<Meta>() + WAYS * entry_size(1)
    }

    /// Entries it holds when laid out for `dims`-wide embeddings.
    pub fn capacity(&self, dims: usize) -> usize {
        if !self.usable() {
            return 0;
        }
        (self.bytes - size_of::<Meta>()) / entry_size(dims) / WAYS * WAYS
    }

    /// Lays the cache out for `dims` unless it is laid out already (the
    /// inference worker does this once its model is loaded).
    pub fn lay_out(&self, dims: usize) {
        self.ready_for(dims, true);
    }

    /// Whether the cache serves `dims`-wide embeddings; `may_lay_out`: lay
    /// it out for them when nothing has yet.
    fn ready_for(&self, dims: usize, may_lay_out: bool) -> bool {
        if !self.usable() || dims == 0 {
            return false;
        }
        let m = self.meta();
        loop {
            match m.format.load(Ordering::Acquire) {
                2 => return m.dims.load(Ordering::Relaxed) as usize == dims,
                1 => std::hint::spin_loop(),
                _ if !may_lay_out => return false,
                _ => {
                    if m.format
                        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        let buckets = self.capacity(dims) / WAYS;
                        m.dims.store(dims as u32, Ordering::Relaxed);
                        m.buckets.store(buckets as u64, Ordering::Relaxed);
                        if buckets == 0 {
                            m.dims.store(0, Ordering::Relaxed);
                        }
                        m.format.store(2, Ordering::Release);
                    }
                }
            }
        }
    }

    fn entry(&self, dims: usize, i: usize) -> *mut u8 {
        // SAFETY: i < buckets × WAYS, laid out by ready_for
        unsafe { self.base.add(size_of::<Meta>() + i * entry_size(dims)) }
    }

    fn head(&self, e: *mut u8) -> &EntryHead {
        // SAFETY: e is an entry's first byte
        unsafe { &*(e as *const EntryHead) }
    }

    fn ways(&self, key: u64) -> std::ops::Range<usize> {
        let buckets = self.meta().buckets.load(Ordering::Relaxed).max(1);
        let b = (key % buckets) as usize;
        b * WAYS..(b + 1) * WAYS
    }

    pub fn get(&self, identity: &str, text: &str, dims: usize) -> Option<Vec<f32>> {
        if text.len() > TEXT_CAP || !self.ready_for(dims, false) {
            return None;
        }
        let key = key_of(identity, text);
        for i in self.ways(key) {
            let e = self.entry(dims, i);
            let h = self.head(e);
            let s1 = h.seq.load(Ordering::Acquire);
            if s1 % 2 == 1
                || h.key.load(Ordering::Relaxed) != key
                || h.len.load(Ordering::Relaxed) as usize != text.len()
            {
                continue;
            }
            let mut t = [0u8; TEXT_CAP];
            let mut v = vec![0f32; dims];
            // SAFETY: copies out of the entry; a concurrent writer is
            // detected by the sequence number below and the copy dropped
            unsafe {
                let p = e.add(size_of::<EntryHead>());
                std::ptr::copy_nonoverlapping(p, t.as_mut_ptr(), text.len());
                std::ptr::copy_nonoverlapping(p.add(TEXT_CAP) as *const f32, v.as_mut_ptr(), dims);
            }
            fence(Ordering::Acquire);
            if h.seq.load(Ordering::Relaxed) != s1 || &t[..text.len()] != text.as_bytes() {
                continue;
            }
            h.tick.store(
                self.meta().tick.fetch_add(1, Ordering::Relaxed),
                Ordering::Relaxed,
            );
            return Some(v);
        }
        None
    }

    /// Keeps `emb` for `text`; false when it was not kept (too long, no
    /// cache, another writer busy on the entry).
    pub fn put(&self, identity: &str, text: &str, emb: &[f32]) -> bool {
        let dims = emb.len();
        if text.len() > TEXT_CAP || !self.ready_for(dims, self.lay_out_on_put) {
            return false;
        }
        let key = key_of(identity, text);
        let now = self.meta().tick.fetch_add(1, Ordering::Relaxed);
        // an empty way, else the least recently used one
        let victim = self
            .ways(key)
            .min_by_key(|&i| {
                let h = self.head(self.entry(dims, i));
                match h.key.load(Ordering::Relaxed) {
                    0 => (0u8, 0u32),
                    _ => (
                        1,
                        now.wrapping_sub(h.tick.load(Ordering::Relaxed))
                            .wrapping_neg(),
                    ),
                }
            })
            .expect("WAYS > 0");
        let e = self.entry(dims, victim);
        let h = self.head(e);
        let s = h.seq.load(Ordering::Relaxed);
        if s % 2 == 1
            || h.seq
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        fence(Ordering::Release);
        // SAFETY: the odd sequence number gives this writer the entry
        unsafe {
            let p = e.add(size_of::<EntryHead>());
            std::ptr::copy_nonoverlapping(text.as_ptr(), p, text.len());
            std::ptr::copy_nonoverlapping(emb.as_ptr(), p.add(TEXT_CAP) as *mut f32, dims);
        }
        h.key.store(key, Ordering::Relaxed);
        h.len.store(text.len() as u32, Ordering::Relaxed);
        h.tick.store(now, Ordering::Relaxed);
        h.seq.store(s + 2, Ordering::Release);
        true
    }

    /// Entries holding an embedding now.
    pub fn entries(&self) -> usize {
        let m = self.meta();
        if !self.usable() || m.format.load(Ordering::Acquire) != 2 {
            return 0;
        }
        let dims = m.dims.load(Ordering::Relaxed) as usize;
        let n = m.buckets.load(Ordering::Relaxed) as usize * WAYS;
        (0..n)
            .filter(|&i| self.head(self.entry(dims, i)).key.load(Ordering::Relaxed) != 0)
            .count()
    }

    /// The width it is laid out for (0 = not yet).
    pub fn dims(&self) -> usize {
        if !self.usable() || self.meta().format.load(Ordering::Acquire) != 2 {
            return 0;
        }
        self.meta().dims.load(Ordering::Relaxed) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(bytes: usize) -> (Vec<u64>, SharedCache) {
        let mut buf = vec![0u64; bytes / 8];
        let mut c = unsafe { SharedCache::new(buf.as_mut_ptr() as *mut u8, bytes) };
        c.lay_out_on_put = true;
        (buf, c)
    }

    #[test]
    fn keeps_and_finds_by_identity_and_text() {
        let (_b, c) = cache(1 << 20);
        let e = vec![0.25f32; 384];
        assert!(c.get("m", "socks", 384).is_none());
        assert!(c.put("m", "socks", &e));
        assert_eq!(c.get("m", "socks", 384).unwrap(), e);
        assert!(c.get("other model", "socks", 384).is_none());
        assert!(c.get("m", "sock", 384).is_none());
        assert_eq!(c.entries(), 1);
        // another width cannot use a cache laid out for 384
        assert!(!c.put("m", "x", &[1.0; 8]));
        assert!(c.get("m", "x", 8).is_none());
    }

    #[test]
    fn bounded_by_its_bytes_and_keeps_recent_entries() {
        let bytes = 256 * 1024;
        let (_b, c) = cache(bytes);
        let cap = c.capacity(384);
        assert!(cap > 0 && cap * entry_size(384) <= bytes);
        for i in 0..10 * cap {
            c.put("m", &format!("title {i}"), &vec![i as f32; 384]);
        }
        assert!(c.entries() <= cap);
        // the latest insert of each bucket is still there
        let last = format!("title {}", 10 * cap - 1);
        assert_eq!(c.get("m", &last, 384).unwrap()[0], (10 * cap - 1) as f32);
    }

    #[test]
    fn only_an_explicit_lay_out_decides_the_width() {
        let mut buf = vec![0u64; (1 << 20) / 8];
        let c = unsafe { SharedCache::new(buf.as_mut_ptr() as *mut u8, 1 << 20) };
        // a backend's put cannot lay it out (a backend-mode model of
        // another width would lock the worker's model out)
        assert!(!c.put("m", "a", &[1.0; 8]));
        assert_eq!(c.dims(), 0);
        c.lay_out(384);
        assert!(c.put("m", "a", &[1.0; 384]));
        assert!(!c.put("m", "b", &[1.0; 8]));
        assert_eq!(c.dims(), 384);
    }

    #[test]
    fn long_texts_and_no_cache() {
        let (_b, c) = cache(1 << 20);
        let long = "x".repeat(TEXT_CAP + 1);
        assert!(!c.put("m", &long, &[1.0; 4]));
        let (_z, none) = cache(0);
        assert!(!none.put("m", "a", &[1.0; 4]));
        assert!(none.get("m", "a", 4).is_none());
    }

    #[test]
    fn concurrent_readers_never_see_a_torn_entry() {
        let (mut buf, _) = cache(64 * 1024);
        let base = buf.as_mut_ptr() as usize;
        std::thread::scope(|s| {
            for w in 0..2 {
                s.spawn(move || {
                    let mut c = unsafe { SharedCache::new(base as *mut u8, 64 * 1024) };
                    c.lay_out_on_put = true;
                    for i in 0..20_000 {
                        let v = ((i + w) % 7) as f32;
                        c.put("m", &format!("t{}", i % 13), &[v; 64]);
                    }
                });
            }
            for _ in 0..2 {
                s.spawn(move || {
                    let mut c = unsafe { SharedCache::new(base as *mut u8, 64 * 1024) };
                    c.lay_out_on_put = true;
                    for i in 0..20_000 {
                        if let Some(v) = c.get("m", &format!("t{}", i % 13), 64) {
                            assert!(v.iter().all(|&x| x == v[0]), "torn entry");
                        }
                    }
                });
            }
        });
    }
}
