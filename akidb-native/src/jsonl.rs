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
/// run with nothing written. Blank lines are skipped; errors name the 1-based line number. A text of
/// more than `max_chars` characters is refused: the model reads its first few hundred tokens only, and
/// tokenising megabytes costs gigabytes of memory.
pub fn read_texts(input: impl BufRead, max_chars: usize) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("stdin line {n}: cannot read (is it UTF-8?)"))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: TextLine = serde_json::from_str(&line)
            .with_context(|| format!("stdin line {n}: expected a JSON object {{\"text\": \"…\"}}"))?;
        check_length(&parsed.text, max_chars).with_context(|| format!("stdin line {n}"))?;
        texts.push(parsed.text);
    }
    Ok(texts)
}

/// Refuses a text of more than `max_chars` characters, naming both numbers.
pub fn check_length(text: &str, max_chars: usize) -> Result<()> {
    let n = text.chars().count();
    anyhow::ensure!(
        n <= max_chars,
        "the text has {n} characters; the limit is {max_chars} (--max-chars)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_skips_blank_ones() {
        let texts = read_texts(&b"{\"text\": \"a\"}\n\n{\"text\": \"\"}\n"[..], 10).unwrap();
        assert_eq!(texts, vec!["a".to_string(), String::new()]);
    }

    #[test]
    fn names_the_bad_line() {
        let err = read_texts(&b"{\"text\": \"a\"}\n{\"text\": 3}\n"[..], 10).unwrap_err();
        assert!(format!("{err:#}").contains("stdin line 2"), "{err:#}");
        let err = read_texts(&b"{\"text\": \"a\"}\nnot json\n"[..], 10).unwrap_err();
        assert!(format!("{err:#}").contains("stdin line 2"), "{err:#}");
    }

    #[test]
    fn refuses_a_text_over_the_limit_naming_the_line_and_both_numbers() {
        let err = read_texts(&b"{\"text\": \"a\"}\n{\"text\": \"abcdef\"}\n"[..], 5).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("stdin line 2")
                && message.contains("6 characters")
                && message.contains("limit is 5"),
            "{message}"
        );
        assert_eq!(read_texts(&b"{\"text\": \"abcde\"}\n"[..], 5).unwrap().len(), 1);
    }
}
