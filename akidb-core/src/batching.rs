//! Grouping sentences of similar length so that little of a batch is padding.

/// Padded sequence length for a sentence of `len` tokens.
///
/// Each distinct length is a separately compiled plan, so lengths are rounded up to a few buckets:
/// steps of 4 up to 32 tokens (where most queries fall and rounding costs most, relatively), then 8
/// up to 64, 16 up to 128 and 32 beyond; never past `max_len`.
pub fn seq_bucket(len: usize, max_len: usize) -> usize {
    seq_bucket_of(len, max_len, 4)
}

/// [`seq_bucket`] with steps of at least `granule` tokens (the integer path wants multiples of 16).
pub fn seq_bucket_of(len: usize, max_len: usize, granule: usize) -> usize {
    let step = match len {
        0..=32 => 4,
        33..=64 => 8,
        65..=128 => 16,
        _ => 32,
    }
    .max(granule);
    len.div_ceil(step)
        .max(1)
        .saturating_mul(step)
        .min(max_len.max(len))
}

/// One model run: the indices of its sentences in the caller's order, and the padded length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Positions in the input of the sentences in this run.
    pub members: Vec<usize>,
    /// Padded sequence length of the run.
    pub seq: usize,
}

/// Splits sentences with token counts `lens` into runs of at most `max_batch`, each of one length
/// bucket ([`seq_bucket_of`] with `granule`), with power-of-two batch sizes so that few distinct shapes
/// are ever compiled.
pub fn plan_chunks(lens: &[usize], max_len: usize, max_batch: usize, granule: usize) -> Vec<Chunk> {
    let max_batch = max_batch.max(1);
    let seq_bucket = |len: usize, max_len: usize| seq_bucket_of(len, max_len, granule);
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| (seq_bucket(lens[i], max_len), i));
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let seq = seq_bucket(lens[order[start]], max_len);
        let mut end = start;
        while end < order.len() && seq_bucket(lens[order[end]], max_len) == seq {
            end += 1;
        }
        let mut rest = &order[start..end];
        while !rest.is_empty() {
            let size = largest_power_of_two_at_most(rest.len().min(max_batch));
            chunks.push(Chunk {
                members: rest[..size].to_vec(),
                seq,
            });
            rest = &rest[size..];
        }
        start = end;
    }
    chunks
}

fn largest_power_of_two_at_most(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_length_and_stay_within_the_limit() {
        for max in [8, 128, 256, 512] {
            for len in 1..=max {
                let b = seq_bucket(len, max);
                assert!(b >= len && b <= max, "len {len} max {max} -> {b}");
                assert!(b - len < 32);
            }
        }
        assert_eq!(seq_bucket(12, 256), 12);
        assert_eq!(seq_bucket(13, 256), 16);
        assert_eq!(seq_bucket(250, 256), 256);
    }

    #[test]
    fn a_granule_makes_every_bucket_a_multiple_of_it_but_not_past_the_limit() {
        for len in 1..=256 {
            let b = seq_bucket_of(len, 256, 16);
            assert!(b >= len && b.is_multiple_of(16), "len {len} -> {b}");
        }
        assert_eq!(seq_bucket_of(12, 256, 16), 16);
        assert_eq!(seq_bucket_of(17, 256, 16), 32);
        assert_eq!(seq_bucket_of(12, 14, 16), 14);
        assert_eq!(plan_chunks(&[3, 12, 14, 16], 256, 32, 16).len(), 1);
    }

    #[test]
    fn chunks_hold_every_sentence_once_with_power_of_two_sizes() {
        let lens: Vec<usize> = (0..77).map(|i| (i * 37) % 200 + 2).collect();
        let chunks = plan_chunks(&lens, 256, 32, 4);
        let mut seen: Vec<usize> = chunks.iter().flat_map(|c| c.members.clone()).collect();
        seen.sort();
        assert_eq!(seen, (0..77).collect::<Vec<_>>());
        for c in &chunks {
            assert!(c.members.len().is_power_of_two() && c.members.len() <= 32);
            assert!(c
                .members
                .iter()
                .all(|&i| lens[i] <= c.seq && seq_bucket(lens[i], 256) == c.seq));
        }
    }

    #[test]
    fn one_sentence_is_one_chunk() {
        assert_eq!(
            plan_chunks(&[12], 256, 32, 4),
            vec![Chunk {
                members: vec![0],
                seq: 12
            }]
        );
        assert!(plan_chunks(&[], 256, 32, 4).is_empty());
    }
}
