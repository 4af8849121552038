//! CLIP's byte-level BPE tokenizer, read from the `vocab.json` and `merges.txt` of a Hugging
//! Face CLIP folder and behaving like transformers' `CLIPTokenizer` (the `tokenizers`-backed one
//! of transformers 5):
//!
//! 1. the special token strings `<|startoftext|>` / `<|endoftext|>` in the raw text map
//!    straight to their ids;
//! 2. the rest is normalised: Unicode NFC, every whitespace run becomes one space, lower case;
//! 3. it is split into letter runs, single digits, punctuation runs and English contractions
//!    (whitespace is dropped), then each piece is split again with the GPT-2 pattern and
//!    mapped byte by byte onto the printable byte alphabet;
//! 4. each piece is merged by BPE with `</w>` appended to its last symbol;
//! 5. the ids are wrapped in start and end tokens, truncated to the context length (the end
//!    token kept) and, on request, padded with the pad token (`<|endoftext|>`).

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::ClipError;

pub const START_OF_TEXT: &str = "<|startoftext|>";
pub const END_OF_TEXT: &str = "<|endoftext|>";
const END_OF_WORD: &str = "</w>";

/// CLIP's pre-tokenizer pattern (HF matches it case-insensitively; the text is lower case by
/// then, so the difference cannot show).
const CLIP_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
/// GPT-2's pattern, applied by HF's ByteLevel pre-tokenizer to each piece. Pieces hold no
/// whitespace, so its whitespace alternatives (which need look-ahead) are left out.
const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+";

pub struct Tokenizer {
    vocab: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    clip_pattern: Regex,
    gpt2_pattern: Regex,
    whitespace: Regex,
    start: u32,
    end: u32,
    context_length: usize,
}

/// GPT-2's reversible byte-to-character table: printable Latin-1 bytes stand for themselves,
/// the others are shifted above U+00FF in byte order.
fn byte_chars() -> [char; 256] {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut table = ['\0'; 256];
    let mut shifted = 0;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).expect("Latin-1")
        } else {
            shifted += 1;
            char::from_u32(255 + shifted).expect("below U+0200")
        };
    }
    table
}

impl Tokenizer {
    /// Reads `vocab.json` and `merges.txt` from a folder.
    pub fn from_folder(folder: &Path, context_length: usize) -> Result<Self, ClipError> {
        let vocab_file = folder.join("vocab.json");
        let merges_file = folder.join("merges.txt");
        let read = |file: &Path| {
            std::fs::read_to_string(file).map_err(|source| ClipError::Read {
                file: file.to_path_buf(),
                source,
            })
        };
        let vocab: HashMap<String, u32> =
            serde_json::from_str(&read(&vocab_file)?).map_err(|source| ClipError::VocabJson {
                file: vocab_file.clone(),
                source,
            })?;
        let mut ranks = HashMap::new();
        for (line_no, line) in read(&merges_file)?.lines().enumerate() {
            if line.is_empty() || (line_no == 0 && line.starts_with("#version")) {
                continue;
            }
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
                    let rank = ranks.len();
                    ranks.entry((a.to_string(), b.to_string())).or_insert(rank);
                }
                _ => {
                    return Err(ClipError::TokenizerFile {
                        file: merges_file.clone(),
                        message: format!(
                            "line {}: expected two symbols separated by one space, got {line:?}",
                            line_no + 1
                        ),
                    })
                }
            }
        }
        let special = |token: &str| {
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| ClipError::TokenizerFile {
                    file: vocab_file.clone(),
                    message: format!("the special token {token} is missing"),
                })
        };
        Ok(Self {
            start: special(START_OF_TEXT)?,
            end: special(END_OF_TEXT)?,
            vocab,
            ranks,
            byte_chars: byte_chars(),
            clip_pattern: Regex::new(CLIP_PATTERN).expect("valid pattern"),
            gpt2_pattern: Regex::new(GPT2_PATTERN).expect("valid pattern"),
            whitespace: Regex::new(r"\s+").expect("valid pattern"),
            context_length,
        })
    }

    pub fn end_token(&self) -> u32 {
        self.end
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Start token, the prompt's tokens and the end token, at most the context length long.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ClipError> {
        if text.trim().is_empty() {
            return Err(ClipError::EmptyPrompt);
        }
        let mut ids = vec![self.start];
        let mut rest = text;
        while !rest.is_empty() {
            // Special token strings in the raw text are taken as they are.
            let next = [START_OF_TEXT, END_OF_TEXT]
                .iter()
                .filter_map(|s| rest.find(s).map(|at| (at, *s)))
                .min();
            let (plain, special) = match next {
                Some((at, s)) => (&rest[..at], Some(s)),
                None => (rest, None),
            };
            self.encode_plain(plain, &mut ids);
            match special {
                Some(s) => {
                    ids.push(if s == START_OF_TEXT {
                        self.start
                    } else {
                        self.end
                    });
                    rest = &rest[plain.len() + s.len()..];
                }
                None => rest = "",
            }
        }
        if ids.len() == 1 {
            return Err(ClipError::EmptyPrompt);
        }
        ids.truncate(self.context_length - 1);
        ids.push(self.end);
        Ok(ids)
    }

    /// `encode`, then padded with the pad token (`<|endoftext|>`) to the context length, as
    /// HF's `padding="max_length"`.
    pub fn encode_padded(&self, text: &str) -> Result<Vec<u32>, ClipError> {
        let mut ids = self.encode(text)?;
        ids.resize(self.context_length, self.end);
        Ok(ids)
    }

    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>) {
        let normalised: String = text.nfc().collect();
        let normalised = self.whitespace.replace_all(&normalised, " ").to_lowercase();
        for piece in self.clip_pattern.find_iter(&normalised) {
            for sub in self.gpt2_pattern.find_iter(piece.as_str()) {
                let mapped: String = sub
                    .as_str()
                    .bytes()
                    .map(|b| self.byte_chars[b as usize])
                    .collect();
                for symbol in self.bpe(&mapped) {
                    // Every single byte is in CLIP's vocabulary; a missing merged symbol maps to
                    // the unknown token like HF's (`<|endoftext|>`).
                    ids.push(self.vocab.get(&symbol).copied().unwrap_or(self.end));
                }
            }
        }
    }

    /// Merges the lowest-ranked adjacent pair until no pair has a rank.
    fn bpe(&self, word: &str) -> Vec<String> {
        let mut symbols: Vec<String> = word.chars().map(String::from).collect();
        if let Some(last) = symbols.last_mut() {
            last.push_str(END_OF_WORD);
        }
        loop {
            let best = symbols
                .windows(2)
                .enumerate()
                .filter_map(|(i, pair)| {
                    self.ranks
                        .get(&(pair[0].clone(), pair[1].clone()))
                        .map(|&rank| (rank, i))
                })
                .min();
            let Some((_, at)) = best else { break };
            let (a, b) = (symbols[at].clone(), symbols[at + 1].clone());
            let mut merged = Vec::with_capacity(symbols.len());
            let mut i = 0;
            while i < symbols.len() {
                if i + 1 < symbols.len() && symbols[i] == a && symbols[i + 1] == b {
                    merged.push(format!("{a}{b}"));
                    i += 2;
                } else {
                    merged.push(std::mem::take(&mut symbols[i]));
                    i += 1;
                }
            }
            symbols = merged;
        }
        symbols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection_onto_printable_characters() {
        let table = byte_chars();
        let mut seen: Vec<char> = table.to_vec();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        assert_eq!(table[b'a' as usize], 'a');
        assert_eq!(table[b' ' as usize], '\u{120}');
        assert!(table.iter().all(|c| !c.is_whitespace() && !c.is_control()));
    }
}
