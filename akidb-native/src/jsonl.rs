//! The stdin/stdout protocol of `akidb embed` and `akidb tokenize`: JSON lines in, JSON lines out.

use std::io::BufRead;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextLine {
    text: String,
}

/// Reads every `{"text": "…"}` line before anything is processed, so that a bad line fails the whole
/// run with nothing written. Blank lines are skipped; errors name the 1-based line number.
pub fn read_texts(input: impl BufRead) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("stdin line {n}: cannot read (is it UTF-8?)"))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: TextLine = serde_json::from_str(&line)
            .with_context(|| format!("stdin line {n}: expected a JSON object {{\"text\": \"…\"}}"))?;
        texts.push(parsed.text);
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_skips_blank_ones() {
        let texts = read_texts(&b"{\"text\": \"a\"}\n\n{\"text\": \"\"}\n"[..]).unwrap();
        assert_eq!(texts, vec!["a".to_string(), String::new()]);
    }

    #[test]
    fn names_the_bad_line() {
        let err = read_texts(&b"{\"text\": \"a\"}\n{\"text\": 3}\n"[..]).unwrap_err();
        assert!(format!("{err:#}").contains("stdin line 2"), "{err:#}");
        let err = read_texts(&b"{\"text\": \"a\"}\nnot json\n"[..]).unwrap_err();
        assert!(format!("{err:#}").contains("stdin line 2"), "{err:#}");
    }
}
