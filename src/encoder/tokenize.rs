//! Stage 1 of the data path: text → token ids.
//!
//! Pure Rust (no Postgres): the tokenizer from the model's `tokenizer.json`
//! (WordPiece for MiniLM, SentencePiece Unigram for multilingual-e5), with
//! our own truncation so that ids always begin and end with the special
//! tokens the tokenizer's template puts there (`[CLS]` … `[SEP]`,
//! `<s>` … `</s>`), the way the model was trained to see them.

use std::path::Path;

use tokenizers::{PreTokenizerWrapper, Tokenizer};

pub use crate::pg::settings::MAX_POSITIONS;

/// Token ids of one text, special tokens included.
pub type Ids = Vec<u32>;

pub struct TextTokenizer {
    inner: Tokenizer,
    /// special tokens before and after the text, from the template
    head: Vec<u32>,
    tail: Vec<u32>,
    /// what a batch is padded with (the attention mask hides it)
    pub pad: u32,
    /// where a long text may be cut before tokenizing (`safe_prefix`)
    cuts: Cuts,
}

/// Where cutting a text cannot change the tokens before the cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cuts {
    /// BERT's pre-tokenizer splits at whitespace, at every ASCII punctuation
    /// mark and around every CJK character
    WordPiece,
    /// Metaspace (SentencePiece, e5's Unigram): only at a space, where it
    /// splits, since a Unigram piece may join punctuation or CJK characters
    Whitespace,
    /// any other pre-tokenizer: no cut is known to be safe, so only the
    /// byte cap applies
    Unknown,
}

impl TextTokenizer {
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read tokenizer file \"{}\": {e}", path.display()))?;
        Self::from_bytes(&bytes)
            .map_err(|e| format!("invalid tokenizer file \"{}\": {e}", path.display()))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| e.to_string())?;
        let pad = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| inner.token_to_id("[PAD]"))
            .or_else(|| inner.token_to_id("<pad>"))
            .unwrap_or(0);
        // MiniLM's tokenizer.json pads every input to 128 and truncates at
        // 128. We pad per batch (to the batch's longest text) in the encoder
        // and truncate in `encode`, so both are switched off here.
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| e.to_string())?;
        // the special tokens the template wraps a text in: those around a
        // known body
        let encode = |special| {
            inner
                .encode("a", special)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| e.to_string())
        };
        let (with, body) = (encode(true)?, encode(false)?);
        let at = (0..=with.len().saturating_sub(body.len()))
            .find(|&i| with[i..].starts_with(&body))
            .filter(|_| !body.is_empty())
            .ok_or("its post-processor does not keep the text between its special tokens")?;
        let (head, tail) = (with[..at].to_vec(), with[at + body.len()..].to_vec());
        let cuts = match inner.get_pre_tokenizer() {
            Some(PreTokenizerWrapper::BertPreTokenizer(_)) => Cuts::WordPiece,
            Some(PreTokenizerWrapper::Metaspace(m)) if m.get_split() => Cuts::Whitespace,
            _ => Cuts::Unknown,
        };
        Ok(Self {
            inner,
            head,
            tail,
            pad,
            cuts,
        })
    }

    /// How many ids the special tokens take.
    pub fn specials(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Ids of `text` within its special tokens, at most `max_len` of them.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Ids, String> {
        if max_len < self.specials() {
            return Err(format!(
                "max_len {max_len} leaves no room for the encoder's {} special tokens",
                self.specials()
            ));
        }
        let body = max_len - self.specials();
        let enc = self
            .inner
            .encode(safe_prefix_for(self.cuts, text, body), false)
            .map_err(|e| e.to_string())?;
        let pieces = enc.get_ids();
        let n = pieces.len().min(body);
        let mut ids = Vec::with_capacity(n + self.specials());
        ids.extend_from_slice(&self.head);
        ids.extend_from_slice(&pieces[..n]);
        ids.extend_from_slice(&self.tail);
        Ok(ids)
    }

    /// The word pieces behind `encode`, for inspection.
    pub fn tokens(&self, text: &str, max_len: usize) -> Result<Vec<String>, String> {
        let ids = self.encode(text, max_len)?;
        Ok(ids
            .iter()
            .map(|&id| self.inner.id_to_token(id).unwrap_or_else(|| "[UNK]".into()))
            .collect())
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// `safe_prefix` under the cut rule of the tokenizer's pre-tokenizer.
pub fn safe_prefix_for(cuts: Cuts, text: &str, max_tokens: usize) -> &str {
    match cuts {
        Cuts::WordPiece => safe_prefix(text, max_tokens),
        Cuts::Whitespace => safe_prefix_at_spaces(text, max_tokens),
        Cuts::Unknown => byte_capped(text, max_tokens),
    }
}

/// At most `BYTES_PER_TOKEN_CAP` bytes per token kept, at a character
/// boundary: what bounds the work when no cut point is known.
pub fn byte_capped(text: &str, max_tokens: usize) -> &str {
    let cap = BYTES_PER_TOKEN_CAP.saturating_mul(max_tokens + 1);
    if text.len() <= cap {
        return text;
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `safe_prefix` for a Metaspace pre-tokenizer (SentencePiece Unigram):
/// cut only at a space (U+0020), where Metaspace splits whatever the
/// normaliser does with other whitespace, after at least `max_tokens`
/// space-separated runs that each give a token of their own (one holding
/// an ASCII letter or digit, or a CJK character: the normaliser keeps
/// both). Text with no such cut point for long stops at the same byte cap
/// as `safe_prefix`.
pub fn safe_prefix_at_spaces(text: &str, max_tokens: usize) -> &str {
    if max_tokens == 0 {
        return "";
    }
    if text.len() <= max_tokens {
        return text;
    }
    let cap = BYTES_PER_TOKEN_CAP.saturating_mul(max_tokens + 1);
    let mut certain = 0usize;
    let mut run_counts = false;
    for (i, c) in text.char_indices() {
        if i >= cap {
            return &text[..i];
        }
        if c == ' ' {
            if run_counts {
                certain += 1;
                run_counts = false;
            }
            if certain >= max_tokens {
                return &text[..i];
            }
        } else if c.is_ascii_alphanumeric() || is_cjk(c) {
            run_counts = true;
        }
    }
    text
}

/// Bytes of text read per kept token, at most: bounds the work on texts with
/// no usable cut point (10 MB of one "word"), see `safe_prefix`.
pub const BYTES_PER_TOKEN_CAP: usize = 1024;

/// A prefix of `text` that tokenizes to the same first `max_tokens` word
/// pieces as the whole text.
///
/// Why: a 10 MB product description would otherwise be fully normalised and
/// word-pieced only to keep its first 254 tokens. We cut only where BERT is
/// sure to split (ASCII whitespace, ASCII punctuation, before a CJK
/// character), and only after seeing at least `max_tokens` pieces that are
/// certain to produce a token (a run containing an ASCII letter or digit, an
/// ASCII punctuation mark, a CJK character). Beyond that, nothing past
/// `BYTES_PER_TOKEN_CAP` bytes per token is read: only text with no cut point
/// for that long (a single 1,000-character "word" per token) is affected.
pub fn safe_prefix(text: &str, max_tokens: usize) -> &str {
    if max_tokens == 0 {
        return "";
    }
    if text.len() <= max_tokens {
        return text; // every token covers at least one byte
    }
    let cap = BYTES_PER_TOKEN_CAP.saturating_mul(max_tokens + 1);
    let mut certain = 0usize; // tokens we are sure of before the current run
    let mut run_has_alnum = false;
    for (i, c) in text.char_indices() {
        if i >= cap {
            return &text[..i];
        }
        let single = c.is_ascii_punctuation() || is_cjk(c); // always a token of its own
        if single || c.is_ascii_whitespace() {
            if run_has_alnum {
                certain += 1;
                run_has_alnum = false;
            }
            if certain >= max_tokens {
                return &text[..i];
            }
            if single {
                certain += 1;
            }
        } else if c.is_ascii_alphanumeric() {
            run_has_alnum = true;
        }
    }
    text
}

/// The CJK ideograph blocks BERT's normaliser surrounds with spaces.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_of_short_text_is_the_text() {
        assert_eq!(safe_prefix("hello world", 5), "hello world");
        assert_eq!(safe_prefix("", 5), "");
    }

    #[test]
    fn prefix_cuts_after_enough_words() {
        let text = "one two three four five six seven";
        assert_eq!(safe_prefix(text, 3), "one two three");
        assert_eq!(safe_prefix(text, 0), "");
    }

    #[test]
    fn punctuation_counts_as_a_token() {
        // "a", ",", "b", ",", "c" are five tokens
        assert_eq!(safe_prefix("a,b,c,d,e,f", 5), "a,b,c");
    }

    #[test]
    fn runs_without_ascii_alnum_are_not_counted() {
        // each CJK character is a token of its own
        assert_eq!(
            safe_prefix("高品质不锈钢保温杯高品质不锈钢保温杯", 2),
            "高品"
        );
        // emoji runs are not certain tokens, words are
        assert_eq!(safe_prefix("🎉 🎉 🎉 x y z", 2), "🎉 🎉 🎉 x y");
    }

    #[test]
    fn unigram_cuts_only_at_spaces() {
        // punctuation and CJK may join a Unigram piece: no cut there
        assert_eq!(safe_prefix_at_spaces("a,b,c,d,e,f", 2), "a,b,c,d,e,f");
        assert_eq!(
            safe_prefix_at_spaces("one two three four five six", 3),
            "one two three"
        );
        assert_eq!(
            safe_prefix_at_spaces("降噪耳机 保温杯 鼠标 键盘", 2),
            "降噪耳机 保温杯"
        );
        // runs of only symbols may vanish in normalisation: not counted
        assert_eq!(safe_prefix_at_spaces("🎉 🎉 🎉 x y z", 2), "🎉 🎉 🎉 x y");
        let cjk = "保温杯".repeat(1_000_000);
        assert_eq!(
            safe_prefix_at_spaces(&cjk, 254).len(),
            BYTES_PER_TOKEN_CAP * 255
        );
    }

    #[test]
    fn unknown_pre_tokenizers_get_only_the_byte_cap() {
        let text = "one two three four five six";
        assert_eq!(safe_prefix_for(Cuts::Unknown, text, 2), text);
        let long = "保温杯 ".repeat(1_000_000);
        let cut = safe_prefix_for(Cuts::Unknown, &long, 254);
        assert!(cut.len() <= BYTES_PER_TOKEN_CAP * 255 && long.starts_with(cut));
        // a tab is not a Metaspace split unless a normaliser makes it one
        assert_eq!(safe_prefix_at_spaces("a\tb\tc\td e f", 2), "a\tb\tc\td e");
    }

    #[test]
    fn huge_text_is_cut_early() {
        let t = "word ".repeat(200_000);
        assert!(safe_prefix(&t, 254).len() < 2_000);
        let cjk = "保温杯".repeat(1_000_000);
        assert_eq!(safe_prefix(&cjk, 254).chars().count(), 254);
        // one 10 MB "word": no cut point, so the byte cap bounds the work
        let word = "x".repeat(10_000_000);
        assert_eq!(safe_prefix(&word, 254).len(), BYTES_PER_TOKEN_CAP * 255);
    }
}

#[cfg(test)]
pub(crate) mod model_tests {
    //! Against the real tokenizer.json of the installed model.
    use super::*;
    use crate::testdata;

    fn tok() -> TextTokenizer {
        TextTokenizer::from_file(&testdata::model_dir().join("tokenizer.json")).unwrap()
    }

    /// Arbitrary text for the fuzz tests: characters drawn from every kind of
    /// Unicode a product feed may carry (controls, combining marks, CJK,
    /// Hangul, RTL, emoji, zero-width and private-use characters,
    /// noncharacters), lengths from empty to tens of thousands of chars.
    pub(crate) fn arbitrary_text(r: &mut pg_ecom_core::rng::Rng) -> String {
        const RANGES: [(u32, u32); 12] = [
            (0x00, 0x7F),
            (0x80, 0x24F),
            (0x300, 0x36F),
            (0x590, 0x6FF),
            (0x900, 0x97F),
            (0x2000, 0x206F),
            (0x3040, 0x30FF),
            (0x4E00, 0x9FFF),
            (0xAC00, 0xD7A3),
            (0xE000, 0xF8FF),
            (0xFFF0, 0xFFFF),
            (0x1F300, 0x1FAFF),
        ];
        let len = match r.below(40) {
            0 => 0,
            1 => 2_000 + r.below(20_000),
            _ => r.below(300),
        };
        let mut s = String::with_capacity(len);
        for _ in 0..len {
            let (lo, hi) = RANGES[r.below(RANGES.len())];
            let c = lo + r.below((hi - lo + 1) as usize) as u32;
            s.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
            if r.below(7) == 0 {
                s.push(' ');
            }
        }
        s
    }

    #[test]
    fn fuzz_arbitrary_utf8_never_panics_and_keeps_the_shape() {
        let t = tok();
        let mut r = pg_ecom_core::rng::Rng::new(2026);
        let cases = 10_000;
        let vocab = t.vocab_size(); // builds the vocabulary map: not per id
        for _ in 0..cases {
            let text = arbitrary_text(&mut r);
            let max_len = 2 + r.below(300);
            let ids = t.encode(&text, max_len).unwrap();
            assert!(
                ids.len() >= 2 && ids.len() <= max_len,
                "{} ids for max {max_len}",
                ids.len()
            );
            assert_eq!((ids[0], *ids.last().unwrap()), (101, 102));
            assert!(ids.iter().all(|&i| (i as usize) < vocab));
            let p = safe_prefix(&text, max_len);
            assert!(text.starts_with(p));
        }
        eprintln!("tokenizer fuzz: {cases} arbitrary UTF-8 texts");
    }

    #[test]
    fn hello_world_ids() {
        let t = tok();
        assert_eq!(
            t.encode("hello world", 128).unwrap(),
            vec![101, 7592, 2088, 102]
        );
        assert_eq!(
            t.tokens("Hello World", 128).unwrap(),
            ["[CLS]", "hello", "world", "[SEP]"]
        );
    }

    #[test]
    fn empty_and_whitespace_give_only_special_tokens() {
        let t = tok();
        assert_eq!(t.encode("", 16).unwrap(), vec![101, 102]);
        assert_eq!(t.encode(" \t\n ", 16).unwrap(), vec![101, 102]);
    }

    #[test]
    fn truncation_keeps_sep_last() {
        let t = tok();
        let ids = t.encode("one two three four five six", 4).unwrap();
        assert_eq!(ids.len(), 4);
        assert_eq!((ids[0], ids[3]), (101, 102));
        assert_eq!(t.encode("one two", 2).unwrap(), vec![101, 102]);
    }

    #[test]
    fn chinese_and_emoji() {
        let t = tok();
        let toks = t.tokens("保温杯 🎉 mug", 64).unwrap();
        assert_eq!(toks.first().unwrap(), "[CLS]");
        assert!(toks.contains(&"保".to_string()), "{toks:?}");
        assert!(
            toks.contains(&"[UNK]".to_string()),
            "emoji is unknown to this vocabulary: {toks:?}"
        );
        assert!(toks.contains(&"mug".to_string()));
    }

    /// The shortcut must never change the tokens kept: compare against the
    /// tokenizer run on the whole text, over a deterministic variety of
    /// texts (punctuation, accents, CJK, long words, control chars, full-
    /// width forms).
    fn check_prefix_cut(t: &TextTokenizer) {
        let pieces = [
            "Running",
            "shoes,",
            "size",
            "10.5",
            "—",
            "café",
            "Ünïcode",
            "保温杯",
            "降噪耳机",
            "x",
            "!!",
            "(2-pack)",
            "supercalifragilisticexpialidocious",
            "，",
            "\u{3000}",
            "ＡＢＣ①",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "\u{0007}",
            "\u{0301}",
            "🎉",
            "a.b.c",
            "   ",
            "\t",
            "\r\n",
            "\u{000C}",
            "NEW",
        ];
        let mut seed = 7u64;
        for case in 0..300 {
            let mut text = String::new();
            for _ in 0..(case % 60 + 1) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
                if !(seed >> 20).is_multiple_of(3) {
                    text.push(' ');
                }
            }
            for max_len in [2usize, 3, 8, 33] {
                let full = t.inner.encode(text.as_str(), false).unwrap();
                let n = full.get_ids().len().min(max_len - 2);
                let mut want = t.head.clone();
                want.extend_from_slice(&full.get_ids()[..n]);
                want.extend_from_slice(&t.tail);
                assert_eq!(
                    t.encode(&text, max_len).unwrap(),
                    want,
                    "text {text:?} max_len {max_len}"
                );
            }
        }
    }

    #[test]
    fn prefix_cut_matches_full_tokenization() {
        let t = tok();
        assert_eq!(
            (t.head.as_slice(), t.tail.as_slice()),
            (&[101][..], &[102][..])
        );
        assert_eq!(t.cuts, Cuts::WordPiece);
        check_prefix_cut(&t);
    }

    fn e5() -> TextTokenizer {
        let dir = testdata::encoder_dir("multilingual-e5-small");
        TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap()
    }

    /// Unigram + Metaspace: the special tokens and padding come from the
    /// tokenizer (<s> = 0, </s> = 2, <pad> = 1), and cuts stay at spaces.
    #[test]
    fn multilingual_prefix_cut_matches_full_tokenization() {
        let t = e5();
        assert_eq!(
            (t.head.as_slice(), t.tail.as_slice(), t.pad),
            (&[0][..], &[2][..], 1)
        );
        assert_eq!(t.cuts, Cuts::Whitespace);
        check_prefix_cut(&t);
    }

    #[test]
    fn multilingual_ids_match_the_python_tokenizer() {
        // the ids the fixture was made with (Python `tokenizers`, the same
        // tokenizer.json), prefixes included
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../test/fixtures/e5_reference.json")).unwrap();
        let t = e5();
        for row in fixture["texts"].as_array().unwrap() {
            let prefix = row["prefix"].as_str().unwrap();
            let text = format!("{prefix}{}", row["text"].as_str().unwrap());
            let want: Vec<u32> = row["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(t.encode(&text, 512).unwrap(), want, "{text:?}");
        }
        let toks = t.tokens("降噪耳机 noise", 64).unwrap();
        assert_eq!(toks.first().map(String::as_str), Some("<s>"));
        assert_eq!(toks.last().map(String::as_str), Some("</s>"));
    }

    #[test]
    fn multilingual_fuzz_keeps_the_shape() {
        let t = e5();
        let mut r = pg_ecom_core::rng::Rng::new(2027);
        let vocab = t.vocab_size();
        for _ in 0..3_000 {
            let text = arbitrary_text(&mut r);
            let max_len = 2 + r.below(300);
            let ids = t.encode(&text, max_len).unwrap();
            assert!(ids.len() >= 2 && ids.len() <= max_len);
            assert_eq!((ids[0], *ids.last().unwrap()), (0, 2));
            assert!(ids.iter().all(|&i| (i as usize) < vocab));
        }
        let long = "降噪耳机 ".repeat(100_000);
        assert_eq!(t.encode(&long, 128).unwrap().len(), 128);
    }

    #[test]
    fn megabyte_text_is_truncated() {
        let t = tok();
        let text = "wool socks ".repeat(100_000);
        let ids = t.encode(&text, 128).unwrap();
        assert_eq!(ids.len(), 128);
    }

    #[test]
    fn corrupt_tokenizer_is_an_error() {
        let e = TextTokenizer::from_bytes(b"{not json").err().unwrap();
        assert!(!e.is_empty());
    }
}
